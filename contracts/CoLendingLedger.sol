// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";

import {IConsortiumRegistry} from "./interfaces/IConsortiumRegistry.sol";
import {ICoLendingLedger} from "./interfaces/ICoLendingLedger.sol";
import {ICoLendingLedgerErrors} from "./interfaces/ICoLendingLedgerErrors.sol";
import {LedgerTypes} from "./libraries/LedgerTypes.sol";
import {Allocation} from "./libraries/Allocation.sol";
import {ScheduleCheck} from "./libraries/ScheduleCheck.sol";
import {Book, BorrowerBook} from "./libraries/BorrowerBook.sol";
import {MemberWord, PolicyWord} from "./libraries/PackedWords.sol";
import {Usage, UsageWord} from "./libraries/UsageWord.sol";

/// @title CoLendingLedger
/// @notice Joint credit lines and co-loans, each signed (EIP-712) by the platform and every lender
/// that funds it, with the borrower's consortium-wide exposure and each bank's concentration kept
/// on chain. A record that would break R1-R8 reverts in the transaction that submits it.
/// @dev Storage per loan is one slot: a 192-bit commitment to the signed terms (their EIP-712
/// hashStruct), outstanding principal and status. Tranche detail travels in calldata and events;
/// repayments and status changes pass the terms again and are checked against the commitment.
contract CoLendingLedger is ICoLendingLedger, ICoLendingLedgerErrors, EIP712 {
    struct LoanRecord {
        bytes24 commitment;
        uint56 outstanding;
        LedgerTypes.LoanStatus status;
    }

    /// @inheritdoc ICoLendingLedger
    uint256 public constant MAX_AMOUNT = (1 << 48) - 1;
    uint256 private constant BPS = 10_000;
    /// @dev Gas given to a contract wallet's ERC-1271 isValidSignature. A multisig or smart
    /// account checks a few ECDSA signatures for well under this (a 3-of-5 Safe about 25,000);
    /// without a cap one bank's wallet could burn all the gas forwarded to it (63/64 of what is
    /// left) and starve the other loans of a non-atomic batch. A wallet that runs out of it gives
    /// an invalid signature for its own record only.
    uint256 private constant ERC1271_GAS = 50_000;

    /// @inheritdoc ICoLendingLedger
    IConsortiumRegistry public immutable registry;

    mapping(bytes32 loanId => LoanRecord) private _loans;
    mapping(bytes32 lineId => LineRecord) private _lines;
    mapping(bytes32 lineId => bytes32) private _lineBorrower;
    mapping(bytes32 borrowerKey => Book) private _books;
    /// @dev R6 total and R5 with the lender's first partner platform, one word (UsageWord)
    mapping(address lender => Usage) private _usage;
    /// @dev R5 with any later partner platform
    mapping(address lender => mapping(address partner => uint256)) private _partnerOutstanding;
    mapping(bytes32 repaymentId => bool) private _repaymentIds;

    /// @param registry_ the consortium registry this ledger judges parties and policy by
    constructor(IConsortiumRegistry registry_) EIP712("CoLendingLedger", "1") {
        registry = registry_;
    }

    // ------------------------------------------------------------------ origination

    /// @inheritdoc ICoLendingLedger
    function originate(LedgerTypes.CoLoan calldata loan, bytes calldata signatures, uint256[] calldata schedule)
        external
        returns (uint32 policyVersion)
    {
        return _originate(msg.sender, loan, signatures, schedule);
    }

    /// @inheritdoc ICoLendingLedger
    function originateBatch(
        LedgerTypes.CoLoan[] calldata loans,
        bytes[] calldata signatures,
        uint256[][] calldata schedules,
        bool atomic
    ) external returns (uint256 accepted) {
        uint256 n = loans.length;
        if (signatures.length != n) revert SignatureCountMismatch(n, signatures.length);
        if (schedules.length != n) revert ScheduleCountMismatch(n, schedules.length);
        for (uint256 i; i < n; ++i) {
            if (atomic) {
                _originate(msg.sender, loans[i], signatures[i], schedules[i]);
                ++accepted;
            } else {
                try this.originateFromBatch(msg.sender, loans[i], signatures[i], schedules[i]) {
                    ++accepted;
                } catch (bytes memory reason) {
                    emit LoanRejected(loans[i].loanId, reason);
                }
            }
        }
    }

    /// @inheritdoc ICoLendingLedger
    function originateFromBatch(
        address submitter,
        LedgerTypes.CoLoan calldata loan,
        bytes calldata signatures,
        uint256[] calldata schedule
    ) external returns (uint32) {
        if (msg.sender != address(this)) revert OnlySelf();
        return _originate(submitter, loan, signatures, schedule);
    }

    /// @inheritdoc ICoLendingLedger
    function grantLine(LedgerTypes.CreditLine calldata line, bytes calldata signatures)
        external
        returns (uint32 policyVersion)
    {
        uint256 platformAmount = _checkLineTerms(line, signatures);
        (PolicyWord policy, uint32 version, MemberWord[] memory members) = _context(line.shares);
        uint16 platformIndex = _checkParties(
            line.shares, members, line.platform, _hashTypedDataV4(LedgerTypes.hashCreditLine(line)), signatures, policy
        );
        _checkBankTranches(line.lineId, line.shares.length, policy);
        _checkPlatformShare(line.lineId, platformAmount, line.limit, policy);
        bytes32 key = line.borrowerKey;
        _books[key] =
            _addInstitutions(_addExposure(_books[key], key, line.product, line.limit, policy), key, members, policy);
        _storeLine(line, platformIndex, members);
        emit LineGranted(line.lineId, key, line.platform, version, line, signatures);
        return version;
    }

    // ------------------------------------------------------------------ line lifecycle

    /// @inheritdoc ICoLendingLedger
    function closeLine(bytes32 lineId) external {
        IConsortiumRegistry.Member memory m = _actor(msg.sender);
        LineRecord storage l = _lines[lineId];
        if (l.status == LedgerTypes.LineStatus.None) revert UnknownLine(lineId);
        if (m.role != IConsortiumRegistry.Role.Platform) revert NotLinePlatform(msg.sender);
        if (m.index != l.platformIndex) _requireServicer(registry.memberAt(l.platformIndex), msg.sender);
        _endLine(lineId, LedgerTypes.LineStatus.Closed);
    }

    /// @inheritdoc ICoLendingLedger
    function freezeLine(bytes32 lineId, bool frozen) external {
        IConsortiumRegistry.Member memory m = _actor(msg.sender);
        LineRecord storage l = _lines[lineId];
        if (l.status != LedgerTypes.LineStatus.Active) revert LineNotActive(lineId, l.status);
        uint256 holders = l.institutions;
        for (uint256 j; j < BorrowerBook.SLOTS; ++j) {
            if (m.role == IConsortiumRegistry.Role.Lender && uint16(holders >> (16 * j)) == m.index) {
                uint8 bit = uint8(1 << j);
                l.frozen = frozen ? l.frozen | bit : l.frozen & ~bit;
                emit LineShareFrozen(lineId, msg.sender, frozen);
                return;
            }
        }
        revert NotLineShareHolder(lineId, msg.sender);
    }

    /// @inheritdoc ICoLendingLedger
    function expireLine(bytes32 lineId) external {
        _requireNotPaused();
        LineRecord storage l = _lines[lineId];
        if (l.status == LedgerTypes.LineStatus.None) revert UnknownLine(lineId);
        if (block.timestamp <= l.expiresAt) revert LineNotExpired(lineId, l.expiresAt, block.timestamp);
        _endLine(lineId, LedgerTypes.LineStatus.Expired);
    }

    // ------------------------------------------------------------------ repayments and status

    /// @inheritdoc ICoLendingLedger
    function repay(LedgerTypes.CoLoan calldata loan, bytes32 repaymentId, uint256 principal, uint256 interest)
        external
    {
        (LoanRecord memory rec, uint16 platformIndex) = _openLoan(loan);
        if (address(bytes20(repaymentId)) != msg.sender) revert IdOutsideNamespace(repaymentId, msg.sender);
        if (_repaymentIds[repaymentId]) revert IdAlreadyUsed(repaymentId);
        if (principal == 0 && interest == 0) revert ZeroAmount();
        if (interest > MAX_AMOUNT) revert AmountTooLarge(interest, MAX_AMOUNT);
        if (principal > rec.outstanding) revert RepaymentExceedsOutstanding(loan.loanId, rec.outstanding, principal);
        _repaymentIds[repaymentId] = true;

        uint256 total = loan.principal;
        uint256 repaidBefore = total - rec.outstanding;
        uint256[] memory pAlloc = Allocation.between(loan.tranches, total, repaidBefore, repaidBefore + principal);
        uint256[] memory iAlloc = Allocation.split(loan.tranches, total, interest);
        _releaseUsage(loan, pAlloc, platformIndex);
        _releaseExposure(loan, principal);

        uint256 outstanding = rec.outstanding - principal;
        LedgerTypes.LoanStatus from = rec.status;
        rec.outstanding = uint56(outstanding);
        if (outstanding == 0) {
            rec.status = LedgerTypes.LoanStatus.Repaid;
            _closeInstitutions(loan);
        }
        _loans[loan.loanId] = rec;
        emit Repaid(loan.loanId, repaymentId, principal, interest, outstanding, pAlloc, iAlloc);
        if (interest != 0) {
            // the platform's service fee out of each bank tranche's interest, under the
            // partnership terms in force now (ConsortiumRegistry.serviceFees)
            emit ServiceFees(
                loan.loanId, repaymentId, registry.serviceFees(loan.platform, _addresses(loan.tranches), iAlloc)
            );
        }
        if (outstanding == 0) emit LoanStatusChanged(loan.loanId, from, rec.status, "REPAID", 0);
    }

    /// @inheritdoc ICoLendingLedger
    function setStatus(LedgerTypes.CoLoan calldata loan, LedgerTypes.LoanStatus to, bytes32 reason) external {
        (LoanRecord memory rec, uint16 platformIndex) = _openLoan(loan);
        LedgerTypes.LoanStatus from = rec.status;
        if (!_legal(from, to)) revert IllegalTransition(loan.loanId, from, to);
        uint256 released;
        if (to == LedgerTypes.LoanStatus.WrittenOff) {
            released = rec.outstanding;
            uint256 total = loan.principal;
            uint256[] memory repaid = Allocation.split(loan.tranches, total, total - released);
            uint256 n = repaid.length;
            for (uint256 i; i < n; ++i) {
                repaid[i] = loan.tranches[i].amount - repaid[i];
            }
            _releaseUsage(loan, repaid, platformIndex);
            _releaseExposure(loan, released);
            _closeInstitutions(loan);
            rec.outstanding = 0;
        }
        rec.status = to;
        _loans[loan.loanId] = rec;
        emit LoanStatusChanged(loan.loanId, from, to, reason, released);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc ICoLendingLedger
    function loanState(bytes32 loanId)
        external
        view
        returns (bytes24 commitment, uint256 outstanding, LedgerTypes.LoanStatus status)
    {
        LoanRecord memory r = _loans[loanId];
        return (r.commitment, r.outstanding, r.status);
    }

    /// @inheritdoc ICoLendingLedger
    function trancheOutstanding(LedgerTypes.CoLoan calldata loan) external view returns (uint256[] memory out) {
        LoanRecord memory r = _loans[loan.loanId];
        if (r.status == LedgerTypes.LoanStatus.None) revert UnknownLoan(loan.loanId);
        if (r.commitment != bytes24(LedgerTypes.hashCoLoan(loan))) revert TermsMismatch(loan.loanId);
        uint256 total = loan.principal;
        out = Allocation.split(loan.tranches, total, total - r.outstanding);
        for (uint256 i; i < out.length; ++i) {
            out[i] = r.outstanding == 0 ? 0 : loan.tranches[i].amount - out[i];
        }
    }

    /// @inheritdoc ICoLendingLedger
    function lineState(bytes32 lineId) external view returns (LineRecord memory line, bytes32 borrowerKey) {
        return (_lines[lineId], _lineBorrower[lineId]);
    }

    /// @inheritdoc ICoLendingLedger
    function borrowerExposure(bytes32 borrowerKey)
        external
        view
        returns (uint256 consumer, uint256 business, uint16[] memory institutions, uint16[] memory openRecords)
    {
        Book book = _books[borrowerKey];
        (institutions, openRecords) = book.entries();
        return (book.exposure(0), book.exposure(1), institutions, openRecords);
    }

    /// @inheritdoc ICoLendingLedger
    function headroom(bytes32 borrowerKey)
        external
        view
        returns (uint256 consumer, uint256 business, uint256 institutions, uint256 maxInstitutions)
    {
        (IConsortiumRegistry.Policy memory p,) = registry.currentPolicy();
        Book book = _books[borrowerKey];
        uint256 c = book.exposure(0);
        uint256 b = book.exposure(1);
        consumer = c >= p.consumerCap ? 0 : p.consumerCap - c;
        business = b >= p.businessCap ? 0 : p.businessCap - b;
        institutions = book.institutions();
        maxInstitutions = p.maxInstitutions;
    }

    /// @inheritdoc ICoLendingLedger
    function lenderUsage(address lender, address partner)
        external
        view
        returns (
            uint256 total,
            uint256 withPartner,
            uint256 totalLimit,
            uint256 partnerLimit,
            uint256 attestedUntil,
            uint256 validUntil
        )
    {
        (IConsortiumRegistry.Policy memory p,) = registry.currentPolicy();
        IConsortiumRegistry.Member memory m = registry.member(lender);
        Usage word = _usage[lender];
        total = word.total();
        uint16 partnerIndex = registry.member(partner).index;
        withPartner = partnerIndex != 0 && word.partner() == partnerIndex
            ? word.withPartner()
            : _partnerOutstanding[lender][partner];
        totalLimit = (uint256(m.totalLoanBalance) * p.maxJointLoanBps) / BPS;
        partnerLimit = (uint256(m.tier1Capital) * p.maxPartnerCapitalBps) / BPS;
        attestedUntil = m.attestedUntil;
        uint256 byAge = uint256(m.attestedAt) + p.maxAttestationAge;
        validUntil = byAge < attestedUntil ? byAge : attestedUntil;
    }

    /// @inheritdoc ICoLendingLedger
    function loanDigest(LedgerTypes.CoLoan calldata loan) external view returns (bytes32) {
        return _hashTypedDataV4(LedgerTypes.hashCoLoan(loan));
    }

    /// @inheritdoc ICoLendingLedger
    function lineDigest(LedgerTypes.CreditLine calldata line) external view returns (bytes32) {
        return _hashTypedDataV4(LedgerTypes.hashCreditLine(line));
    }

    /// @inheritdoc ICoLendingLedger
    function repaymentRecorded(bytes32 repaymentId) external view returns (bool) {
        return _repaymentIds[repaymentId];
    }

    // ------------------------------------------------------------------ internals

    function _originate(
        address submitter,
        LedgerTypes.CoLoan calldata loan,
        bytes calldata signatures,
        uint256[] calldata schedule
    ) private returns (uint32 version) {
        uint256 platformAmount = _checkLoanTerms(submitter, loan, signatures);
        PolicyWord policy;
        MemberWord[] memory members;
        (policy, version, members) = _context(loan.tranches);
        bytes32 structHash = LedgerTypes.hashCoLoan(loan);
        uint16 platformIndex =
            _checkParties(loan.tranches, members, loan.platform, _hashTypedDataV4(structHash), signatures, policy);
        _checkBankTranches(loan.loanId, loan.tranches.length, policy);
        if (
            loan.product == uint8(LedgerTypes.Product.Consumer) && loan.repayment == uint8(LedgerTypes.Repayment.Bullet)
                && loan.termDays > policy.maxConsumerBulletDays()
        ) revert BulletTermTooLong(loan.loanId, loan.termDays, policy.maxConsumerBulletDays());
        if (loan.aprBps > policy.maxAllInAprBps()) {
            revert AllInAprTooHigh(loan.loanId, loan.aprBps, policy.maxAllInAprBps());
        }
        _checkSchedule(loan, schedule);
        _checkPlatformShare(loan.loanId, platformAmount, loan.principal, policy);

        bytes32 key = loan.borrowerKey;
        Book book = _books[key];
        if (loan.lineId == bytes32(0)) {
            book = _addExposure(book, key, loan.product, loan.principal, policy);
        } else {
            _draw(loan, platformIndex, members);
        }
        _books[key] = _addInstitutions(book, key, members, policy);
        _addUsage(loan.tranches, members, loan.platform, platformIndex, policy);

        _loans[loan.loanId] = LoanRecord({
            commitment: bytes24(structHash),
            outstanding: uint56(loan.principal),
            status: LedgerTypes.LoanStatus.Active
        });
        emit LoanOriginated(loan.loanId, key, loan.platform, version, loan, signatures);
    }

    function _checkLoanTerms(address submitter, LedgerTypes.CoLoan calldata loan, bytes calldata signatures)
        private
        view
        returns (uint256 platformAmount)
    {
        if (submitter != loan.platform) revert SubmitterNotPlatform(submitter, loan.platform);
        if (block.timestamp > loan.deadline) revert SignatureExpired(loan.deadline, block.timestamp);
        bytes32 loanId = loan.loanId;
        if (address(bytes20(loanId)) != submitter) revert IdOutsideNamespace(loanId, submitter);
        if (_loans[loanId].status != LedgerTypes.LoanStatus.None) revert IdAlreadyUsed(loanId);
        _checkAmount(loan.principal);
        _checkProduct(loan.product);
        if (loan.repayment > uint8(LedgerTypes.Repayment.Instalment)) revert InvalidRepaymentType(loan.repayment);
        _checkSignatureCount(signatures, loan.tranches.length);
        return _checkTranches(loan.tranches, loan.principal, loan.platform);
    }

    /// @dev R9 made good: the schedule the terms commit to travels with them and must back the
    /// declared APR and the principal (ScheduleCheck); without a digest there is none to send.
    function _checkSchedule(LedgerTypes.CoLoan calldata loan, uint256[] calldata schedule) private pure {
        if (loan.scheduleDigest == bytes32(0)) {
            if (schedule.length != 0) {
                revert ScheduleDigestMismatch(loan.loanId, bytes32(0), keccak256(abi.encodePacked(schedule)));
            }
            return;
        }
        ScheduleCheck.check(
            ScheduleCheck.Terms(loan.loanId, loan.scheduleDigest, loan.principal, loan.aprBps, loan.termDays), schedule
        );
    }

    /// @dev Tranches strictly ascending by lender, each non-zero, summing to `total`. Returns the
    /// platform's own amount.
    function _checkTranches(LedgerTypes.Tranche[] calldata tranches, uint256 total, address platform)
        private
        pure
        returns (uint256 platformAmount)
    {
        uint256 n = tranches.length;
        if (n == 0) revert EmptyTranches();
        uint256 sum;
        address prev;
        for (uint256 i; i < n; ++i) {
            address lender = tranches[i].lender;
            if (lender <= prev) revert TranchesNotSorted(i);
            prev = lender;
            uint256 amount = tranches[i].amount;
            if (amount == 0) revert ZeroAmount();
            sum += amount;
            if (lender == platform) platformAmount = amount;
        }
        if (sum != total) revert TrancheSumMismatch(sum, total);
        if (platformAmount == 0) revert PlatformTrancheMissing(platform);
    }

    function _context(LedgerTypes.Tranche[] calldata tranches)
        private
        view
        returns (PolicyWord policy, uint32 version, MemberWord[] memory members)
    {
        uint256 versionAndPause;
        (policy, versionAndPause, members) = registry.partyWords(_addresses(tranches));
        if (versionAndPause >> 32 != 0) revert LedgerPaused();
        version = uint32(versionAndPause);
    }

    /// @dev Each party active, unfrozen, in its role, with fresh capital figures if a bank (R8:
    /// neither past the end of the period it attested nor older than the maxAttestationAge of the
    /// policy in force now), and its signature valid for `digest`: ECDSA (low s) first, then
    /// ERC-1271 for a contract wallet, so an EOA signer costs no code lookup. Returns the
    /// platform's member index.
    function _checkParties(
        LedgerTypes.Tranche[] calldata tranches,
        MemberWord[] memory members,
        address platform,
        bytes32 digest,
        bytes calldata signatures,
        PolicyWord policy
    ) private view returns (uint16 platformIndex) {
        uint256 n = tranches.length;
        uint256 at = 0;
        for (uint256 i; i < n; ++i) {
            address who = tranches[i].lender;
            MemberWord m = members[i];
            if (m.status() != uint8(IConsortiumRegistry.Status.Active)) revert NotActiveMember(who);
            if (m.frozen()) revert MemberIsFrozen(who);
            if (who == platform) {
                if (m.role() != uint8(IConsortiumRegistry.Role.Platform)) {
                    revert WrongRole(who, IConsortiumRegistry.Role(m.role()));
                }
                platformIndex = m.index();
            } else {
                if (m.role() != uint8(IConsortiumRegistry.Role.Lender)) {
                    revert WrongRole(who, IConsortiumRegistry.Role(m.role()));
                }
                uint256 validUntil = m.attestationValidUntil(policy);
                if (validUntil < block.timestamp) revert StaleAttestation(who, validUntil, block.timestamp);
            }
            bytes calldata sig;
            (sig, at) = _signatureAt(signatures, at);
            (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, sig);
            if (
                (err != ECDSA.RecoverError.NoError || recovered != who)
                    && !_isValidERC1271(who, digest, sig)
            ) revert InvalidSignature(who);
        }
    }

    /// @dev ERC-1271 with at most ERC1271_GAS for the wallet and only the first 32 bytes of its
    /// answer copied: a wallet that burns its gas, reverts or answers anything else is an
    /// invalid signature.
    function _isValidERC1271(address wallet, bytes32 digest, bytes calldata sig) private view returns (bool valid) {
        bytes memory data = abi.encodeCall(IERC1271.isValidSignature, (digest, sig));
        bytes4 magic = IERC1271.isValidSignature.selector;
        assembly ("memory-safe") {
            let ok := staticcall(ERC1271_GAS, wallet, add(data, 32), mload(data), 0, 32)
            valid := and(ok, and(gt(returndatasize(), 31), eq(mload(0), magic)))
        }
    }

    /// @dev R0: every record carries at least the policy's minBankTranches bank tranches. The
    /// tranches are distinct (sorted), one is the platform's and _checkParties has held every
    /// other one to an active Lender that signed, so a record of `n` tranches has n - 1.
    function _checkBankTranches(bytes32 id, uint256 n, PolicyWord policy) private pure {
        uint256 min = policy.minBankTranches();
        if (n - 1 < min) revert TooFewBankTranches(id, n - 1, min);
    }

    /// @dev A packed signature list holds exactly `expected` complete entries (2-byte length, then
    /// the signature). A truncated last entry counts as one more signature given.
    function _checkSignatureCount(bytes calldata signatures, uint256 expected) private pure {
        uint256 len = signatures.length;
        uint256 at = 0;
        uint256 given = 0;
        while (at < len) {
            ++given;
            if (at + 2 > len) {
                at = len + 1;
                break;
            }
            at += 2 + uint16(bytes2(signatures[at:at + 2]));
        }
        if (given != expected || at > len) revert SignatureCountMismatch(expected, given);
    }

    /// @dev The entry at `at` of a packed signature list checked by _checkSignatureCount, and
    /// the offset of the next one.
    function _signatureAt(bytes calldata signatures, uint256 at)
        private
        pure
        returns (bytes calldata sig, uint256 next)
    {
        next = at + 2 + uint16(bytes2(signatures[at:at + 2]));
        sig = signatures[at + 2:next];
    }

    function _checkPlatformShare(bytes32 id, uint256 platformAmount, uint256 total, PolicyWord policy)
        private
        pure
    {
        uint256 minBps = policy.minPlatformShareBps();
        if (platformAmount * BPS < total * minBps) revert PlatformShareTooLow(id, platformAmount, total, minBps);
    }

    /// @dev R1 (consumer) and R2 (business).
    function _addExposure(Book book, bytes32 key, uint8 product, uint256 amount, PolicyWord policy)
        private
        pure
        returns (Book)
    {
        uint256 exposure = book.exposure(product);
        uint256 cap = policy.cap(product);
        if (exposure + amount > cap) revert BorrowerCapExceeded(key, exposure, amount, cap);
        return book.withExposure(product, exposure + amount);
    }

    /// @dev R3: distinct institutions with open records, after this one, within the policy.
    function _addInstitutions(Book book, bytes32 key, MemberWord[] memory members, PolicyWord policy)
        private
        pure
        returns (Book)
    {
        uint256 n = members.length;
        uint256 count = book.institutions();
        for (uint256 i; i < n; ++i) {
            if (!book.hasOpen(members[i].index())) ++count;
        }
        uint256 max = policy.maxInstitutions();
        if (count > max) revert TooManyInstitutions(key, count, max);
        for (uint256 i; i < n; ++i) {
            book = book.addOpen(members[i].index());
        }
        return book;
    }

    /// @dev R5 and R6 for each bank tranche, in tranche order, R5 first. A lender's first partner
    /// platform shares the lender's usage word; any later partner has its own slot.
    function _addUsage(
        LedgerTypes.Tranche[] calldata tranches,
        MemberWord[] memory members,
        address platform,
        uint16 platformIndex,
        PolicyWord policy
    ) private {
        uint256 n = tranches.length;
        for (uint256 i; i < n; ++i) {
            address lender = tranches[i].lender;
            if (lender != platform) {
                _useLender(lender, platform, platformIndex, tranches[i].amount, members[i], policy);
            }
        }
    }

    function _useLender(
        address lender,
        address platform,
        uint16 platformIndex,
        uint256 amount,
        MemberWord member,
        PolicyWord policy
    ) private {
        Usage word = _usage[lender];
        uint16 first = word.partner();
        bool packed = first == 0 || first == platformIndex;
        uint256 withPartner = packed ? word.withPartner() : _partnerOutstanding[lender][platform];
        uint256 limit = member.partnerLimit(policy);
        if (withPartner + amount > limit) {
            revert PartnerConcentrationExceeded(lender, platform, withPartner, amount, limit);
        }
        uint256 total = word.total();
        limit = member.jointLoanLimit(policy);
        if (total + amount > limit) revert JointLoanShareExceeded(lender, total, amount, limit);
        if (packed) {
            _usage[lender] = UsageWord.pack(total + amount, platformIndex, withPartner + amount);
        } else {
            _partnerOutstanding[lender][platform] = withPartner + amount;
            _usage[lender] = word.withTotal(total + amount);
        }
    }

    function _checkLineTerms(LedgerTypes.CreditLine calldata line, bytes calldata signatures)
        private
        view
        returns (uint256 platformAmount)
    {
        if (msg.sender != line.platform) revert SubmitterNotPlatform(msg.sender, line.platform);
        if (block.timestamp > line.deadline) revert SignatureExpired(line.deadline, block.timestamp);
        bytes32 lineId = line.lineId;
        if (address(bytes20(lineId)) != msg.sender) revert IdOutsideNamespace(lineId, msg.sender);
        if (_lines[lineId].status != LedgerTypes.LineStatus.None) revert IdAlreadyUsed(lineId);
        _checkAmount(line.limit);
        _checkProduct(line.product);
        if (line.expiresAt <= block.timestamp) revert ExpiryInPast(line.expiresAt, block.timestamp);
        // stored in 40 bits: a signed expiry that does not fit is refused, never narrowed
        if (line.expiresAt > type(uint40).max) revert ExpiryTooLarge(line.expiresAt, type(uint40).max);
        _checkSignatureCount(signatures, line.shares.length);
        return _checkTranches(line.shares, line.limit, line.platform);
    }

    function _storeLine(LedgerTypes.CreditLine calldata line, uint16 platformIndex, MemberWord[] memory members)
        private
    {
        uint256 packed;
        for (uint256 i; i < members.length; ++i) {
            packed |= uint256(members[i].index()) << (16 * i);
        }
        _lines[line.lineId] = LineRecord({
            limit: uint48(line.limit),
            drawn: 0,
            expiresAt: uint40(line.expiresAt),
            status: LedgerTypes.LineStatus.Active,
            product: line.product,
            platformIndex: platformIndex,
            institutions: uint80(packed),
            frozen: 0
        });
        _lineBorrower[line.lineId] = line.borrowerKey;
    }

    /// @dev Every tranche lender of a draw must hold a share of the line (its member index is one
    /// of the line's packed institutions). A share holder's draw is not capped at its own share:
    /// the borrower's exposure is the line's limit whoever funds it, and each bank's draws count
    /// in its R5/R6 usage like any tranche.
    function _draw(LedgerTypes.CoLoan calldata loan, uint16 platformIndex, MemberWord[] memory members) private {
        bytes32 lineId = loan.lineId;
        LineRecord storage l = _lines[lineId];
        if (l.status != LedgerTypes.LineStatus.Active || block.timestamp > l.expiresAt) {
            revert LineNotActive(lineId, l.status);
        }
        if (_lineBorrower[lineId] != loan.borrowerKey || l.product != loan.product) revert LineMismatch(lineId);
        // after a servicing transfer the successor draws, standing in for the old platform's share
        bool successor = l.platformIndex != platformIndex;
        if (successor) _requireServicer(registry.memberAt(l.platformIndex), loan.platform);
        uint256 holders = l.institutions;
        uint256 frozen = l.frozen;
        for (uint256 i; i < members.length; ++i) {
            uint256 idx = members[i].index();
            bool found = successor && idx == platformIndex;
            for (uint256 j; j < BorrowerBook.SLOTS; ++j) {
                if (uint16(holders >> (16 * j)) == idx) {
                    if ((frozen >> j) & 1 != 0) revert LineFrozen(lineId, loan.tranches[i].lender);
                    found = true;
                    break;
                }
            }
            if (!found) revert NotLineShareHolder(lineId, loan.tranches[i].lender);
        }
        uint256 drawn = l.drawn;
        if (drawn + loan.principal > l.limit) revert LineLimitExceeded(lineId, drawn, loan.principal, l.limit);
        l.drawn = uint48(drawn + loan.principal);
    }

    function _endLine(bytes32 lineId, LedgerTypes.LineStatus to) private {
        LineRecord storage l = _lines[lineId];
        if (l.status != LedgerTypes.LineStatus.Active) revert LineNotActive(lineId, l.status);
        bytes32 key = _lineBorrower[lineId];
        Book book = _books[key];
        uint256 exposure = book.exposure(l.product);
        // the limit stops counting; what is drawn and still outstanding now counts on its own
        book = book.withExposure(l.product, exposure - l.limit + l.drawn);
        uint256 packed = l.institutions;
        for (uint256 i; i < BorrowerBook.SLOTS; ++i) {
            uint16 idx = uint16(packed >> (16 * i));
            if (idx != 0) book = book.removeOpen(idx);
        }
        _books[key] = book;
        l.status = to;
        emit LineEnded(lineId, key, to, l.limit, l.drawn);
    }

    /// @dev Loads an open loan whose terms match its commitment, with the caller as the platform
    /// servicing it, and the member index its R5 usage was recorded with (the loan's platform's).
    function _openLoan(LedgerTypes.CoLoan calldata loan)
        private
        view
        returns (LoanRecord memory rec, uint16 platformIndex)
    {
        IConsortiumRegistry.Member memory m = _actor(msg.sender);
        if (m.role != IConsortiumRegistry.Role.Platform) revert WrongRole(msg.sender, m.role);
        platformIndex = m.index;
        if (msg.sender != loan.platform) {
            // a successor after a servicing transfer; usage was recorded with the loan's platform
            _requireServicer(loan.platform, msg.sender);
            platformIndex = registry.member(loan.platform).index;
        }
        rec = _loans[loan.loanId];
        if (rec.status == LedgerTypes.LoanStatus.None) revert UnknownLoan(loan.loanId);
        if (rec.commitment != bytes24(LedgerTypes.hashCoLoan(loan))) revert TermsMismatch(loan.loanId);
        if (
            rec.status != LedgerTypes.LoanStatus.Active && rec.status != LedgerTypes.LoanStatus.Overdue
                && rec.status != LedgerTypes.LoanStatus.Defaulted
        ) revert LoanNotOpen(loan.loanId, rec.status);
    }

    /// @dev `account` services the records `platform` originated (a servicing transfer).
    function _requireServicer(address platform, address account) private view {
        address s = registry.servicer(platform);
        if (s != account) revert NotServicer(account, s);
    }

    function _actor(address account) private view returns (IConsortiumRegistry.Member memory m) {
        bool isPaused;
        (isPaused, m) = registry.actorContext(account);
        if (isPaused) revert LedgerPaused();
        if (m.status != IConsortiumRegistry.Status.Active) revert NotActiveMember(account);
        if (m.frozen) revert MemberIsFrozen(account);
    }

    function _requireNotPaused() private view {
        if (registry.paused()) revert LedgerPaused();
    }

    function _releaseUsage(LedgerTypes.CoLoan calldata loan, uint256[] memory amounts, uint16 platformIndex)
        private
    {
        address platform = loan.platform;
        uint256 n = amounts.length;
        for (uint256 i; i < n; ++i) {
            address lender = loan.tranches[i].lender;
            uint256 a = amounts[i];
            if (lender == platform || a == 0) continue;
            Usage word = _usage[lender];
            if (word.partner() == platformIndex) {
                _usage[lender] = UsageWord.pack(word.total() - a, platformIndex, word.withPartner() - a);
            } else {
                _partnerOutstanding[lender][platform] -= a;
                _usage[lender] = word.withTotal(word.total() - a);
            }
        }
    }

    /// @dev Principal leaving a loan: it leaves the borrower's exposure unless the loan sits under a
    /// line that is still active (then the line's limit is what counts).
    function _releaseExposure(LedgerTypes.CoLoan calldata loan, uint256 amount) private {
        if (amount == 0) return;
        bool counted = true;
        if (loan.lineId != bytes32(0)) {
            LineRecord storage l = _lines[loan.lineId];
            l.drawn -= uint48(amount);
            counted = l.status != LedgerTypes.LineStatus.Active;
        }
        if (counted) {
            bytes32 key = loan.borrowerKey;
            Book book = _books[key];
            _books[key] = book.withExposure(loan.product, book.exposure(loan.product) - amount);
        }
    }

    function _closeInstitutions(LedgerTypes.CoLoan calldata loan) private {
        bytes32 key = loan.borrowerKey;
        Book book = _books[key];
        (,, MemberWord[] memory members) = registry.partyWords(_addresses(loan.tranches));
        for (uint256 i; i < members.length; ++i) {
            book = book.removeOpen(members[i].index());
        }
        _books[key] = book;
    }

    function _addresses(LedgerTypes.Tranche[] calldata tranches) private pure returns (address[] memory parties) {
        uint256 n = tranches.length;
        parties = new address[](n);
        for (uint256 i; i < n; ++i) {
            parties[i] = tranches[i].lender;
        }
    }

    function _checkAmount(uint256 amount) private pure {
        if (amount == 0) revert ZeroAmount();
        if (amount > MAX_AMOUNT) revert AmountTooLarge(amount, MAX_AMOUNT);
    }

    function _checkProduct(uint8 product) private pure {
        if (product > uint8(LedgerTypes.Product.Business)) revert InvalidProduct(product);
    }

    function _legal(LedgerTypes.LoanStatus from, LedgerTypes.LoanStatus to) private pure returns (bool) {
        if (from == LedgerTypes.LoanStatus.Active) return to == LedgerTypes.LoanStatus.Overdue;
        if (from == LedgerTypes.LoanStatus.Overdue) {
            return to == LedgerTypes.LoanStatus.Active || to == LedgerTypes.LoanStatus.Defaulted
                || to == LedgerTypes.LoanStatus.WrittenOff;
        }
        if (from == LedgerTypes.LoanStatus.Defaulted) return to == LedgerTypes.LoanStatus.WrittenOff;
        return false;
    }
}
