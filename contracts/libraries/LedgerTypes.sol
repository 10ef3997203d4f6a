// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title LedgerTypes
/// @notice The typed records every party signs (EIP-712) and the enums shared by the registry and
/// the ledger. Field order is the EIP-712 field order: ledger.provenance mirrors it exactly.
library LedgerTypes {
    enum Product {
        Consumer,
        Business
    }

    enum Repayment {
        Bullet,
        Instalment
    }

    enum LoanStatus {
        None,
        Active,
        Overdue,
        Defaulted,
        WrittenOff,
        Repaid
    }

    enum LineStatus {
        None,
        Active,
        Closed,
        Expired
    }

    /// @dev One lender's share of a loan or a credit line, in fen. The platform's own share is a
    /// tranche too. Tranches are listed in strictly ascending lender order, which rules out
    /// duplicates and fixes the rounding tie-break ("lowest lender address").
    struct Tranche {
        address lender;
        uint128 amount;
    }

    struct CoLoan {
        bytes32 loanId;
        bytes32 borrowerKey;
        address platform;
        uint8 product;
        uint128 principal;
        uint32 aprBps; // the all-in APR: IRR of the borrower's flows, annualised, bps (R9)
        uint32 termDays;
        uint8 repayment;
        bytes32 lineId;
        bytes32 documentDigest;
        bytes32 scheduleDigest; // ledger.schedule.digest: keccak256 of one word per instalment
        uint64 deadline;
        Tranche[] tranches;
    }

    struct CreditLine {
        bytes32 lineId;
        bytes32 borrowerKey;
        address platform;
        uint8 product;
        uint128 limit;
        uint64 expiresAt;
        bytes32 documentDigest;
        uint64 deadline;
        Tranche[] shares;
    }

    bytes32 internal constant TRANCHE_TYPEHASH = keccak256("Tranche(address lender,uint128 amount)");

    bytes32 internal constant COLOAN_TYPEHASH = keccak256(
        "CoLoan(bytes32 loanId,bytes32 borrowerKey,address platform,uint8 product,uint128 principal,"
        "uint32 aprBps,uint32 termDays,uint8 repayment,bytes32 lineId,bytes32 documentDigest,"
        "bytes32 scheduleDigest,uint64 deadline,Tranche[] tranches)Tranche(address lender,uint128 amount)"
    );

    bytes32 internal constant CREDITLINE_TYPEHASH = keccak256(
        "CreditLine(bytes32 lineId,bytes32 borrowerKey,address platform,uint8 product,uint128 limit,"
        "uint64 expiresAt,bytes32 documentDigest,uint64 deadline,Tranche[] shares)"
        "Tranche(address lender,uint128 amount)"
    );

    /// @dev EIP-712 hashStruct of a co-loan. The twelve static head words of the calldata struct are
    /// exactly the twelve atomic fields of the typed struct, in order, so they are hashed in place.
    /// A field with dirty high bits hashes differently from its clean value, so it can neither
    /// match a signature nor a stored commitment.
    function hashCoLoan(CoLoan calldata loan) internal pure returns (bytes32) {
        uint256 head;
        assembly ("memory-safe") {
            head := loan
        }
        return _hashStruct(COLOAN_TYPEHASH, head, 12, hashTranches(loan.tranches));
    }

    /// @dev EIP-712 hashStruct of a credit line; eight static head words, then the shares.
    function hashCreditLine(CreditLine calldata line) internal pure returns (bytes32) {
        uint256 head;
        assembly ("memory-safe") {
            head := line
        }
        return _hashStruct(CREDITLINE_TYPEHASH, head, 8, hashTranches(line.shares));
    }

    /// @dev keccak256 of the concatenated hashStructs of the tranches (EIP-712 array encoding).
    function hashTranches(Tranche[] calldata tranches) internal pure returns (bytes32 h) {
        uint256 n = tranches.length;
        bytes32 typeHash = TRANCHE_TYPEHASH;
        assembly ("memory-safe") {
            let out := mload(0x40)
            let scratch := add(out, mul(n, 0x20))
            mstore(scratch, typeHash)
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                // each Tranche is two static words in calldata
                calldatacopy(add(scratch, 0x20), add(tranches.offset, mul(i, 0x40)), 0x40)
                mstore(add(out, mul(i, 0x20)), keccak256(scratch, 0x60))
            }
            h := keccak256(out, mul(n, 0x20))
        }
    }

    /// @dev keccak256(typeHash || the `words` static head words at calldata offset `head` ||
    /// arrayHash): the hashStruct of a record whose atomic fields are its calldata head, in order,
    /// followed by one array of tranches.
    function _hashStruct(bytes32 typeHash, uint256 head, uint256 words, bytes32 arrayHash)
        private
        pure
        returns (bytes32 h)
    {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            let size := mul(words, 0x20)
            mstore(ptr, typeHash)
            calldatacopy(add(ptr, 0x20), head, size)
            mstore(add(ptr, add(size, 0x20)), arrayHash)
            h := keccak256(ptr, add(size, 0x40))
        }
    }
}
