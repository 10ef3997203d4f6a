// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {MemberWord, PolicyWord} from "../libraries/PackedWords.sol";

/// @title IConsortiumRegistry
/// @notice Who is in the consortium and in which role, each lender's attested capital figures
/// (R5, R6, R8), and the versioned lending policy (R1-R8): the registry's types, events and
/// external functions. Its errors are in IConsortiumRegistryErrors.
interface IConsortiumRegistry {
    enum Role {
        None,
        Governor,
        Platform,
        Lender,
        Auditor,
        Guarantor
    }

    enum Status {
        None,
        Active,
        Suspended,
        Removed
    }

    /// @dev One storage slot: everything the ledger's hot path needs about a party.
    struct Member {
        Role role;
        Status status;
        bool frozen;
        uint16 index;
        uint64 tier1Capital; // fen
        uint64 totalLoanBalance; // fen
        uint40 attestedAt;
        uint40 attestedUntil;
    }

    /// @dev Two storage slots per version (R9 alone in the second; the ledger reads it from the
    /// registry's hot word). Caps are fen, shares and rates basis points.
    struct Policy {
        uint48 consumerCap; // R1
        uint48 businessCap; // R2
        uint8 maxInstitutions; // R3
        uint16 minPlatformShareBps; // R4
        uint16 maxPartnerCapitalBps; // R5
        uint16 maxJointLoanBps; // R6
        uint16 maxConsumerBulletDays; // R7
        uint32 maxAttestationAge; // R8, seconds
        uint48 effectiveBlock;
        uint8 minBankTranches; // R0: bank (Lender) tranches every loan and line must carry, >= 1
        uint16 maxAllInAprBps; // R9: all-in APR (IRR, annualised) every loan may declare, <= 3,600
        uint8 maxGuaranteeMultiple; // R10: a guarantor's outstanding guarantees <= this x net assets
        uint16 specialMentionMaxDpd; // five-category floor: DPD 1..this is special mention (<= 90)
        uint16 substandardMaxDpd; // ... up to this substandard (<= 270)
        uint16 doubtfulMaxDpd; // ... up to this doubtful (<= 360); above it, loss
    }

    /// @notice A bank-platform partnership's terms (the platform's service-fee share of the bank's
    /// interest, its disclosed range and validity); in force once both have sent the same terms.
    struct Partnership {
        uint16 feeBps;
        uint16 minFeeBps;
        uint16 maxFeeBps;
        uint40 validFrom;
        uint40 validUntil;
    }

    /// @notice `account` joined as `role` with 1-based member `index`.
    event MemberAdmitted(address indexed account, Role role, uint16 index, string name, bytes32 licenceHash);
    /// @notice A member was suspended, reinstated or removed (or a governor handed over).
    event MemberStatusChanged(address indexed account, Status from, Status to);
    /// @notice A member was frozen or unfrozen; its status is unchanged.
    event MemberFrozen(address indexed account, bool frozen);
    /// @notice A lender attested its capital figures, valid until `validUntil`.
    event CapitalAttested(address indexed lender, uint64 tier1Capital, uint64 totalLoanBalance, uint40 validUntil);
    /// @notice Policy `version` is in force from `effectiveBlock`.
    event PolicyUpdated(uint32 indexed version, uint48 effectiveBlock, Policy policy);
    /// @notice `bank` offered `platform` partnership terms; they bind once the platform accepts.
    event PartnershipOffered(address indexed bank, address indexed platform, Partnership terms);
    /// @notice Both `bank` and `platform` have sent these terms: they are in force.
    event PartnershipSigned(address indexed bank, address indexed platform, Partnership terms);
    /// @notice Governance passed from `previousGovernor` to `newGovernor`.
    event GovernorChanged(address indexed previousGovernor, address indexed newGovernor);
    /// @notice The open loans and credit lines of platform `from` (suspended or removed) are
    /// serviced by active platform `to` from now on, with everything `from` serviced before.
    event ServicingTransferred(address indexed from, address indexed to);

    // ------------------------------------------------------------------ membership

    /// @notice Admit a platform, lender, auditor or guarantor. Governor only.
    /// @param account the member's address (an EOA or an ERC-1271 contract wallet)
    /// @param role Platform, Lender, Auditor or Guarantor
    /// @param name display name, at most 64 bytes; not personal data
    /// @param licenceHash hash of the member's licence reference
    function admitMember(address account, Role role, string calldata name, bytes32 licenceHash) external;

    /// @notice Suspend an active member: it can no longer sign or submit records. Governor only.
    function suspendMember(address account) external;

    /// @notice Reinstate a suspended member. Governor only. A platform whose servicing was
    /// transferred stays out: its book belongs to its successor (ServicingWasTransferred).
    function reinstateMember(address account) external;

    /// @notice Remove a member for good; its records stay in the ledger. Governor only.
    function removeMember(address account) external;

    /// @notice Freeze or unfreeze one member without changing its status. Governor only.
    function setFrozen(address account, bool frozen) external;

    /// @notice Hand the servicing of a suspended or removed platform's open loans and credit lines
    /// (repayments, status changes, write-offs, draws, closing lines) to another active, unfrozen
    /// platform, for good. Governor only (the council, through its timelock). Exposure and
    /// R3/R5/R6 usage stay where they were recorded and are released by the successor's actions.
    /// @param from a suspended or removed platform
    /// @param to an active, unfrozen platform whose own servicing was never transferred
    function transferServicing(address from, address to) external;

    /// @notice Pause every ledger write consortium-wide at once: the emergency brake. Any active,
    /// unfrozen platform, lender or auditor, or the governor. OpenZeppelin's Paused(account)
    /// names who pulled it.
    function pause() external;

    /// @notice Lift a global pause. Governor only (the council, through its timelock).
    function unpause() external;

    // ------------------------------------------------------------------ capital (R5, R6, R8)

    /// @notice A lender attests its own tier-1 net capital and total loan balance, valid until
    /// `validUntil`. Stale figures block new tranches from it (R8). A guarantor attests its net
    /// assets as `tier1Capital` (R10), expiring alike.
    /// @param tier1Capital tier-1 net capital, fen (R5 base)
    /// @param totalLoanBalance total loan balance, fen (R6 base)
    /// @param validUntil unix time; after it the figures are stale. At most the policy's
    /// maxAttestationAge ahead.
    function attestCapital(uint64 tier1Capital, uint64 totalLoanBalance, uint40 validUntil) external;

    // ------------------------------------------------------------------ partnerships (fees)

    /// @notice A bank offers a platform partnership terms: the platform's fee share of the bank's
    /// interest within a disclosed range, valid from/until. Active, unfrozen lender only; the
    /// platform must be an admitted platform. Reverts FeeShareOutOfRange unless
    /// minFeeBps <= feeBps <= maxFeeBps <= 10,000, InvalidPeriod unless validFrom < validUntil.
    function offerPartnership(address platform, Partnership calldata terms) external;

    /// @notice The platform accepts exactly the terms `bank` offered (PartnershipTermsMismatch
    /// otherwise); they replace any earlier terms of the pair. Active, unfrozen platform only.
    function acceptPartnership(address bank, Partnership calldata terms) external;

    /// @notice The terms in force between `bank` and `platform` (zero if none were signed).
    function partnership(address bank, address platform) external view returns (Partnership memory);

    /// @notice The platform's service fee out of each tranche's `interest` at this block: for a
    /// bank tranche under partnership terms valid now, floor(interest * feeBps / 10,000); 0 for
    /// the platform's own tranche and for a bank without terms in force.
    function serviceFees(address platform, address[] calldata lenders, uint256[] calldata interest)
        external
        view
        returns (uint256[] memory fees);

    // ------------------------------------------------------------------ policy

    /// @notice Publish a new policy version, in force from this block. Governor only (the council,
    /// through its timelock). Reverts with PolicyOutOfBounds beyond the hard regulatory bounds.
    /// @dev `effectiveBlock` in the argument is ignored and set to the current block.
    function setPolicy(Policy calldata policy) external;

    // ------------------------------------------------------------------ views

    /// @notice The ledger keeps one packed word per borrower with room for this many institutions,
    /// so R3 can never be governed above it.
    function MAX_INSTITUTIONS_LIMIT() external view returns (uint8);

    /// @notice The longest display name accepted, in bytes.
    function MAX_NAME_BYTES() external view returns (uint256);

    /// @notice A member's packed record (role, status, frozen, index, capital attestation).
    function member(address account) external view returns (Member memory);

    /// @notice A member's display name and licence hash.
    function profile(address account) external view returns (string memory name, bytes32 licenceHash);

    /// @notice Number of members ever admitted, the governor included.
    function memberCount() external view returns (uint256);

    /// @notice The member with 1-based `index`.
    function memberAt(uint256 index) external view returns (address);

    /// @notice The platform that services the records `platform` originated: `platform` itself
    /// unless its servicing was transferred, else the end of its chain of transfers.
    function servicer(address platform) external view returns (address);

    /// @notice True when `account` is active, unfrozen and holds `role`.
    function isActive(address account, Role role) external view returns (bool);

    /// @notice The policy in force now and its version number (1-based).
    function currentPolicy() external view returns (Policy memory policy, uint32 version);

    /// @notice A past or current policy version, so history can be judged under its own policy.
    function policyAt(uint256 version) external view returns (Policy memory);

    /// @notice The number of policy versions published.
    function policyVersion() external view returns (uint32);

    /// @notice Whether ledger writes are paused consortium-wide.
    function paused() external view returns (bool);

    /// @notice Everything the ledger needs to judge a record in one call, as raw storage words
    /// (typed for the PackedWords library; plain uint256 in the ABI): the policy in force, its
    /// version and the pause flag from one hot word, and each party's Member slot.
    /// @return policyWord the current Policy fields, as laid out in its slot, without effectiveBlock
    /// @return versionAndPause policy version in the low 32 bits, the pause flag in bit 32
    /// (maxAllInAprBps rides in policyWord's bits 233-247, above them)
    /// @return words each party's Member slot, in `parties` order
    function partyWords(address[] calldata parties)
        external
        view
        returns (PolicyWord policyWord, uint256 versionAndPause, MemberWord[] memory words);

    /// @notice One party's record and the pause flag, for repayments and status changes.
    function actorContext(address account) external view returns (bool isPaused, Member memory m);
}
