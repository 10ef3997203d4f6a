// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

import {IConsortiumRegistry} from "./interfaces/IConsortiumRegistry.sol";
import {IConsortiumRegistryErrors} from "./interfaces/IConsortiumRegistryErrors.sol";
import {MemberWord, PolicyWord} from "./libraries/PackedWords.sol";

/// @title ConsortiumRegistry
/// @notice Who is in the consortium and in which role, each lender's attested capital figures
/// (R5, R6, R8), and the versioned lending policy (R1-R8). The owner (the governor) is the
/// council's TimelockController once deployed; hand-over takes two steps (Ownable2Step). Any
/// active member may pause; only the owner unpauses. No policy can cross the hard bounds below.
contract ConsortiumRegistry is IConsortiumRegistry, IConsortiumRegistryErrors, Ownable2Step, Pausable {
    /// @inheritdoc IConsortiumRegistry
    uint8 public constant MAX_INSTITUTIONS_LIMIT = 5;
    /// @inheritdoc IConsortiumRegistry
    uint256 public constant MAX_NAME_BYTES = 64;

    /// @dev Hard bounds no vote can cross, from the regulation the rules cite (DESIGN §4).
    uint256 private constant BOUND_CONSUMER_CAP = 200_000 * 100; // R1 <= 200,000 CNY, fen
    uint256 private constant BOUND_BUSINESS_CAP = 1_000_000 * 100; // R2 <= 1,000,000 CNY, fen
    uint256 private constant BOUND_MIN_PLATFORM_SHARE_BPS = 3_000; // R4 >= 30%
    uint256 private constant BOUND_PARTNER_CAPITAL_BPS = 2_500; // R5 <= 25%
    uint256 private constant BOUND_JOINT_LOAN_BPS = 5_000; // R6 <= 50%
    uint256 private constant BOUND_CONSUMER_BULLET_DAYS = 365; // R7 <= 365 days
    uint256 private constant BOUND_ALL_IN_APR_BPS = 3_600; // R9 <= 36%, fits the hot word's 15 bits
    uint256 private constant BOUND_GUARANTEE_MULTIPLE = 10; // R10 <= 10x net assets
    uint256 private constant BOUND_SPECIAL_MENTION_DPD = 90; // overdue > 90 days: substandard at least
    uint256 private constant BOUND_SUBSTANDARD_DPD = 270; // > 270: doubtful at least
    uint256 private constant BOUND_DOUBTFUL_DPD = 360; // > 360: loss

    mapping(address account => Member) private _members;
    mapping(address account => string) private _names;
    mapping(address account => bytes32) private _licences;
    address[] private _memberList;
    /// @dev platform -> the platform it handed its servicing to (zero: none). Acyclic: a
    /// transfer's target has no entry, and a platform with an entry is never active again.
    mapping(address platform => address) private _servicers;
    Policy[] private _policies;
    mapping(bytes32 pair => Partnership) private _partnerships;
    mapping(bytes32 pair => Partnership) private _offers;
    /// @dev The ledger's hot path reads one word: the current policy's fields (the low 200 bits
    /// and bits 248-255, laid out as in Policy: effectiveBlock's bits 200-247 are not needed
    /// there), the policy version (bits 200-231), the pause flag (bit 232) and R9's
    /// maxAllInAprBps (bits 233-247; in Policy it is in the second slot).
    /// Kept in step by _setPolicy, pause and unpause.
    uint256 private _hot;
    /// @dev The bits of the first Policy slot that _hot carries (see _hot).
    uint256 private constant _SLOT_POLICY_BITS = ((1 << 200) - 1) | (uint256(0xff) << 248);
    /// @dev The bits of _hot that hold policy fields: the slot's, and R9 at bits 233-247.
    uint256 private constant _POLICY_BITS = _SLOT_POLICY_BITS | (uint256(0x7fff) << 233);

    /// @param governor the consortium's governing address, recorded as the Governor member
    /// @param initial the first policy version (version 1)
    constructor(address governor, Policy memory initial) Ownable(governor) {
        _admit(governor, Role.Governor, "governor", bytes32(0));
        _setPolicy(initial);
    }

    // ------------------------------------------------------------------ membership

    /// @inheritdoc IConsortiumRegistry
    function admitMember(address account, Role role, string calldata name, bytes32 licenceHash)
        external
        onlyOwner
    {
        if (role == Role.None || role == Role.Governor) revert InvalidRole(role);
        _admit(account, role, name, licenceHash);
    }

    /// @inheritdoc IConsortiumRegistry
    function suspendMember(address account) external onlyOwner {
        _changeStatus(account, Status.Active, Status.Suspended);
    }

    /// @inheritdoc IConsortiumRegistry
    function reinstateMember(address account) external onlyOwner {
        address s = _servicers[account];
        if (s != address(0)) revert ServicingWasTransferred(account, s);
        _changeStatus(account, Status.Suspended, Status.Active);
    }

    /// @inheritdoc IConsortiumRegistry
    function removeMember(address account) external onlyOwner {
        Member storage m = _members[account];
        Status from = m.status;
        if (from != Status.Active && from != Status.Suspended) {
            revert InvalidStatusChange(account, from, Status.Removed);
        }
        _changeStatus(account, from, Status.Removed);
    }

    /// @inheritdoc IConsortiumRegistry
    function transferServicing(address from, address to) external onlyOwner {
        Member storage f = _members[from];
        if (f.role != Role.Platform || (f.status != Status.Suspended && f.status != Status.Removed)) {
            revert ServicingNotTransferable(from, f.status);
        }
        Member storage t = _members[to];
        if (t.role != Role.Platform || t.status != Status.Active || t.frozen || _servicers[to] != address(0)) {
            revert InvalidServicer(to);
        }
        _servicers[from] = to;
        emit ServicingTransferred(from, to);
    }

    /// @inheritdoc IConsortiumRegistry
    function setFrozen(address account, bool frozen) external onlyOwner {
        Member storage m = _members[account];
        if (m.status == Status.None) revert NotMember(account);
        if (m.role == Role.Governor) revert GovernorRecordImmutable(account);
        m.frozen = frozen;
        emit MemberFrozen(account, frozen);
    }

    /// @inheritdoc IConsortiumRegistry
    function pause() external {
        if (msg.sender != owner()) {
            Member storage m = _members[msg.sender];
            if (m.status != Status.Active || m.frozen || m.role == Role.None || m.role == Role.Governor) {
                revert NotActiveMember(msg.sender);
            }
        }
        _pause();
        _hot |= 1 << 232;
    }

    /// @inheritdoc IConsortiumRegistry
    function unpause() external onlyOwner {
        _unpause();
        _hot &= ~uint256(1 << 232);
    }

    // ------------------------------------------------------------------ capital (R5, R6, R8)

    /// @inheritdoc IConsortiumRegistry
    function attestCapital(uint64 tier1Capital, uint64 totalLoanBalance, uint40 validUntil) external {
        Member storage m = _members[msg.sender];
        if ((m.role != Role.Lender && m.role != Role.Guarantor) || m.status != Status.Active) {
            revert NotActiveLender(msg.sender);
        }
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

    // ------------------------------------------------------------------ partnerships (fees)

    /// @inheritdoc IConsortiumRegistry
    function offerPartnership(address platform, Partnership calldata terms) external {
        _requireActive(msg.sender, Role.Lender);
        if (_members[platform].role != Role.Platform) revert NotActiveInRole(platform, Role.Platform);
        if (terms.feeBps < terms.minFeeBps || terms.feeBps > terms.maxFeeBps || terms.maxFeeBps > 10_000) {
            revert FeeShareOutOfRange(terms.feeBps, terms.minFeeBps, terms.maxFeeBps);
        }
        if (terms.validFrom >= terms.validUntil) revert InvalidPeriod(terms.validFrom, terms.validUntil);
        _offers[_pair(msg.sender, platform)] = terms;
        emit PartnershipOffered(msg.sender, platform, terms);
    }

    /// @inheritdoc IConsortiumRegistry
    function acceptPartnership(address bank, Partnership calldata terms) external {
        _requireActive(msg.sender, Role.Platform);
        bytes32 pair = _pair(bank, msg.sender);
        if (keccak256(abi.encode(_offers[pair])) != keccak256(abi.encode(terms)) || terms.validUntil == 0) {
            revert PartnershipTermsMismatch(bank, msg.sender);
        }
        _partnerships[pair] = terms;
        delete _offers[pair];
        emit PartnershipSigned(bank, msg.sender, terms);
    }

    // ------------------------------------------------------------------ policy

    /// @inheritdoc IConsortiumRegistry
    function setPolicy(Policy calldata policy) external onlyOwner {
        _setPolicy(policy);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IConsortiumRegistry
    function member(address account) external view returns (Member memory) {
        return _members[account];
    }

    /// @inheritdoc IConsortiumRegistry
    function profile(address account) external view returns (string memory name, bytes32 licenceHash) {
        return (_names[account], _licences[account]);
    }

    /// @inheritdoc IConsortiumRegistry
    function memberCount() external view returns (uint256) {
        return _memberList.length;
    }

    /// @inheritdoc IConsortiumRegistry
    function memberAt(uint256 index) external view returns (address) {
        return _memberList[index - 1];
    }

    /// @inheritdoc IConsortiumRegistry
    function servicer(address platform) external view returns (address s) {
        s = platform;
        for (address next = _servicers[s]; next != address(0); next = _servicers[s]) {
            s = next;
        }
    }

    /// @inheritdoc IConsortiumRegistry
    function isActive(address account, Role role) external view returns (bool) {
        Member storage m = _members[account];
        return m.role == role && m.status == Status.Active && !m.frozen;
    }

    /// @inheritdoc IConsortiumRegistry
    function currentPolicy() external view returns (Policy memory policy, uint32 version) {
        version = uint32(_policies.length);
        policy = _policies[version - 1];
    }

    /// @inheritdoc IConsortiumRegistry
    function partnership(address bank, address platform) external view returns (Partnership memory) {
        return _partnerships[_pair(bank, platform)];
    }

    /// @inheritdoc IConsortiumRegistry
    function serviceFees(address platform, address[] calldata lenders, uint256[] calldata interest)
        external
        view
        returns (uint256[] memory fees)
    {
        uint256 n = lenders.length;
        fees = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            if (lenders[i] == platform) continue;
            Partnership storage t = _partnerships[_pair(lenders[i], platform)];
            if (t.validFrom <= block.timestamp && block.timestamp <= t.validUntil) {
                fees[i] = (interest[i] * t.feeBps) / 10_000;
            }
        }
    }

    /// @inheritdoc IConsortiumRegistry
    function policyAt(uint256 version) external view returns (Policy memory) {
        if (version == 0 || version > _policies.length) revert UnknownPolicyVersion(version);
        return _policies[version - 1];
    }

    /// @inheritdoc IConsortiumRegistry
    function policyVersion() external view returns (uint32) {
        return uint32(_policies.length);
    }

    /// @inheritdoc IConsortiumRegistry
    function paused() public view override(IConsortiumRegistry, Pausable) returns (bool) {
        return super.paused();
    }

    /// @inheritdoc IConsortiumRegistry
    function partyWords(address[] calldata parties)
        external
        view
        returns (PolicyWord policyWord, uint256 versionAndPause, MemberWord[] memory words)
    {
        uint256 hot = _hot;
        policyWord = PolicyWord.wrap(hot & _POLICY_BITS);
        versionAndPause = (hot >> 200) & ((1 << 33) - 1);
        uint256 n = parties.length;
        words = new MemberWord[](n);
        for (uint256 i; i < n; ++i) {
            Member storage m = _members[parties[i]];
            uint256 w;
            assembly ("memory-safe") {
                w := sload(m.slot)
            }
            words[i] = MemberWord.wrap(w);
        }
    }

    /// @inheritdoc IConsortiumRegistry
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

    function _requireActive(address account, Role role) private view {
        Member storage m = _members[account];
        if (m.role != role || m.status != Status.Active || m.frozen) revert NotActiveInRole(account, role);
    }

    function _pair(address bank, address platform) private pure returns (bytes32) {
        return keccak256(abi.encode(bank, platform));
    }

    function _setPolicy(Policy memory p) private {
        if (p.consumerCap == 0) revert InvalidPolicy("consumerCap");
        if (p.businessCap == 0) revert InvalidPolicy("businessCap");
        if (p.consumerCap > BOUND_CONSUMER_CAP) {
            revert PolicyOutOfBounds("consumerCap", p.consumerCap, BOUND_CONSUMER_CAP);
        }
        if (p.businessCap > BOUND_BUSINESS_CAP) {
            revert PolicyOutOfBounds("businessCap", p.businessCap, BOUND_BUSINESS_CAP);
        }
        if (p.minPlatformShareBps < BOUND_MIN_PLATFORM_SHARE_BPS) {
            revert PolicyOutOfBounds("minPlatformShareBps", p.minPlatformShareBps, BOUND_MIN_PLATFORM_SHARE_BPS);
        }
        if (p.maxPartnerCapitalBps > BOUND_PARTNER_CAPITAL_BPS) {
            revert PolicyOutOfBounds("maxPartnerCapitalBps", p.maxPartnerCapitalBps, BOUND_PARTNER_CAPITAL_BPS);
        }
        if (p.maxJointLoanBps > BOUND_JOINT_LOAN_BPS) {
            revert PolicyOutOfBounds("maxJointLoanBps", p.maxJointLoanBps, BOUND_JOINT_LOAN_BPS);
        }
        if (p.maxConsumerBulletDays > BOUND_CONSUMER_BULLET_DAYS) {
            revert PolicyOutOfBounds("maxConsumerBulletDays", p.maxConsumerBulletDays, BOUND_CONSUMER_BULLET_DAYS);
        }
        if (p.maxAllInAprBps > BOUND_ALL_IN_APR_BPS) {
            revert PolicyOutOfBounds("maxAllInAprBps", p.maxAllInAprBps, BOUND_ALL_IN_APR_BPS);
        }
        if (p.maxAllInAprBps == 0) revert InvalidPolicy("maxAllInAprBps");
        if (p.maxGuaranteeMultiple > BOUND_GUARANTEE_MULTIPLE) {
            revert PolicyOutOfBounds("maxGuaranteeMultiple", p.maxGuaranteeMultiple, BOUND_GUARANTEE_MULTIPLE);
        }
        if (p.maxGuaranteeMultiple == 0) revert InvalidPolicy("maxGuaranteeMultiple");
        if (p.specialMentionMaxDpd > BOUND_SPECIAL_MENTION_DPD) {
            revert PolicyOutOfBounds("specialMentionMaxDpd", p.specialMentionMaxDpd, BOUND_SPECIAL_MENTION_DPD);
        }
        if (p.substandardMaxDpd > BOUND_SUBSTANDARD_DPD) {
            revert PolicyOutOfBounds("substandardMaxDpd", p.substandardMaxDpd, BOUND_SUBSTANDARD_DPD);
        }
        if (p.doubtfulMaxDpd > BOUND_DOUBTFUL_DPD) {
            revert PolicyOutOfBounds("doubtfulMaxDpd", p.doubtfulMaxDpd, BOUND_DOUBTFUL_DPD);
        }
        if (p.specialMentionMaxDpd == 0 || p.substandardMaxDpd <= p.specialMentionMaxDpd) {
            revert InvalidPolicy("substandardMaxDpd");
        }
        if (p.doubtfulMaxDpd <= p.substandardMaxDpd) revert InvalidPolicy("doubtfulMaxDpd");
        if (p.maxInstitutions == 0 || p.maxInstitutions > MAX_INSTITUTIONS_LIMIT) {
            revert InvalidPolicy("maxInstitutions");
        }
        if (p.minPlatformShareBps > 10_000) revert InvalidPolicy("minPlatformShareBps");
        if (p.maxPartnerCapitalBps > 10_000) revert InvalidPolicy("maxPartnerCapitalBps");
        if (p.maxJointLoanBps > 10_000) revert InvalidPolicy("maxJointLoanBps");
        if (p.maxConsumerBulletDays == 0) revert InvalidPolicy("maxConsumerBulletDays");
        if (p.maxAttestationAge == 0) revert InvalidPolicy("maxAttestationAge");
        // R0: at least one bank, and room for the platform and the banks within R3
        if (p.minBankTranches == 0 || p.minBankTranches >= p.maxInstitutions) {
            revert InvalidPolicy("minBankTranches");
        }
        p.effectiveBlock = uint48(block.number);
        _policies.push(p);
        Policy storage stored = _policies[_policies.length - 1];
        uint256 word;
        assembly ("memory-safe") {
            word := sload(stored.slot)
        }
        _hot = (word & _SLOT_POLICY_BITS) | (_policies.length << 200) | (_hot & (1 << 232))
            | (uint256(p.maxAllInAprBps) << 233);
        emit PolicyUpdated(uint32(_policies.length), p.effectiveBlock, p);
    }
}
