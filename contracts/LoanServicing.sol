// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IConsortiumRegistry} from "./interfaces/IConsortiumRegistry.sol";
import {ICoLendingLedger} from "./interfaces/ICoLendingLedger.sol";
import {ILoanServicing} from "./interfaces/ILoanServicing.sol";
import {LedgerTypes} from "./libraries/LedgerTypes.sol";
import {Allocation} from "./libraries/Allocation.sol";

/// @title LoanServicing
/// @notice Guarantees and compensatory payments (R10), each bank's classification of its own
/// tranche against the DPD floor, prepayments (the schedule rescaled by one rule), and recoveries
/// on written-off loans. Reads parties and policy
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
    uint256 private constant INTEREST_SHIFT = 72;
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
    /// @dev The schedule in force after a prepayment, one slot: digest's first 24 bytes | principal
    /// repaid before it starts. Zero digest: the committed schedule (loan.scheduleDigest).
    mapping(bytes32 loanId => Rescheduled) private _current;

    struct Rescheduled {
        bytes24 digest;
        uint64 principalBase;
    }

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
        (uint256 outstanding,) = _state(loan);
        uint256 base = _inForce(loan, schedule);
        uint256 repaid = loan.principal - outstanding;
        uint256 dpd = _daysPastDue(schedule, repaid > base ? repaid - base : 0, block.timestamp);
        (IConsortiumRegistry.Policy memory p,) = registry.currentPolicy();
        uint256 floor = _floor(dpd, p);
        if (category < floor) revert ClassificationBelowFloor(loan.loanId, msg.sender, category, floor, dpd);
        _classes[loan.loanId][msg.sender] = category + 1;
        emit Classified(loan.loanId, msg.sender, category, dpd);
    }

    // ------------------------------------------------------------------ prepayment

    /// @inheritdoc ILoanServicing
    function prepay(LedgerTypes.CoLoan calldata loan, uint256[] calldata schedule) external {
        _requirePlatform(loan);
        (uint256 outstanding, LedgerTypes.LoanStatus status) = _state(loan);
        if (status != LedgerTypes.LoanStatus.Active && status != LedgerTypes.LoanStatus.Overdue) {
            revert WrongLoanStatus(loan.loanId, status);
        }
        uint256 base = _inForce(loan, schedule);
        uint256 repaid = loan.principal - outstanding;
        (uint256 covered, uint256 extra, uint256[] memory next) =
            _rescale(loan.loanId, schedule, repaid - base, block.timestamp);
        bytes32 digest = keccak256(abi.encodePacked(next));
        _current[loan.loanId] = Rescheduled({digest: bytes24(digest), principalBase: uint64(repaid)});
        emit Prepaid(loan.loanId, extra, covered, repaid, digest, next);
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
    function offerOf(bytes32 loanId, address guarantor) external view returns (uint16) {
        return _offers[loanId][guarantor];
    }

    /// @inheritdoc ILoanServicing
    function compensationOf(bytes32 loanId) external view returns (uint256[] memory) {
        return _compensation[loanId];
    }

    /// @inheritdoc ILoanServicing
    function currentSchedule(bytes32 loanId) external view returns (bytes24, uint256) {
        Rescheduled memory c = _current[loanId];
        return (c.digest, c.principalBase);
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
    function rescale(uint256[] calldata schedule, uint256 principalRepaid, uint256 at)
        external
        pure
        returns (uint256 covered, uint256 principal, uint256[] memory remaining)
    {
        return _rescale(bytes32(0), schedule, principalRepaid, at);
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

    /// @dev The prepayment rule (ILoanServicing.prepay, ledger.prepayment.prepay): the leading
    /// instalments of `s` that `repaid` covers in full, the principal repaid beyond them, and the
    /// remaining instalments rescaled to carry that much less.
    function _rescale(bytes32 loanId, uint256[] calldata s, uint256 repaid, uint256 at)
        private
        pure
        returns (uint256 k, uint256 extra, uint256[] memory next)
    {
        uint256 n = s.length;
        uint256 cum;
        for (; k < n; ++k) {
            uint256 p = (s[k] >> PRINCIPAL_SHIFT) & AMOUNT_MASK;
            if (cum + p > repaid) break;
            cum += p;
        }
        if (k == n || repaid == cum) revert NothingPrepaid(loanId, repaid, k);
        uint256 due = s[k] >> DUE_SHIFT;
        if (at > due) revert PrepaymentWhileOverdue(loanId, (at - due + DAY - 1) / DAY);
        extra = repaid - cum;
        uint256 total;
        for (uint256 i = k; i < n; ++i) {
            total += (s[i] >> PRINCIPAL_SHIFT) & AMOUNT_MASK;
        }
        uint256 left = total - extra;
        next = new uint256[](n - k);
        uint256 run;
        uint256 prev;
        for (uint256 i = k; i < n; ++i) {
            uint256 w = s[i];
            run += (w >> PRINCIPAL_SHIFT) & AMOUNT_MASK;
            uint256 upTo = (run * left + total - 1) / total;
            next[i - k] = ((w >> DUE_SHIFT) << DUE_SHIFT) | ((upTo - prev) << PRINCIPAL_SHIFT)
                | (_half(((w >> INTEREST_SHIFT) & AMOUNT_MASK) * left, total) << INTEREST_SHIFT)
                | _half((w & AMOUNT_MASK) * left, total);
            prev = upTo;
        }
    }

    /// @dev x / d rounded half up.
    function _half(uint256 x, uint256 d) private pure returns (uint256) {
        return (2 * x + d) / (2 * d);
    }

    /// @dev The principal repaid before `schedule` starts, after checking it is the loan's
    /// schedule in force (the committed one, or the last prepayment's).
    function _inForce(LedgerTypes.CoLoan calldata loan, uint256[] calldata schedule) private view returns (uint256) {
        Rescheduled memory c = _current[loan.loanId];
        bytes32 h = keccak256(abi.encodePacked(schedule));
        if (c.digest == bytes24(0) ? h != loan.scheduleDigest : bytes24(h) != c.digest) {
            revert ScheduleMismatch(loan.loanId);
        }
        return c.principalBase;
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
        (, status) = _state(loan);
    }

    /// @dev The loan's outstanding principal and status, after checking `loan` is what the ledger
    /// committed to.
    function _state(LedgerTypes.CoLoan calldata loan)
        private
        view
        returns (uint256 outstanding, LedgerTypes.LoanStatus status)
    {
        bytes24 commitment;
        (commitment, outstanding, status) = ledger.loanState(loan.loanId);
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
