// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @notice The one packed word the ledger keeps per borrower; read and written only through
/// BorrowerBook.
type Book is uint256;

using BorrowerBook for Book global;

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

    function exposure(Book book, uint8 product) internal pure returns (uint256) {
        return (Book.unwrap(book) >> (uint256(product) * 48)) & MASK48;
    }

    function withExposure(Book book, uint8 product, uint256 value) internal pure returns (Book) {
        uint256 shift = uint256(product) * 48;
        return Book.wrap((Book.unwrap(book) & ~(MASK48 << shift)) | (value << shift));
    }

    /// @notice Count one more open record with institution `idx`.
    /// @dev The caller has checked R3, so a free entry exists whenever `idx` has none.
    function addOpen(Book book, uint16 idx) internal pure returns (Book) {
        uint256 w = Book.unwrap(book);
        uint256 free = SLOTS;
        for (uint256 i; i < SLOTS; ++i) {
            uint256 e = (w >> (ENTRY_BASE + i * 32)) & 0xffffffff;
            if (e != 0 && e & MASK16 == idx) {
                if (e >> 16 == MASK16) revert OpenRecordCountOverflow(idx);
                return Book.wrap(w + (1 << (ENTRY_BASE + i * 32 + 16)));
            }
            if (e == 0 && free == SLOTS) free = i;
        }
        return Book.wrap(w | ((uint256(idx) | (1 << 16)) << (ENTRY_BASE + free * 32)));
    }

    /// @notice Count one record with institution `idx` as closed; the entry is freed at zero.
    function removeOpen(Book book, uint16 idx) internal pure returns (Book) {
        uint256 w = Book.unwrap(book);
        for (uint256 i; i < SLOTS; ++i) {
            uint256 e = (w >> (ENTRY_BASE + i * 32)) & 0xffffffff;
            if (e != 0 && e & MASK16 == idx) {
                uint256 shift = ENTRY_BASE + i * 32;
                if (e >> 16 == 1) return Book.wrap(w & ~(uint256(0xffffffff) << shift));
                return Book.wrap(w - (1 << (shift + 16)));
            }
        }
        return book;
    }

    /// @notice Whether institution `idx` has an entry.
    function hasOpen(Book book, uint16 idx) internal pure returns (bool) {
        uint256 w = Book.unwrap(book);
        for (uint256 i; i < SLOTS; ++i) {
            uint256 e = (w >> (ENTRY_BASE + i * 32)) & 0xffffffff;
            if (e != 0 && e & MASK16 == idx) return true;
        }
        return false;
    }

    /// @notice Number of institutions with at least one open record.
    function institutions(Book book) internal pure returns (uint256 n) {
        uint256 w = Book.unwrap(book);
        for (uint256 i; i < SLOTS; ++i) {
            if ((w >> (ENTRY_BASE + i * 32)) & 0xffffffff != 0) ++n;
        }
    }

    /// @notice The institution entries, for views.
    function entries(Book book) internal pure returns (uint16[] memory indices, uint16[] memory counts) {
        uint256 w = Book.unwrap(book);
        uint256 n = institutions(book);
        indices = new uint16[](n);
        counts = new uint16[](n);
        uint256 k;
        for (uint256 i; i < SLOTS; ++i) {
            uint256 e = (w >> (ENTRY_BASE + i * 32)) & 0xffffffff;
            if (e != 0) {
                indices[k] = uint16(e & MASK16);
                counts[k] = uint16(e >> 16);
                ++k;
            }
        }
    }
}
