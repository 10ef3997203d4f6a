// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @notice A party's ConsortiumRegistry.Member storage slot as one raw word (partyWords).
type MemberWord is uint256;

/// @notice The fields of the ConsortiumRegistry.Policy in force, as laid out in its storage slot,
/// as one raw word (partyWords).
type PolicyWord is uint256;

using PackedWords for MemberWord global;
using PackedWords for PolicyWord global;

/// @title PackedWords
/// @notice Field access on the raw storage words of ConsortiumRegistry.Member and
/// ConsortiumRegistry.Policy, so the ledger's hot path reads a party or the policy in one word
/// without ABI-decoding structs. Offsets follow Solidity's packing: the first field in the lowest
/// bits. A test compares these against the registry's struct views.
/// @dev Every field is read by `_field`; each function states only its fields' offsets and widths.
library PackedWords {
    uint256 private constant BPS = 10_000;

    // Member: role 8 | status 8 | frozen 8 | index 16 | tier1Capital 64 | totalLoanBalance 64 |
    //         attestedAt 40 | attestedUntil 40
    function role(MemberWord w) internal pure returns (uint8) {
        return uint8(_field(MemberWord.unwrap(w), 0, 8));
    }

    function status(MemberWord w) internal pure returns (uint8) {
        return uint8(_field(MemberWord.unwrap(w), 8, 8));
    }

    function frozen(MemberWord w) internal pure returns (bool) {
        return _field(MemberWord.unwrap(w), 16, 8) != 0;
    }

    function index(MemberWord w) internal pure returns (uint16) {
        return uint16(_field(MemberWord.unwrap(w), 24, 16));
    }

    function attestedAt(MemberWord w) internal pure returns (uint256) {
        return _field(MemberWord.unwrap(w), 168, 40);
    }

    function attestedUntil(MemberWord w) internal pure returns (uint256) {
        return _field(MemberWord.unwrap(w), 208, 40);
    }

    // Policy: consumerCap 48 | businessCap 48 | maxInstitutions 8 | minPlatformShareBps 16 |
    //         maxPartnerCapitalBps 16 | maxJointLoanBps 16 | maxConsumerBulletDays 16 |
    //         maxAttestationAge 32 | effectiveBlock 48 | minBankTranches 8; in the registry's hot
    //         word effectiveBlock's bits carry version 32 | pause 1 | maxAllInAprBps 15 (R9)
    function cap(PolicyWord p, uint8 product) internal pure returns (uint256) {
        return _field(PolicyWord.unwrap(p), uint256(product) * 48, 48);
    }

    function maxInstitutions(PolicyWord p) internal pure returns (uint256) {
        return _field(PolicyWord.unwrap(p), 96, 8);
    }

    function minPlatformShareBps(PolicyWord p) internal pure returns (uint256) {
        return _field(PolicyWord.unwrap(p), 104, 16);
    }

    function maxConsumerBulletDays(PolicyWord p) internal pure returns (uint256) {
        return _field(PolicyWord.unwrap(p), 152, 16);
    }

    function maxAttestationAge(PolicyWord p) internal pure returns (uint256) {
        return _field(PolicyWord.unwrap(p), 168, 32);
    }

    function minBankTranches(PolicyWord p) internal pure returns (uint256) {
        return _field(PolicyWord.unwrap(p), 248, 8);
    }

    /// @notice R9: the highest all-in APR (bps) a loan may declare.
    function maxAllInAprBps(PolicyWord p) internal pure returns (uint256) {
        return _field(PolicyWord.unwrap(p), 233, 15);
    }

    /// @notice R8: until when `m`'s capital figures may be used under `p`: the end of the period
    /// it attested, or `p`'s maxAttestationAge after it attested, whichever comes first. So a
    /// figure attested under a more permissive policy is judged by the policy in force when used.
    function attestationValidUntil(MemberWord m, PolicyWord p) internal pure returns (uint256) {
        uint256 until = _field(MemberWord.unwrap(m), 208, 40);
        uint256 byAge = _field(MemberWord.unwrap(m), 168, 40) + _field(PolicyWord.unwrap(p), 168, 32);
        return byAge < until ? byAge : until;
    }

    /// @notice R5: the most `m`, a lender, may have outstanding with any one partner platform
    /// under `p`: its tier-1 capital (fen) times maxPartnerCapitalBps.
    function partnerLimit(MemberWord m, PolicyWord p) internal pure returns (uint256) {
        return (_field(MemberWord.unwrap(m), 40, 64) * _field(PolicyWord.unwrap(p), 120, 16)) / BPS;
    }

    /// @notice R6: the most `m`, a lender, may have outstanding in joint loans under `p`: its total
    /// loan balance (fen) times maxJointLoanBps.
    function jointLoanLimit(MemberWord m, PolicyWord p) internal pure returns (uint256) {
        return (_field(MemberWord.unwrap(m), 104, 64) * _field(PolicyWord.unwrap(p), 136, 16)) / BPS;
    }

    /// @dev The `width`-bit field at bit `offset` of `word`.
    function _field(uint256 word, uint256 offset, uint256 width) private pure returns (uint256) {
        return (word >> offset) & ((1 << width) - 1);
    }
}
