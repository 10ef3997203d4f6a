// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title BorrowerBook
/// @notice Pure operations on the one packed word the ledger keeps per borrower.
/// @dev Layout (low to high bits): consumer exposure (48 bits, fen), business exposure (48 bits,
/// fen), then five institution entries of 32 bits each: member index (16) and number of open
/// records with that institution (16). R3 is judged on the number of non-empty entries; the
/// registry keeps R3's parameter at or below five.
library BorrowerBook {
    uint256 internal constant SLOTS = 5;
    uint256 private constant MASK48 = (1 << 48) - 1;
    uint256 private constant MASK16 = (1 << 16) - 1;
    uint256 private constant ENTRY_BASE = 96;

    error OpenRecordCountOverflow(uint16 memberIndex);

    function exposure(uint256 book, uint8 product) internal pure returns (uint256) {
        return (book >> (uint256(product) * 48)) & MASK48;
    }

    function withExposure(uint256 book, uint8 product, uint256 value) internal pure returns (uint256) {
        uint256 shift = uint256(product) * 48;
        return (book & ~(MASK48 << shift)) | (value << shift);
    }

    /// @notice Count one more open record with institution `idx`.
    /// @dev The caller has checked R3, so a free entry exists whenever `idx` has none.
    function addOpen(uint256 book, uint16 idx) internal pure returns (uint256) {
        uint256 free = SLOTS;
        for (uint256 i; i < SLOTS; ++i) {
            uint256 shift = ENTRY_BASE + i * 32;
            uint256 e = (book >> shift) & 0xffffffff;
            if (e != 0 && e & MASK16 == idx) {
                if (e >> 16 == MASK16) revert OpenRecordCountOverflow(idx);
                return book + (1 << (shift + 16));
            }
            if (e == 0 && free == SLOTS) free = i;
        }
        return book | ((uint256(idx) | (1 << 16)) << (ENTRY_BASE + free * 32));
    }

    /// @notice Count one record with institution `idx` as closed; the entry is freed at zero.
    function removeOpen(uint256 book, uint16 idx) internal pure returns (uint256) {
        for (uint256 i; i < SLOTS; ++i) {
            uint256 shift = ENTRY_BASE + i * 32;
            uint256 e = (book >> shift) & 0xffffffff;
            if (e != 0 && e & MASK16 == idx) {
                if (e >> 16 == 1) return book & ~(uint256(0xffffffff) << shift);
                return book - (1 << (shift + 16));
            }
        }
        return book;
    }

    /// @notice Whether institution `idx` has an entry.
    function hasOpen(uint256 book, uint16 idx) internal pure returns (bool) {
        for (uint256 i; i < SLOTS; ++i) {
            uint256 e = (book >> (ENTRY_BASE + i * 32)) & 0xffffffff;
            if (e != 0 && e & MASK16 == idx) return true;
        }
        return false;
    }

    /// @notice Number of institutions with at least one open record.
    function institutions(uint256 book) internal pure returns (uint256 n) {
        for (uint256 i; i < SLOTS; ++i) {
            if ((book >> (ENTRY_BASE + i * 32)) & 0xffffffff != 0) ++n;
        }
    }

    /// @notice The institution entries, for views.
    function entries(uint256 book) internal pure returns (uint16[] memory indices, uint16[] memory counts) {
        uint256 n = institutions(book);
        indices = new uint16[](n);
        counts = new uint16[](n);
        uint256 k;
        for (uint256 i; i < SLOTS; ++i) {
            uint256 e = (book >> (ENTRY_BASE + i * 32)) & 0xffffffff;
            if (e != 0) {
                indices[k] = uint16(e & MASK16);
                counts[k] = uint16(e >> 16);
                ++k;
            }
        }
    }
}
