// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {LedgerTypes} from "./LedgerTypes.sol";

/// @title Allocation
/// @notice The one rounding rule for splitting money across tranches, mirrored bit-for-bit by
/// ledger.allocation.
/// @dev Cumulative share of a total T for tranche i: floor(T * amount_i / principal), then the
/// fen the floors leave over (at most n - 1) go one at a time to the tranche with the highest
/// amount_i / (share_i + 1), ties to the lowest lender address (tranches are sorted by lender).
/// The first leftover fen therefore goes to the largest tranche, as DESIGN §4 intends; unlike
/// "the whole remainder to the largest tranche", this highest-averages rule never takes back a fen
/// as T grows (with amounts 9/9/2 of 20, that rule gives the first tranche 10 at T = 19 and 9 at
/// T = 20), so each repayment's allocation, the difference of two cumulative splits, is never
/// negative, and at T = principal every tranche is repaid exactly.
library Allocation {
    /// @notice Each tranche's cumulative share of `total`, for a loan of `principal`.
    function split(LedgerTypes.Tranche[] calldata tranches, uint256 principal, uint256 total)
        internal
        pure
        returns (uint256[] memory shares)
    {
        uint256 n = tranches.length;
        shares = new uint256[](n);
        uint256 left = total;
        for (uint256 i; i < n; ++i) {
            uint256 s = (total * tranches[i].amount) / principal;
            shares[i] = s;
            left -= s;
        }
        while (left != 0) {
            uint256 best;
            for (uint256 i = 1; i < n; ++i) {
                // amount_i / (s_i + 1) > amount_best / (s_best + 1), cross-multiplied; strict, so a
                // tie stays with the lower index
                if (tranches[i].amount * (shares[best] + 1) > tranches[best].amount * (shares[i] + 1)) {
                    best = i;
                }
            }
            ++shares[best];
            --left;
        }
    }

    /// @notice Per-tranche allocation of one payment that moves the cumulative total from `before`
    /// to `after_`: the difference of the two cumulative splits.
    function between(LedgerTypes.Tranche[] calldata tranches, uint256 principal, uint256 before, uint256 after_)
        internal
        pure
        returns (uint256[] memory alloc)
    {
        alloc = split(tranches, principal, after_);
        uint256[] memory b = split(tranches, principal, before);
        uint256 n = alloc.length;
        for (uint256 i; i < n; ++i) {
            alloc[i] -= b[i];
        }
    }
}
