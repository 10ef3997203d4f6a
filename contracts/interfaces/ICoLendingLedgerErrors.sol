// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IConsortiumRegistry} from "./IConsortiumRegistry.sol";
import {LedgerTypes} from "../libraries/LedgerTypes.sol";

/// @title ICoLendingLedgerErrors
/// @notice The custom errors CoLendingLedger reverts with. The rule errors carry the codes shared
/// with ledger.rules (R1-R8); the Python side decodes every one of them by name.
interface ICoLendingLedgerErrors {
    // ------------------------------------------------------------------ rules

    /// @notice R1 (consumer) or R2 (business): the borrower's exposure plus `requested` passes `cap`.
    error BorrowerCapExceeded(bytes32 borrowerKey, uint256 exposure, uint256 requested, uint256 cap);
    /// @notice R3: the borrower would have open records with more than `max` institutions.
    error TooManyInstitutions(bytes32 borrowerKey, uint256 institutions, uint256 max);
    /// @notice R4: the platform's own tranche is below `minBps` of the record.
    error PlatformShareTooLow(bytes32 id, uint256 platformAmount, uint256 total, uint256 minBps);
    /// @notice R5: the lender's outstanding with `partner` would pass its share of tier-1 capital.
    error PartnerConcentrationExceeded(
        address lender, address partner, uint256 outstanding, uint256 requested, uint256 limit
    );
    /// @notice R6: the lender's outstanding joint loans would pass its share of its loan balance.
    error JointLoanShareExceeded(address lender, uint256 outstanding, uint256 requested, uint256 limit);
    /// @notice R7: a consumer bullet loan's term is longer than the policy allows.
    error BulletTermTooLong(bytes32 loanId, uint256 termDays, uint256 maxDays);
    /// @notice R0: the record carries `banks` bank (Lender) tranches, fewer than the policy's `min`.
    error TooFewBankTranches(bytes32 id, uint256 banks, uint256 min);
    /// @notice R9: the loan's declared all-in APR (IRR, annualised, bps) is above the policy's cap.
    error AllInAprTooHigh(bytes32 loanId, uint256 aprBps, uint256 capBps);
    /// @notice R9: the declared all-in APR `declaredBps` is more than 1 bp from the schedule's IRR:
    /// at an annual rate of `testedBps` + 1/2 bps the schedule's payments are worth `presentValue`
    /// fen (a rigorous bound, ScheduleCheck), so the IRR is above `declaredBps` + 1 when that is
    /// at least `received`, below `declaredBps` - 1 when it is less.
    error AprMismatch(bytes32 loanId, uint256 declaredBps, uint256 testedBps, uint256 presentValue, uint256 received);
    /// @notice R8: the lender's capital attestation expired at `attestedUntil`: the end of the
    /// period it attested, or the policy's maxAttestationAge after it attested if that is earlier
    /// (the policy in force when the figures are used).
    error StaleAttestation(address lender, uint256 attestedUntil, uint256 nowTs);

    // ------------------------------------------------------------------ structure

    /// @notice An amount, a tranche or a payment is zero.
    error ZeroAmount();
    /// @notice An amount is above MAX_AMOUNT.
    error AmountTooLarge(uint256 amount, uint256 max);
    /// @notice Not a LedgerTypes.Product.
    error InvalidProduct(uint8 product);
    /// @notice Not a LedgerTypes.Repayment.
    error InvalidRepaymentType(uint8 repayment);
    /// @notice A record has no tranches.
    error EmptyTranches();
    /// @notice Tranche `index` is not strictly after the previous one in lender order.
    error TranchesNotSorted(uint256 index);
    /// @notice The tranches add up to `sum`, not to the record's `total`.
    error TrancheSumMismatch(uint256 sum, uint256 total);
    /// @notice The platform funds no tranche of its own record.
    error PlatformTrancheMissing(address platform);
    /// @notice A credit line's expiry is not in the future.
    error ExpiryInPast(uint256 expiresAt, uint256 nowTs);
    /// @notice A credit line's signed expiry does not fit the 40 bits it is stored in (`max`); it
    /// is refused rather than narrowed.
    error ExpiryTooLarge(uint256 expiresAt, uint256 max);

    /// @notice The schedule sent with a loan does not hash to the `signed` scheduleDigest (`sent`
    /// is what it hashes to; a loan without a digest takes no schedule).
    error ScheduleDigestMismatch(bytes32 loanId, bytes32 signed, bytes32 sent);
    /// @notice A schedule of `instalments` instalments: none, or more than `max`.
    error ScheduleLengthOutOfRange(bytes32 loanId, uint256 instalments, uint256 max);
    /// @notice Instalment `index` falls due at `due`, not after `notAfter` (the previous due, or
    /// the loan's start: last due - termDays days; for the last instalment, `notAfter` may be the
    /// term in seconds when it reaches back before the epoch).
    error InvalidSchedule(bytes32 loanId, uint256 index, uint256 due, uint256 notAfter);
    /// @notice The schedule's principal parts add up to `sum`, not to the loan's `principal`.
    error ScheduleNotPrincipal(bytes32 loanId, uint256 sum, uint256 principal);

    // ------------------------------------------------------------------ provenance and roles

    /// @notice The registry has paused ledger writes.
    error LedgerPaused();
    /// @notice Only the record's platform submits it.
    error SubmitterNotPlatform(address submitter, address platform);
    /// @notice The signed terms' deadline has passed.
    error SignatureExpired(uint256 deadline, uint256 nowTs);
    /// @notice The packed signature list does not hold one complete signature per party.
    error SignatureCountMismatch(uint256 expected, uint256 given);
    /// @notice A batch carries `given` schedules for `expected` loans.
    error ScheduleCountMismatch(uint256 expected, uint256 given);
    /// @notice `signer`'s signature is neither a valid ECDSA nor a valid ERC-1271 signature.
    error InvalidSignature(address signer);
    /// @notice `account` is not an active member.
    error NotActiveMember(address account);
    /// @notice `account` is frozen.
    error MemberIsFrozen(address account);
    /// @notice `account` holds `role`, not the role its place in the record needs.
    error WrongRole(address account, IConsortiumRegistry.Role role);
    /// @notice A loan, line or repayment id is taken.
    error IdAlreadyUsed(bytes32 id);
    /// @notice Ids belong to their platform: a loan or line id starts with the 20 bytes of the
    /// record's platform, a repayment id with those of the platform submitting it.
    error IdOutsideNamespace(bytes32 id, address platform);
    /// @notice Only the platform servicing the record (its own, or its successor after a servicing
    /// transfer) acts on it.
    error NotServicer(address account, address servicer);
    /// @notice originateFromBatch is for the ledger's own non-atomic batches.
    error OnlySelf();

    // ------------------------------------------------------------------ lifecycle

    /// @notice No loan has this id.
    error UnknownLoan(bytes32 loanId);
    /// @notice No credit line has this id.
    error UnknownLine(bytes32 lineId);
    /// @notice The terms given do not match the loan's stored commitment.
    error TermsMismatch(bytes32 loanId);
    /// @notice The loan is repaid or written off.
    error LoanNotOpen(bytes32 loanId, LedgerTypes.LoanStatus status);
    /// @notice The status change is not one of the legal moves.
    error IllegalTransition(bytes32 loanId, LedgerTypes.LoanStatus from, LedgerTypes.LoanStatus to);
    /// @notice The repayment's principal is more than the loan's outstanding principal.
    error RepaymentExceedsOutstanding(bytes32 loanId, uint256 outstanding, uint256 requested);
    /// @notice The credit line is not active (or is past its expiry).
    error LineNotActive(bytes32 lineId, LedgerTypes.LineStatus status);
    /// @notice A loan drawn under the line differs from it in borrower, product or platform.
    error LineMismatch(bytes32 lineId);
    /// @notice `lender` funds a tranche of a draw on the line but holds no share of it.
    error NotLineShareHolder(bytes32 lineId, address lender);
    /// @notice `lender` froze its share of the line: draws it would fund are refused.
    error LineFrozen(bytes32 lineId, address lender);
    /// @notice The loan would draw the line past its limit.
    error LineLimitExceeded(bytes32 lineId, uint256 drawn, uint256 requested, uint256 limit);
    /// @notice The line's expiry has not passed yet.
    error LineNotExpired(bytes32 lineId, uint256 expiresAt, uint256 nowTs);
    /// @notice Only the line's platform closes it.
    error NotLinePlatform(address account);
}
