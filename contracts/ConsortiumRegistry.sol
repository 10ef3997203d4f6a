// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

/// @title ConsortiumRegistry
/// @notice Who is in the consortium and in which role, each lender's attested capital figures
/// (R5, R6, R8), and the versioned lending policy (R1-R8). The governor is the owner; hand-over
/// takes two steps (Ownable2Step).
contract ConsortiumRegistry is Ownable2Step, Pausable {
    enum Role {
        None,
        Governor,
        Platform,
        Lender,
        Auditor
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

    /// @dev One storage slot per version. Caps are fen, shares basis points.
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
    }

    /// @notice The ledger keeps one packed word per borrower with room for this many institutions,
    /// so R3 can never be governed above it.
    uint8 public constant MAX_INSTITUTIONS_LIMIT = 5;
    uint256 public constant MAX_NAME_BYTES = 64;

    mapping(address account => Member) private _members;
    mapping(address account => string) private _names;
    mapping(address account => bytes32) private _licences;
    address[] private _memberList;
    Policy[] private _policies;
    /// @dev The ledger's hot path reads one word: the current policy's fields (the low 200 bits,
    /// laid out as in Policy), the policy version (bits 200-231) and the pause flag (bit 232).
    /// Kept in step by _setPolicy, pause and unpause.
    uint256 private _hot;

    event MemberAdmitted(address indexed account, Role role, uint16 index, string name, bytes32 licenceHash);
    event MemberStatusChanged(address indexed account, Status from, Status to);
    event MemberFrozen(address indexed account, bool frozen);
    event CapitalAttested(address indexed lender, uint64 tier1Capital, uint64 totalLoanBalance, uint40 validUntil);
    event PolicyUpdated(uint32 indexed version, uint48 effectiveBlock, Policy policy);
    event GovernorChanged(address indexed previousGovernor, address indexed newGovernor);

    error AlreadyMember(address account);
    error NotMember(address account);
    error InvalidRole(Role role);
    error InvalidStatusChange(address account, Status from, Status to);
    error GovernorRecordImmutable(address account);
    error NameTooLong(uint256 length, uint256 max);
    error TooManyMembers();
    error NotActiveLender(address account);
    error InvalidAttestation(uint256 validUntil, uint256 nowTs, uint256 maxAge);
    error InvalidPolicy(string field);
    error UnknownPolicyVersion(uint256 version);
    error GovernorRequired();

    /// @param governor the consortium's governing address, recorded as the Governor member
    /// @param initial the first policy version (version 1)
    constructor(address governor, Policy memory initial) Ownable(governor) {
        _admit(governor, Role.Governor, "governor", bytes32(0));
        _setPolicy(initial);
    }

    // ------------------------------------------------------------------ membership

    /// @notice Admit a platform, lender or auditor. Governor only.
    /// @param account the member's address (an EOA or an ERC-1271 contract wallet)
    /// @param role Platform, Lender or Auditor
    /// @param name display name, at most 64 bytes; not personal data
    /// @param licenceHash hash of the member's licence reference
    function admitMember(address account, Role role, string calldata name, bytes32 licenceHash)
        external
        onlyOwner
    {
        if (role != Role.Platform && role != Role.Lender && role != Role.Auditor) revert InvalidRole(role);
        _admit(account, role, name, licenceHash);
    }

    /// @notice Suspend an active member: it can no longer sign or submit records. Governor only.
    function suspendMember(address account) external onlyOwner {
        _changeStatus(account, Status.Active, Status.Suspended);
    }

    /// @notice Reinstate a suspended member. Governor only.
    function reinstateMember(address account) external onlyOwner {
        _changeStatus(account, Status.Suspended, Status.Active);
    }

    /// @notice Remove a member for good; its records stay in the ledger. Governor only.
    function removeMember(address account) external onlyOwner {
        Member storage m = _members[account];
        Status from = m.status;
        if (from != Status.Active && from != Status.Suspended) {
            revert InvalidStatusChange(account, from, Status.Removed);
        }
        _changeStatus(account, from, Status.Removed);
    }

    /// @notice Freeze or unfreeze one member without changing its status. Governor only.
    function setFrozen(address account, bool frozen) external onlyOwner {
        Member storage m = _members[account];
        if (m.status == Status.None) revert NotMember(account);
        if (m.role == Role.Governor) revert GovernorRecordImmutable(account);
        m.frozen = frozen;
        emit MemberFrozen(account, frozen);
    }

    /// @notice Pause every ledger write consortium-wide. Governor only.
    function pause() external onlyOwner {
        _pause();
        _hot |= 1 << 232;
    }

    /// @notice Lift a global pause. Governor only.
    function unpause() external onlyOwner {
        _unpause();
        _hot &= ~uint256(1 << 232);
    }

    // ------------------------------------------------------------------ capital (R5, R6, R8)

    /// @notice A lender attests its own tier-1 net capital and total loan balance, valid until
    /// `validUntil`. Stale figures block new tranches from it (R8).
    /// @param tier1Capital tier-1 net capital, fen (R5 base)
    /// @param totalLoanBalance total loan balance, fen (R6 base)
    /// @param validUntil unix time; after it the figures are stale. At most the policy's
    /// maxAttestationAge ahead.
    function attestCapital(uint64 tier1Capital, uint64 totalLoanBalance, uint40 validUntil) external {
        Member storage m = _members[msg.sender];
        if (m.role != Role.Lender || m.status != Status.Active) revert NotActiveLender(msg.sender);
        uint256 maxAge = _policies[_policies.length - 1].maxAttestationAge;
        if (validUntil <= block.timestamp || validUntil - block.timestamp > maxAge) {
            revert InvalidAttestation(validUntil, block.timestamp, maxAge);
        }
        m.tier1Capital = tier1Capital;
        m.totalLoanBalance = totalLoanBalance;
        m.attestedAt = uint40(block.timestamp);
        m.attestedUntil = validUntil;
        emit CapitalAttested(msg.sender, tier1Capital, totalLoanBalance, validUntil);
    }

    // ------------------------------------------------------------------ policy

    /// @notice Publish a new policy version, in force from this block. Governor only.
    /// @dev `effectiveBlock` in the argument is ignored and set to the current block.
    function setPolicy(Policy calldata policy) external onlyOwner {
        _setPolicy(policy);
    }

    // ------------------------------------------------------------------ views

    /// @notice A member's packed record (role, status, frozen, index, capital attestation).
    function member(address account) external view returns (Member memory) {
        return _members[account];
    }

    /// @notice A member's display name and licence hash.
    function profile(address account) external view returns (string memory name, bytes32 licenceHash) {
        return (_names[account], _licences[account]);
    }

    /// @notice Number of members ever admitted, the governor included.
    function memberCount() external view returns (uint256) {
        return _memberList.length;
    }

    /// @notice The member with 1-based `index`.
    function memberAt(uint256 index) external view returns (address) {
        return _memberList[index - 1];
    }

    /// @notice True when `account` is active, unfrozen and holds `role`.
    function isActive(address account, Role role) external view returns (bool) {
        Member storage m = _members[account];
        return m.role == role && m.status == Status.Active && !m.frozen;
    }

    /// @notice The policy in force now and its version number (1-based).
    function currentPolicy() external view returns (Policy memory policy, uint32 version) {
        version = uint32(_policies.length);
        policy = _policies[version - 1];
    }

    /// @notice A past or current policy version, so history can be judged under its own policy.
    function policyAt(uint256 version) external view returns (Policy memory) {
        if (version == 0 || version > _policies.length) revert UnknownPolicyVersion(version);
        return _policies[version - 1];
    }

    /// @notice The number of policy versions published.
    function policyVersion() external view returns (uint32) {
        return uint32(_policies.length);
    }

    /// @notice Everything the ledger needs to judge a record in one call, as raw storage words
    /// (decoded by the PackedWords library): the policy in force, its version and the pause flag
    /// from one hot word, and each party's Member slot.
    /// @return policyWord the current Policy fields, as laid out in its slot, without effectiveBlock
    /// @return versionAndPause policy version in the low 32 bits, the pause flag in bit 32
    /// @return words each party's Member slot, in `parties` order
    function partyWords(address[] calldata parties)
        external
        view
        returns (uint256 policyWord, uint256 versionAndPause, uint256[] memory words)
    {
        uint256 hot = _hot;
        policyWord = hot & ((1 << 200) - 1);
        versionAndPause = hot >> 200;
        uint256 n = parties.length;
        words = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            Member storage m = _members[parties[i]];
            uint256 w;
            assembly ("memory-safe") {
                w := sload(m.slot)
            }
            words[i] = w;
        }
    }

    /// @notice One party's record and the pause flag, for repayments and status changes.
    function actorContext(address account) external view returns (bool isPaused, Member memory m) {
        return (paused(), _members[account]);
    }

    // ------------------------------------------------------------------ governor hand-over

    /// @dev The governor's member record follows ownership: the new governor must not already be
    /// a member in another role, and the old record is marked removed.
    function _transferOwnership(address newOwner) internal override {
        address previous = owner();
        super._transferOwnership(newOwner);
        if (previous != address(0)) {
            Member storage old = _members[previous];
            emit MemberStatusChanged(previous, old.status, Status.Removed);
            old.status = Status.Removed;
            _admit(newOwner, Role.Governor, "governor", bytes32(0));
            emit GovernorChanged(previous, newOwner);
        }
    }

    /// @notice Disabled: the consortium always has a governor.
    function renounceOwnership() public pure override {
        revert GovernorRequired();
    }

    // ------------------------------------------------------------------ internals

    function _admit(address account, Role role, string memory name, bytes32 licenceHash) private {
        if (_members[account].status != Status.None) revert AlreadyMember(account);
        if (bytes(name).length > MAX_NAME_BYTES) revert NameTooLong(bytes(name).length, MAX_NAME_BYTES);
        if (_memberList.length >= type(uint16).max) revert TooManyMembers();
        _memberList.push(account);
        uint16 index = uint16(_memberList.length);
        _members[account] = Member({
            role: role,
            status: Status.Active,
            frozen: false,
            index: index,
            tier1Capital: 0,
            totalLoanBalance: 0,
            attestedAt: 0,
            attestedUntil: 0
        });
        _names[account] = name;
        _licences[account] = licenceHash;
        emit MemberAdmitted(account, role, index, name, licenceHash);
    }

    function _changeStatus(address account, Status from, Status to) private {
        Member storage m = _members[account];
        if (m.status == Status.None) revert NotMember(account);
        if (m.role == Role.Governor) revert GovernorRecordImmutable(account);
        if (m.status != from) revert InvalidStatusChange(account, m.status, to);
        m.status = to;
        emit MemberStatusChanged(account, from, to);
    }

    function _setPolicy(Policy memory p) private {
        if (p.consumerCap == 0) revert InvalidPolicy("consumerCap");
        if (p.businessCap == 0) revert InvalidPolicy("businessCap");
        if (p.maxInstitutions == 0 || p.maxInstitutions > MAX_INSTITUTIONS_LIMIT) {
            revert InvalidPolicy("maxInstitutions");
        }
        if (p.minPlatformShareBps > 10_000) revert InvalidPolicy("minPlatformShareBps");
        if (p.maxPartnerCapitalBps > 10_000) revert InvalidPolicy("maxPartnerCapitalBps");
        if (p.maxJointLoanBps > 10_000) revert InvalidPolicy("maxJointLoanBps");
        if (p.maxConsumerBulletDays == 0) revert InvalidPolicy("maxConsumerBulletDays");
        if (p.maxAttestationAge == 0) revert InvalidPolicy("maxAttestationAge");
        p.effectiveBlock = uint48(block.number);
        _policies.push(p);
        Policy storage stored = _policies[_policies.length - 1];
        uint256 word;
        assembly ("memory-safe") {
            word := sload(stored.slot)
        }
        _hot = (word & ((1 << 200) - 1)) | (_policies.length << 200) | (_hot & (1 << 232));
        emit PolicyUpdated(uint32(_policies.length), p.effectiveBlock, p);
    }
}
