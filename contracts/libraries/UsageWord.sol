// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @notice The one word the ledger keeps per lender for R5 and R6; read and written only through
/// UsageWord.
type Usage is uint256;

using UsageWord for Usage global;

/// @title UsageWord
/// @notice The one word the ledger keeps per lender for R5 and R6: its outstanding joint loans in
/// total (R6) and, in the same slot, its outstanding with its first partner platform (R5), so a
/// tranche from a lender with one partner reads and writes one slot instead of two.
/// @dev Layout (low to high bits): total (64 bits, fen), partner member index (16), outstanding
/// with that partner (64 bits, fen). Both amounts stay below the lender's attested uint64
/// figures, since R5 and R6 are checked before a word is written. Index 0 means no partner yet.
library UsageWord {
    uint256 private constant MASK64 = (1 << 64) - 1;

    function total(Usage w) internal pure returns (uint256) {
        return Usage.unwrap(w) & MASK64;
    }

    function partner(Usage w) internal pure returns (uint16) {
        return uint16(Usage.unwrap(w) >> 64);
    }

    function withPartner(Usage w) internal pure returns (uint256) {
        return (Usage.unwrap(w) >> 80) & MASK64;
    }

    function pack(uint256 total_, uint16 partner_, uint256 withPartner_) internal pure returns (Usage) {
        return Usage.wrap(total_ | (uint256(partner_) << 64) | (withPartner_ << 80));
    }

    function withTotal(Usage w, uint256 total_) internal pure returns (Usage) {
        return Usage.wrap((Usage.unwrap(w) & ~MASK64) | total_);
    }
}
