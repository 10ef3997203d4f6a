// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title PackedWords
/// @notice Field access on the raw storage words of ConsortiumRegistry.Member and
/// ConsortiumRegistry.Policy, so the ledger's hot path reads a party or the policy in one word
/// without ABI-decoding structs. Offsets follow Solidity's packing: the first field in the lowest
/// bits. A test compares these against the registry's struct views.
library PackedWords {
    // Member: role 8 | status 8 | frozen 8 | index 16 | tier1Capital 64 | totalLoanBalance 64 |
    //         attestedAt 40 | attestedUntil 40
    function role(uint256 w) internal pure returns (uint8) {
        return uint8(w);
    }

    function status(uint256 w) internal pure returns (uint8) {
        return uint8(w >> 8);
    }

    function frozen(uint256 w) internal pure returns (bool) {
        return uint8(w >> 16) != 0;
    }

    function index(uint256 w) internal pure returns (uint16) {
        return uint16(w >> 24);
    }

    function tier1Capital(uint256 w) internal pure returns (uint256) {
        return uint64(w >> 40);
    }

    function totalLoanBalance(uint256 w) internal pure returns (uint256) {
        return uint64(w >> 104);
    }

    function attestedUntil(uint256 w) internal pure returns (uint256) {
        return uint40(w >> 208);
    }

    // Policy: consumerCap 48 | businessCap 48 | maxInstitutions 8 | minPlatformShareBps 16 |
    //         maxPartnerCapitalBps 16 | maxJointLoanBps 16 | maxConsumerBulletDays 16 |
    //         maxAttestationAge 32 | effectiveBlock 48
    function cap(uint256 p, uint8 product) internal pure returns (uint256) {
        return uint48(p >> (uint256(product) * 48));
    }

    function maxInstitutions(uint256 p) internal pure returns (uint256) {
        return uint8(p >> 96);
    }

    function minPlatformShareBps(uint256 p) internal pure returns (uint256) {
        return uint16(p >> 104);
    }

    function maxPartnerCapitalBps(uint256 p) internal pure returns (uint256) {
        return uint16(p >> 120);
    }

    function maxJointLoanBps(uint256 p) internal pure returns (uint256) {
        return uint16(p >> 136);
    }

    function maxConsumerBulletDays(uint256 p) internal pure returns (uint256) {
        return uint16(p >> 152);
    }
}
