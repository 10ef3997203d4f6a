// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IConsortiumRegistry} from "./interfaces/IConsortiumRegistry.sol";
import {ICoLendingLedger} from "./interfaces/ICoLendingLedger.sol";
import {ILoanServicing} from "./interfaces/ILoanServicing.sol";
import {LedgerTypes} from "./libraries/LedgerTypes.sol";
import {Allocation} from "./libraries/Allocation.sol";

/// @title LoanServicing
/// @notice Guarantees and compensatory payments (R10), each bank's classification of its own
/// tranche against the DPD floor, and recoveries on written-off loans. Reads parties and policy
/// from the registry and loans from the ledger; the loan's terms come in calldata and must match
/// the ledger's commitment.
contract LoanServicing is ILoanServicing {
    /// @inheritdoc ILoanServicing
    IConsortiumRegistry public immutable registry;
    /// @inheritdoc ILoanServicing
    ICoLendingLedger public immutable ledger;

    uint256 private constant BPS = 10_000;
    uint256 private constant DAY = 86_400;
    // instalment word (ledger.schedule): due 40 | principal 72 | interest 72 | charges 72
    uint256 private constant DUE_SHIFT = 216;
    uint256 private constant PRINCIPAL_SHIFT = 144;
    uint256 private constant AMOUNT_MASK = (1 << 72) - 1;

    mapping(bytes32 loanId => Guarantee) private _guarantees;
    mapping(bytes32 loanId => mapping(address guarantor => uint16 coverBps)) private _offers;
    /// @inheritdoc ILoanServicing
    mapping(address guarantor => uint256) public guaranteedOutstanding;
    mapping(bytes32 loanId => uint256[]) private _compensation;
    /// @dev category + 1; 0 = not classified
    mapping(bytes32 loanId => mapping(address lender => uint8)) private _classes;
    /// @inheritdoc ILoanServicing
    mapping(bytes32 loanId => uint256) public recovered;
    mapping(bytes32 recoveryId => bool) private _recoveryIds;

    /// @param registry_ the consortium registry
    /// @param ledger_ the ledger whose loans are serviced
    constructor(IConsortiumRegistry registry_, ICoLendingLedger ledger_) {
        registry = registry_;
        ledger = ledger_;
    }

    // ------------------------------------------------------------------ guarantees (R10)

    /// @inheritdoc ILoanServicing
    function offerGuarantee(bytes32 loanId, uint16 coverBps) external {
        _requireActive(msg.sender, IConsortiumRegistry.Role.Guarantor);
        if (coverBps == 0 || coverBps > BPS) revert InvalidCover(coverBps);
        _offers[loanId][msg.sender] = coverBps;
        emit GuaranteeOffered(loanId, msg.sender, coverBps);
    }

    /// @inheritdoc ILoanServicing
    function acceptGuarantee(LedgerTypes.CoLoan calldata loan, address guarantor, uint16 coverBps) external {
        _requirePlatform(loan);
        LedgerTypes.LoanStatus status = _status(loan);
        if (status != LedgerTypes.LoanStatus.Active && status != LedgerTypes.LoanStatus.Overdue) {
            revert WrongLoanStatus(loan.loanId, status);
        }
        if (_guarantees[loan.loanId].guarantor != address(0)) revert GuaranteeExists(loan.loanId);
        if (coverBps == 0 || _offers[loan.loanId][guarantor] != coverBps) {
            revert GuaranteeOfferMismatch(loan.loanId, guarantor);
        }
        IConsortiumRegistry.Member memory g = _requireActive(guarantor, IConsortiumRegistry.Role.Guarantor);
        uint256 amount;
        uint256[] memory payouts = _cover(loan, coverBps);
        for (uint256 i; i < payouts.length; ++i) {
            amount += payouts[i];
        }
        (IConsortiumRegistry.Policy memory p,) = registry.currentPolicy();
        uint256 until = g.attestedAt + p.maxAttestationAge;
        if (g.attestedUntil < until) until = g.attestedUntil;
        if (block.timestamp > until) revert StaleNetAssets(guarantor, until, block.timestamp);
        uint256 outstanding = guaranteedOutstanding[guarantor];
        uint256 cap = uint256(g.tier1Capital) * p.maxGuaranteeMultiple;
        if (outstanding + amount > cap) revert GuaranteeCapExceeded(guarantor, outstanding, amount, cap);
        delete _offers[loan.loanId][guarantor];
        guaranteedOutstanding[guarantor] = outstanding + amount;
        _guarantees[loan.loanId] =
            Guarantee({guarantor: guarantor, coverBps: coverBps, amount: uint56(amount), settled: false});
        emit GuaranteeRecorded(loan.loanId, guarantor, coverBps, amount);
    }

    /// @inheritdoc ILoanServicing
    function compensate(LedgerTypes.CoLoan calldata loan) external {
        Guarantee memory gt = _guarantees[loan.loanId];
        if (gt.guarantor != msg.sender || gt.settled) revert NoGuarantee(loan.loanId, msg.sender);
        _requireActive(msg.sender, IConsortiumRegistry.Role.Guarantor);
        LedgerTypes.LoanStatus status = _status(loan);
        if (status != LedgerTypes.LoanStatus.Defaulted) revert WrongLoanStatus(loan.loanId, status);
        uint256[] memory payouts = _cover(loan, gt.coverBps);
        uint256 total;
        for (uint256 i; i < payouts.length; ++i) {
            total += payouts[i];
        }
        _settle(loan.loanId, gt);
        _compensation[loan.loanId] = payouts;
        emit Compensated(loan.loanId, msg.sender, total, payouts);
    }

    /// @inheritdoc ILoanServicing
    function releaseGuarantee(LedgerTypes.CoLoan calldata loan) external {
        Guarantee memory gt = _guarantees[loan.loanId];
        if (gt.guarantor == address(0) || gt.settled) revert NoGuarantee(loan.loanId, gt.guarantor);
        LedgerTypes.LoanStatus status = _status(loan);
        if (status != LedgerTypes.LoanStatus.Repaid) revert WrongLoanStatus(loan.loanId, status);
        _settle(loan.loanId, gt);
        emit GuaranteeReleased(loan.loanId, gt.guarantor, gt.amount);
    }

    // ------------------------------------------------------------------ classification

    /// @inheritdoc ILoanServicing
    function classify(LedgerTypes.CoLoan calldata loan, uint256[] calldata schedule, uint8 category) external {
        _requireActive(msg.sender, IConsortiumRegistry.Role.Lender);
        bool funds;
        for (uint256 i; i < loan.tranches.length; ++i) {
            if (loan.tranches[i].lender == msg.sender) funds = true;
        }
        if (!funds) revert NotTrancheLender(loan.loanId, msg.sender);
        if (category > 4) revert InvalidCategory(category);
        (bytes24 commitment, uint256 outstanding,) = ledger.loanState(loan.loanId);
        if (commitment == bytes24(0) || commitment != bytes24(LedgerTypes.hashCoLoan(loan))) {
            revert TermsMismatch(loan.loanId);
        }
        if (keccak256(abi.encodePacked(schedule)) != loan.scheduleDigest) revert ScheduleMismatch(loan.loanId);
        uint256 dpd = _daysPastDue(schedule, loan.principal - outstanding, block.timestamp);
        (IConsortiumRegistry.Policy memory p,) = registry.currentPolicy();
        uint256 floor = _floor(dpd, p);
        if (category < floor) revert ClassificationBelowFloor(loan.loanId, msg.sender, category, floor, dpd);
        _classes[loan.loanId][msg.sender] = category + 1;
        emit Classified(loan.loanId, msg.sender, category, dpd);
    }

    // ------------------------------------------------------------------ recoveries

    /// @inheritdoc ILoanServicing
    function recover(LedgerTypes.CoLoan calldata loan, bytes32 recoveryId, uint256 amount) external {
        _requirePlatform(loan);
        LedgerTypes.LoanStatus status = _status(loan);
        if (status != LedgerTypes.LoanStatus.WrittenOff) revert WrongLoanStatus(loan.loanId, status);
        if (address(bytes20(recoveryId)) != msg.sender) revert IdOutsideNamespace(recoveryId, msg.sender);
        if (_recoveryIds[recoveryId]) revert IdAlreadyUsed(recoveryId);
        if (amount == 0) revert ZeroAmount();
        uint256 before = recovered[loan.loanId];
        if (before + amount > loan.principal) {
            revert RecoveryExceedsPrincipal(loan.loanId, before, amount, loan.principal);
        }
        _recoveryIds[recoveryId] = true;
        recovered[loan.loanId] = before + amount;
        uint256[] memory split = Allocation.between(loan.tranches, loan.principal, before, before + amount);
        emit Recovered(loan.loanId, recoveryId, amount, split);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc ILoanServicing
    function guaranteeOf(bytes32 loanId) external view returns (Guarantee memory) {
        return _guarantees[loanId];
    }

    /// @inheritdoc ILoanServicing
    function compensationOf(bytes32 loanId) external view returns (uint256[] memory) {
        return _compensation[loanId];
    }

    /// @inheritdoc ILoanServicing
    function classificationOf(bytes32 loanId, address lender) external view returns (bool, uint8) {
        uint8 c = _classes[loanId][lender];
        return c == 0 ? (false, 0) : (true, c - 1);
    }

    /// @inheritdoc ILoanServicing
    function daysPastDue(uint256[] calldata schedule, uint256 principalRepaid, uint256 at)
        external
        pure
        returns (uint256)
    {
        return _daysPastDue(schedule, principalRepaid, at);
    }

    /// @inheritdoc ILoanServicing
    function scheduleDigest(uint256[] calldata schedule) external pure returns (bytes32) {
        return keccak256(abi.encodePacked(schedule));
    }

    // ------------------------------------------------------------------ internals

    function _daysPastDue(uint256[] calldata schedule, uint256 principalRepaid, uint256 at)
        private
        pure
        returns (uint256)
    {
        uint256 due;
        for (uint256 i; i < schedule.length; ++i) {
            due += (schedule[i] >> PRINCIPAL_SHIFT) & AMOUNT_MASK;
            if (due > principalRepaid) {
                uint256 t = schedule[i] >> DUE_SHIFT;
                return at <= t ? 0 : (at - t + DAY - 1) / DAY;
            }
        }
        return 0;
    }

    /// @dev The floor's category for `dpd`: 0 normal, 1 special mention, 2 substandard,
    /// 3 doubtful, 4 loss (ledger.economics.Floor).
    function _floor(uint256 dpd, IConsortiumRegistry.Policy memory p) private pure returns (uint256) {
        if (dpd == 0) return 0;
        if (dpd <= p.specialMentionMaxDpd) return 1;
        if (dpd <= p.substandardMaxDpd) return 2;
        if (dpd <= p.doubtfulMaxDpd) return 3;
        return 4;
    }

    /// @dev coverBps of each bank tranche's outstanding principal (0 for the platform's own).
    function _cover(LedgerTypes.CoLoan calldata loan, uint256 coverBps) private view returns (uint256[] memory c) {
        c = ledger.trancheOutstanding(loan);
        for (uint256 i; i < c.length; ++i) {
            c[i] = loan.tranches[i].lender == loan.platform ? 0 : (c[i] * coverBps) / BPS;
        }
    }

    function _settle(bytes32 loanId, Guarantee memory gt) private {
        _guarantees[loanId].settled = true;
        guaranteedOutstanding[gt.guarantor] -= gt.amount;
    }

    /// @dev The loan's status, after checking `loan` is what the ledger committed to.
    function _status(LedgerTypes.CoLoan calldata loan) private view returns (LedgerTypes.LoanStatus status) {
        bytes24 commitment;
        (commitment,, status) = ledger.loanState(loan.loanId);
        if (commitment == bytes24(0) || commitment != bytes24(LedgerTypes.hashCoLoan(loan))) {
            revert TermsMismatch(loan.loanId);
        }
    }

    /// @dev The caller services the loan: its platform, or the successor after a council-approved
    /// servicing transfer (the registry's `servicer`), and is an active platform.
    function _requirePlatform(LedgerTypes.CoLoan calldata loan) private view {
        address s = registry.servicer(loan.platform);
        if (msg.sender != s) revert NotLoanPlatform(msg.sender, s);
        _requireActive(msg.sender, IConsortiumRegistry.Role.Platform);
    }

    function _requireActive(address account, IConsortiumRegistry.Role role)
        private
        view
        returns (IConsortiumRegistry.Member memory m)
    {
        bool isPaused;
        (isPaused, m) = registry.actorContext(account);
        if (isPaused) revert LedgerPaused();
        if (m.role != role || m.status != IConsortiumRegistry.Status.Active || m.frozen) {
            revert NotActiveInRole(account, role);
        }
    }
}
