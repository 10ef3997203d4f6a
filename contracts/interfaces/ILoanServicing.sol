// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IConsortiumRegistry} from "./IConsortiumRegistry.sol";
import {ICoLendingLedger} from "./ICoLendingLedger.sol";
import {LedgerTypes} from "../libraries/LedgerTypes.sol";

/// @title ILoanServicing
/// @notice What happens to a co-loan after origination besides repayment, kept out of the ledger
/// (EIP-170 size, origination gas): guarantees (R10) and compensatory payments (代偿), each bank's
/// five-category classification of its own tranche against the DPD floor, and recoveries on a
/// written-off loan. Every call names the loan by its full terms, checked against the ledger's
/// commitment, so this contract stores nothing of the terms.
interface ILoanServicing {
    /// @notice A guarantor's guarantee of one loan, one storage slot.
    struct Guarantee {
        address guarantor;
        uint16 coverBps; // share of each bank tranche's outstanding principal covered
        uint56 amount; // fen covered when recorded; counts against the guarantor's R10 capacity
        bool settled; // compensated or released: no longer counts against R10
    }

    /// @notice `guarantor` offered to cover `coverBps` of the bank tranches of `loanId`.
    event GuaranteeOffered(bytes32 indexed loanId, address indexed guarantor, uint16 coverBps);
    /// @notice The loan's platform accepted the guarantee: `amount` fen covered.
    event GuaranteeRecorded(bytes32 indexed loanId, address indexed guarantor, uint16 coverBps, uint256 amount);
    /// @notice The guarantee ended without a payout (the loan was repaid).
    event GuaranteeReleased(bytes32 indexed loanId, address indexed guarantor, uint256 amount);
    /// @notice The guarantor paid each tranche `payouts[i]` fen (代偿), in tranche order. The
    /// banks' outstanding falls by it; the borrower's exposure does not (the debt is now owed to
    /// the guarantor).
    event Compensated(bytes32 indexed loanId, address indexed guarantor, uint256 total, uint256[] payouts);
    /// @notice `lender` classified its tranche of `loanId` as `category` (0 normal .. 4 loss) at
    /// `dpd` days past due.
    event Classified(bytes32 indexed loanId, address indexed lender, uint8 category, uint256 dpd);
    /// @notice A recovery on a written-off loan, split per tranche (`split`, tranche order).
    event Recovered(bytes32 indexed loanId, bytes32 indexed recoveryId, uint256 amount, uint256[] split);
    /// @notice A prepayment (提前还款): `principal` fen were repaid beyond the first `covered`
    /// instalments of the schedule in force, so its remaining instalments were rescaled to
    /// `schedule` (same count and due dates, smaller; ledger.prepayment's rule), whose digest is
    /// `scheduleDigest`. The schedule in force starts after `principalBase` fen of the loan's
    /// principal repaid.
    event Prepaid(
        bytes32 indexed loanId,
        uint256 principal,
        uint256 covered,
        uint256 principalBase,
        bytes32 scheduleDigest,
        uint256[] schedule
    );

    /// @notice The consortium is paused (the registry's emergency brake).
    error LedgerPaused();
    /// @notice The caller is not an active, unfrozen member in `role`.
    error NotActiveInRole(address account, IConsortiumRegistry.Role role);
    /// @notice The loan's terms do not match the ledger's commitment (or the loan is unknown).
    error TermsMismatch(bytes32 loanId);
    /// @notice The loan is not in a status that allows this.
    error WrongLoanStatus(bytes32 loanId, LedgerTypes.LoanStatus status);
    /// @notice Only the platform servicing the loan (its own, or its successor) may do this.
    error NotLoanPlatform(address account, address platform);
    /// @notice A cover share of 0 or above 10,000 bps.
    error InvalidCover(uint256 coverBps);
    /// @notice The loan already has a guarantee, or its guarantee is settled.
    error GuaranteeExists(bytes32 loanId);
    /// @notice The platform's accepted cover differs from the guarantor's offer.
    error GuaranteeOfferMismatch(bytes32 loanId, address guarantor);
    /// @notice The loan has no unsettled guarantee by the caller.
    error NoGuarantee(bytes32 loanId, address account);
    /// @notice R10: the guarantor's outstanding guarantees would exceed its multiple of net assets.
    error GuaranteeCapExceeded(address guarantor, uint256 outstanding, uint256 requested, uint256 cap);
    /// @notice R10 uses attested net assets; the guarantor's attestation is stale since `until`.
    error StaleNetAssets(address guarantor, uint256 attestedUntil, uint256 nowTs);
    /// @notice The schedule given does not hash to the loan's schedule in force: its committed
    /// scheduleDigest, or the digest of its last prepayment's schedule.
    error ScheduleMismatch(bytes32 loanId);
    /// @notice Nothing to reschedule: the principal repaid against the schedule in force
    /// (`principalRepaid` fen) ends exactly after `covered` whole instalments (or covers them all).
    error NothingPrepaid(bytes32 loanId, uint256 principalRepaid, uint256 covered);
    /// @notice A prepayment while an instalment is past due (`dpd` days): arrears come first.
    error PrepaymentWhileOverdue(bytes32 loanId, uint256 dpd);
    /// @notice Only a bank that funds a tranche of the loan classifies it.
    error NotTrancheLender(bytes32 loanId, address account);
    /// @notice Categories are 0 (normal) to 4 (loss).
    error InvalidCategory(uint256 category);
    /// @notice The bank's category is milder than the DPD floor's.
    error ClassificationBelowFloor(bytes32 loanId, address lender, uint256 category, uint256 floor, uint256 dpd);
    /// @notice A recovery id is used.
    error IdAlreadyUsed(bytes32 id);
    /// @notice A recovery id must start with the submitting platform's address (ids belong to their
    /// platform, as the ledger's do).
    error IdOutsideNamespace(bytes32 id, address platform);
    /// @notice A recovery of zero.
    error ZeroAmount();
    /// @notice Recoveries would exceed the loan's principal.
    error RecoveryExceedsPrincipal(bytes32 loanId, uint256 recovered, uint256 requested, uint256 principal);

    /// @notice A guarantor offers to cover `coverBps` of a loan's bank tranches. Active, unfrozen
    /// guarantor only; the loan's platform records it with acceptGuarantee.
    function offerGuarantee(bytes32 loanId, uint16 coverBps) external;

    /// @notice The loan's platform accepts `guarantor`'s offer for an open loan. R10: the covered
    /// amount (coverBps of the bank tranches' outstanding, floored per tranche) plus the
    /// guarantor's unsettled guarantees stays within maxGuaranteeMultiple x its attested net
    /// assets, and the attestation is fresh (R8's expiry rule).
    function acceptGuarantee(LedgerTypes.CoLoan calldata loan, address guarantor, uint16 coverBps) external;

    /// @notice The guarantor of a defaulted loan records its compensatory payment: each bank
    /// tranche gets floor(outstanding x coverBps / 10,000). Once per loan.
    function compensate(LedgerTypes.CoLoan calldata loan) external;

    /// @notice Anyone ends the guarantee of a repaid loan, freeing the guarantor's R10 capacity.
    function releaseGuarantee(LedgerTypes.CoLoan calldata loan) external;

    /// @notice A bank classifies its own tranche. `schedule` is the loan's schedule in force
    /// (instalment words hashing to its scheduleDigest, or to its last prepayment's digest, whose
    /// principal counts from that prepayment's principalBase); the DPD floor of the policy in
    /// force applies to the days past due at this block, and a milder category reverts
    /// ClassificationBelowFloor.
    function classify(LedgerTypes.CoLoan calldata loan, uint256[] calldata schedule, uint8 category) external;

    /// @notice The loan's platform records a recovery on a written-off loan, split across the
    /// tranches by principal share (cumulatively, ledger.allocation's rule); exposure is not
    /// added back.
    function recover(LedgerTypes.CoLoan calldata loan, bytes32 recoveryId, uint256 amount) external;

    /// @notice The loan's platform records that the principal repaid so far includes a prepayment.
    /// `schedule` is the schedule in force. Its leading instalments whose principal is repaid in
    /// full stay paid; the principal repaid beyond them, E, must be positive and no instalment may
    /// be past due. The F fen of principal the remaining instalments carry become F - E (the
    /// loan's outstanding): instalment i's principal is ceil(C_i (F - E) / F) - ceil(C_(i-1) (F - E)
    /// / F), C_i the remaining principal cumulated through i, and its interest and charges are
    /// scaled by (F - E) / F, rounded half up; due dates and count stay. The new schedule is never
    /// milder: by every due date at least as much principal is due as before. Emits Prepaid.
    function prepay(LedgerTypes.CoLoan calldata loan, uint256[] calldata schedule) external;

    /// @notice The registry parties and policy are read from.
    function registry() external view returns (IConsortiumRegistry);

    /// @notice The ledger whose loans this contract services.
    function ledger() external view returns (ICoLendingLedger);

    /// @notice A loan's guarantee (zero if none).
    function guaranteeOf(bytes32 loanId) external view returns (Guarantee memory);

    /// @notice The cover `guarantor` offers on `loanId` and the platform has not yet accepted
    /// (0 if none).
    function offerOf(bytes32 loanId, address guarantor) external view returns (uint16 coverBps);

    /// @notice A guarantor's unsettled guarantees, fen (R10).
    function guaranteedOutstanding(address guarantor) external view returns (uint256);

    /// @notice Each tranche's compensatory payment received, fen, in tranche order (empty if none).
    function compensationOf(bytes32 loanId) external view returns (uint256[] memory);

    /// @notice `lender`'s classification of its tranche of `loanId`: recorded, and the category.
    function classificationOf(bytes32 loanId, address lender) external view returns (bool recorded, uint8 category);

    /// @notice A loan's schedule in force after its last prepayment: the digest's first 24 bytes
    /// and the principal repaid before it starts, fen. Zero digest: the committed schedule.
    function currentSchedule(bytes32 loanId) external view returns (bytes24 digest, uint256 principalBase);

    /// @notice Total recovered on a loan, fen.
    function recovered(bytes32 loanId) external view returns (uint256);

    /// @notice Days past due at `at` of a loan with instalment words `schedule` and `principalRepaid`
    /// fen of principal repaid: from the oldest instalment whose principal is not fully repaid
    /// (cumulatively), started days (a second past due is day 1). Mirrors
    /// ledger.economics.days_past_due.
    function daysPastDue(uint256[] calldata schedule, uint256 principalRepaid, uint256 at)
        external
        pure
        returns (uint256);

    /// @notice The prepayment rule (see prepay) on instalment words `schedule` with
    /// `principalRepaid` fen repaid against them at `at`: the instalments covered in full, the
    /// principal prepaid beyond them and the remaining instalments rescaled. Reverts as prepay
    /// would (loan id 0). Mirrors ledger.prepayment.rescale.
    function rescale(uint256[] calldata schedule, uint256 principalRepaid, uint256 at)
        external
        pure
        returns (uint256 covered, uint256 principal, uint256[] memory remaining);

    /// @notice keccak256 of the instalment words: what a loan's scheduleDigest commits to.
    function scheduleDigest(uint256[] calldata schedule) external pure returns (bytes32);
}
