// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {ScheduleCheck} from "../libraries/ScheduleCheck.sol";

/// @title TestScheduleCheck
/// @notice TEST ONLY: ScheduleCheck's pure functions exposed, so tests compare them with
/// ledger.apr_bounds figure by figure and measure their gas. Never deployed by the tooling.
contract TestScheduleCheck {
    /// @notice ScheduleCheck.check for the given terms (reverts with its errors).
    function check(
        bytes32 loanId,
        bytes32 digest,
        uint256 principal,
        uint256 aprBps,
        uint256 termDays,
        uint256[] calldata words
    ) external pure {
        ScheduleCheck.check(ScheduleCheck.Terms(loanId, digest, principal, aprBps, termDays), words);
    }

    /// @notice The cash flows by calendar month from `start`, as ScheduleCheck groups them.
    function cashFlows(uint256 start, uint256[] calldata words)
        external
        pure
        returns (uint256[] memory months, uint256[] memory flows, uint256 count, uint256 principalSum)
    {
        return ScheduleCheck.cashFlows(bytes32(0), start, words);
    }

    /// @notice ScheduleCheck.presentValue, rounded up when `up`.
    function presentValue(uint256[] memory months, uint256[] memory flows, uint256 b, bool up)
        external
        pure
        returns (uint256)
    {
        return ScheduleCheck.presentValue(months, flows, months.length, b, up ? Math.Rounding.Ceil : Math.Rounding.Floor);
    }

    /// @notice Gas probe: `n` civil-date conversions.
    function civilLoop(uint256 t, uint256 n) external pure returns (uint256 acc) {
        for (uint256 i; i < n; ++i) {
            (uint256 y, uint256 m, uint256 d) = ScheduleCheck.civilFromDays((t + i * 86_400) / 86_400);
            acc += y + m + d;
        }
    }

    /// @notice Gas probe: `n` mulDivs rounded up.
    function mulDivLoop(uint256 x, uint256 n) external pure returns (uint256 acc) {
        for (uint256 i; i < n; ++i) {
            acc += Math.mulDiv(x + i, x, 1 << 128, Math.Rounding.Ceil);
        }
    }
}
