// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IConsortiumRegistry} from "./IConsortiumRegistry.sol";
import {LedgerTypes} from "../libraries/LedgerTypes.sol";

/// @title ICoLendingLedger
/// @notice Joint credit lines and co-loans, each signed (EIP-712) by the platform and every lender
/// that funds it, with the borrower's consortium-wide exposure and each bank's concentration kept
/// on chain: the ledger's types, events and external functions. Its errors are in
/// ICoLendingLedgerErrors.
interface ICoLendingLedger {
    /// @notice A credit line's stored state; one storage slot.
    struct LineRecord {
        uint48 limit;
        uint48 drawn; // outstanding principal of loans drawn under the line
        uint40 expiresAt;
        LedgerTypes.LineStatus status;
        uint8 product;
        uint16 platformIndex;
        uint80 institutions; // five 16-bit member indices of the share holders
        uint8 frozen; // bit j set: the holder in slot j of `institutions` froze its share
    }

    /// @notice A co-loan was recorded under policy `policyVersion`, with its full terms and the
    /// parties' packed signatures.
    event LoanOriginated(
        bytes32 indexed loanId,
        bytes32 indexed borrowerKey,
        address indexed platform,
        uint32 policyVersion,
        LedgerTypes.CoLoan loan,
        bytes signatures
    );
    /// @notice A loan of a non-atomic batch was not recorded; `reason` is its revert data.
    event LoanRejected(bytes32 indexed loanId, bytes reason);
    /// @notice A credit line was granted under policy `policyVersion`, with its full terms and the
    /// parties' packed signatures.
    event LineGranted(
        bytes32 indexed lineId,
        bytes32 indexed borrowerKey,
        address indexed platform,
        uint32 policyVersion,
        LedgerTypes.CreditLine line,
        bytes signatures
    );
    /// @notice A credit line was closed or expired with `drawn` of its `limit` outstanding.
    event LineEnded(
        bytes32 indexed lineId, bytes32 indexed borrowerKey, LedgerTypes.LineStatus status, uint256 limit, uint256 drawn
    );
    /// @notice A bank froze (or unfroze) its share of the undrawn part of a line it funds.
    event LineShareFrozen(bytes32 indexed lineId, address indexed lender, bool frozen);
    /// @notice A repayment, with each tranche's part of its principal and interest (tranche order).
    event Repaid(
        bytes32 indexed loanId,
        bytes32 indexed repaymentId,
        uint256 principal,
        uint256 interest,
        uint256 outstanding,
        uint256[] principalAllocation,
        uint256[] interestAllocation
    );
    /// @notice The platform's service fee out of each tranche's interest of repayment
    /// `repaymentId` (tranche order; 0 for the platform's own tranche and a bank without
    /// partnership terms in force): each bank keeps `Repaid.interestAllocation[i] - fees[i]`.
    event ServiceFees(bytes32 indexed loanId, bytes32 indexed repaymentId, uint256[] fees);
    /// @notice A loan's status changed; a write-off releases `releasedPrincipal`.
    event LoanStatusChanged(
        bytes32 indexed loanId,
        LedgerTypes.LoanStatus from,
        LedgerTypes.LoanStatus to,
        bytes32 reason,
        uint256 releasedPrincipal
    );

    // ------------------------------------------------------------------ origination

    /// @notice Record one co-loan. The caller must be the loan's platform; `signatures` packs the
    /// EIP-712 signature of each `loan.tranches[i].lender` over `loan`, in tranche order, each as a
    /// 2-byte big-endian length and then the signature (the platform signs its own tranche).
    /// Reverts with the rule's error if any of R1-R8 would break. `loan.loanId` starts with the
    /// platform's 20 bytes (IdOutsideNamespace otherwise). A loan drawn under a line
    /// (`loan.lineId` non-zero) is submitted by the platform servicing the line and funded only by
    /// holders of the line's shares (NotLineShareHolder otherwise; after a servicing transfer the
    /// successor stands in for the old platform's share), within the line's limit, before its
    /// expiry.
    /// With a non-zero `loan.scheduleDigest`, `schedule` is the committed schedule (one word per
    /// instalment: due 40 | principal 72 | interest 72 | charges 72); it must hash to the digest,
    /// fall due strictly later each time after the loan's start (last due - termDays days), sum
    /// to the principal, and give the declared all-in APR within 1 bp (ScheduleCheck). Without a
    /// digest it is empty.
    /// @return policyVersion the policy version the loan was judged under
    function originate(LedgerTypes.CoLoan calldata loan, bytes calldata signatures, uint256[] calldata schedule)
        external
        returns (uint32 policyVersion);

    /// @notice Record many co-loans in one transaction. With `atomic`, any failure reverts the
    /// whole batch; otherwise each failing loan emits `LoanRejected` with its revert data and the
    /// rest are recorded.
    /// `schedules[i]` is loan i's schedule, as `originate` takes it.
    /// @return accepted how many loans were recorded
    function originateBatch(
        LedgerTypes.CoLoan[] calldata loans,
        bytes[] calldata signatures,
        uint256[][] calldata schedules,
        bool atomic
    ) external returns (uint256 accepted);

    /// @notice Internal entry point for non-atomic batches, so one loan's revert can be caught.
    /// Callable only by this contract.
    function originateFromBatch(
        address submitter,
        LedgerTypes.CoLoan calldata loan,
        bytes calldata signatures,
        uint256[] calldata schedule
    ) external returns (uint32);

    /// @notice Grant a joint credit line. Its whole limit counts as the borrower's exposure until
    /// it is closed or expires; loans drawn under it add none. `signatures` packs the
    /// signature of each `line.shares[i].lender`, in share order, as `originate` does. A signed
    /// expiry that does not fit the 40 bits it is stored in is refused (ExpiryTooLarge).
    /// @return policyVersion the policy version the line was judged under
    function grantLine(LedgerTypes.CreditLine calldata line, bytes calldata signatures)
        external
        returns (uint32 policyVersion);

    // ------------------------------------------------------------------ line lifecycle

    /// @notice Freeze (or unfreeze) the caller's share of an active line it funds: while frozen,
    /// a draw with a tranche from the caller is refused (`LineFrozen`). Only that bank, for its
    /// own share; the line's limit still counts in the borrower's exposure until it ends.
    function freezeLine(bytes32 lineId, bool frozen) external;

    /// @notice Close an active line early. Only the platform servicing the line (its own, or its
    /// successor after a servicing transfer). Releases its limit from the
    /// borrower's exposure; loans still outstanding under it count on their own from now on.
    function closeLine(bytes32 lineId) external;

    /// @notice Mark a line past its expiry as expired, releasing its limit. Anyone may call it:
    /// it only gives effect to what the parties signed.
    function expireLine(bytes32 lineId) external;

    // ------------------------------------------------------------------ repayments and status

    /// @notice Record a repayment of `principal` and `interest` (fen), split across the tranches by
    /// the Allocation rule. Only the platform servicing the loan (its own, or its successor after a
    /// servicing transfer); `loan` must be the terms it was recorded with. Each `repaymentId` is
    /// accepted once and starts with the submitting platform's 20 bytes.
    function repay(LedgerTypes.CoLoan calldata loan, bytes32 repaymentId, uint256 principal, uint256 interest)
        external;

    /// @notice Move a loan to Overdue, back to Active, to Defaulted or to WrittenOff. Legal moves:
    /// Active->Overdue, Overdue->Active, Overdue->Defaulted, Overdue->WrittenOff,
    /// Defaulted->WrittenOff. A write-off releases the outstanding principal. Repaid is reached only
    /// by repayment. Only the platform servicing the loan.
    /// @param reason a short code, never personal data
    function setStatus(LedgerTypes.CoLoan calldata loan, LedgerTypes.LoanStatus to, bytes32 reason) external;

    // ------------------------------------------------------------------ views

    /// @notice Largest principal, limit or payment accepted, in fen (2^48 - 1, about 2.8 trillion CNY).
    function MAX_AMOUNT() external view returns (uint256);

    /// @notice The registry of members, capital attestations and policy.
    function registry() external view returns (IConsortiumRegistry);

    /// @notice A loan's stored state: commitment to its terms, outstanding principal, status.
    function loanState(bytes32 loanId)
        external
        view
        returns (bytes24 commitment, uint256 outstanding, LedgerTypes.LoanStatus status);

    /// @notice Each tranche's outstanding principal, given the loan's terms.
    function trancheOutstanding(LedgerTypes.CoLoan calldata loan) external view returns (uint256[] memory out);

    /// @notice A credit line's state and borrower.
    function lineState(bytes32 lineId) external view returns (LineRecord memory line, bytes32 borrowerKey);

    /// @notice A borrower's exposure by product and the institutions with open records (R3).
    function borrowerExposure(bytes32 borrowerKey)
        external
        view
        returns (uint256 consumer, uint256 business, uint16[] memory institutions, uint16[] memory openRecords);

    /// @notice A borrower's headroom under R1, R2 and R3 in the policy in force now.
    function headroom(bytes32 borrowerKey)
        external
        view
        returns (uint256 consumer, uint256 business, uint256 institutions, uint256 maxInstitutions);

    /// @notice A lender's outstanding joint loans, in total (R6) and with `partner` (R5), and the
    /// limits its current attestation and the policy give: `attestedUntil` is the end of the
    /// period the lender attested, `validUntil` the date R8 judges at use (the earlier of
    /// `attestedUntil` and the attestation's time plus the maxAttestationAge in force now).
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
        );

    /// @notice The EIP-712 digest every party of `loan` signs.
    function loanDigest(LedgerTypes.CoLoan calldata loan) external view returns (bytes32);

    /// @notice The EIP-712 digest every party of `line` signs.
    function lineDigest(LedgerTypes.CreditLine calldata line) external view returns (bytes32);

    /// @notice Whether a repayment id has been used.
    function repaymentRecorded(bytes32 repaymentId) external view returns (bool);
}
