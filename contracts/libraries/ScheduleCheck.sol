// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {ICoLendingLedgerErrors} from "../interfaces/ICoLendingLedgerErrors.sol";

/// @title ScheduleCheck
/// @notice The schedule a co-loan's terms commit to (scheduleDigest), checked against those terms
/// when the loan is recorded: it hashes to the digest, its due dates rise strictly after the
/// loan's start, its principal parts sum to the principal, and the declared all-in APR is the
/// schedule's IRR within the audit's 1 bp tolerance. Mirrored exactly by ledger.apr_bounds.
/// @dev Word layout (ledger.schedule): due 40 | principal 72 | interest 72 | charges 72, due in
/// the highest bits. The loan's start is not in the signed terms; it is defined from them:
/// start = last due - termDays days. Periods are calendar months from the start (the day clamped
/// to the month's end, ledger.schedule.months_between), dates from Howard Hinnant's
/// civil_from_days. The exact IRR needs integers far wider than 256 bits, so the APR is judged by
/// bounds: v = q / (q + 2b + 1) in Q128 (q = 240,000: the annual rate b + 1/2 bps as a monthly
/// factor), PV = sum CF_k v^k in nested form from the last month back (one product per month
/// with a flow, a gap's v^g by squaring), every product rounded one way, down for a lower bound
/// and up for an upper one (Math.mulDiv with explicit rounding). A declared APR a is refused only when
/// the bound proves the rounded IRR is at least a + 2 (PV_floor(a + 1) >= received) or at most
/// a - 2 (PV_ceil(a - 2) < received); the exact IRR is always accepted.
library ScheduleCheck {
    uint256 internal constant MAX_INSTALMENTS = 360;
    uint256 private constant DAY = 86_400;
    uint256 private constant Q128 = 1 << 128;
    uint256 private constant Q = 240_000; // 12 months x 10,000 bps x 2 (half basis points)
    uint256 private constant AMOUNT_MASK = (1 << 72) - 1;

    /// @dev Everything a loan's schedule is judged by, from its signed terms.
    struct Terms {
        bytes32 loanId;
        bytes32 digest;
        uint256 principal;
        uint256 aprBps;
        uint256 termDays;
    }

    /// @notice Revert unless `words` are the schedule `t` commits to and agree with its terms.
    function check(Terms memory t, uint256[] calldata words) internal pure {
        bytes32 sent = keccak256(abi.encodePacked(words));
        if (sent != t.digest) revert ICoLendingLedgerErrors.ScheduleDigestMismatch(t.loanId, t.digest, sent);
        uint256 n = words.length;
        if (n == 0 || n > MAX_INSTALMENTS) {
            revert ICoLendingLedgerErrors.ScheduleLengthOutOfRange(t.loanId, n, MAX_INSTALMENTS);
        }
        uint256 start = startOf(t.loanId, words[n - 1] >> 216, t.termDays, n);
        (uint256[] memory months, uint256[] memory flows, uint256 count, uint256 sum) =
            cashFlows(t.loanId, start, words);
        if (sum != t.principal) revert ICoLendingLedgerErrors.ScheduleNotPrincipal(t.loanId, sum, t.principal);
        checkApr(t.loanId, t.aprBps, t.principal, months, flows, count);
    }

    /// @notice The loan's start: its last due minus its term (InvalidSchedule if that is before
    /// the epoch).
    function startOf(bytes32 loanId, uint256 lastDue, uint256 termDays, uint256 n) internal pure returns (uint256) {
        uint256 term = termDays * DAY;
        if (term > lastDue) revert ICoLendingLedgerErrors.InvalidSchedule(loanId, n - 1, lastDue, term);
        return lastDue - term;
    }

    /// @notice The borrower's payments by calendar month from `start` (instalments in one month
    /// added), and the principal parts' sum. InvalidSchedule(loanId, index, due, notAfter) when
    /// instalment `index` is not due after `notAfter`, the previous due or the start.
    function cashFlows(bytes32 loanId, uint256 start, uint256[] calldata words)
        internal
        pure
        returns (uint256[] memory months, uint256[] memory flows, uint256 count, uint256 principalSum)
    {
        uint256 n = words.length;
        months = new uint256[](n);
        flows = new uint256[](n);
        uint256 from = _civil(start);
        uint256 prev = start;
        // unchecked: at most 360 amounts of 72 bits each are added
        unchecked {
            for (uint256 i; i < n; ++i) {
                uint256 w = words[i];
                uint256 due = w >> 216;
                if (due <= prev) revert ICoLendingLedgerErrors.InvalidSchedule(loanId, i, due, prev);
                prev = due;
                uint256 p = (w >> 144) & AMOUNT_MASK;
                principalSum += p;
                uint256 paid = p + ((w >> 72) & AMOUNT_MASK) + (w & AMOUNT_MASK);
                count = _add(months, flows, count, _monthsAfter(from, due), paid);
            }
        }
    }

    /// @dev `paid` in month `k`: added to the last flow when it is that month's.
    function _add(uint256[] memory months, uint256[] memory flows, uint256 count, uint256 k, uint256 paid)
        private
        pure
        returns (uint256)
    {
        // unchecked: count < the arrays' length, flows hold sums of 72-bit amounts
        unchecked {
            if (count != 0 && months[count - 1] == k) {
                flows[count - 1] += paid;
                return count;
            }
            months[count] = k;
            flows[count] = paid;
            return count + 1;
        }
    }

    /// @notice AprMismatch(loanId, declared, tested, presentValue, received) when the bounds prove
    /// the declared APR more than 1 bp from the schedule's IRR (see the library's notes).
    function checkApr(
        bytes32 loanId,
        uint256 declared,
        uint256 received,
        uint256[] memory months,
        uint256[] memory flows,
        uint256 count
    ) internal pure {
        uint256 pv = presentValue(months, flows, count, declared + 1, Math.Rounding.Floor);
        if (pv >= received) revert ICoLendingLedgerErrors.AprMismatch(loanId, declared, declared + 1, pv, received);
        if (declared >= 2) {
            pv = presentValue(months, flows, count, declared - 2, Math.Rounding.Ceil);
            if (pv < received) revert ICoLendingLedgerErrors.AprMismatch(loanId, declared, declared - 2, pv, received);
        }
    }

    /// @notice sum flows[j] * v^months[j], v = q / (q + 2b + 1) in Q128, in nested (Horner) form
    /// from the last month back: acc = flows[last]; acc = flows[j] + acc * v^(gap to the next
    /// flow); PV = acc * v^months[0]. Every product is rounded `r`: as every term is non-negative
    /// and v < 1, rounding one way at every step keeps the result a bound the same way.
    function presentValue(
        uint256[] memory months,
        uint256[] memory flows,
        uint256 count,
        uint256 b,
        Math.Rounding r
    ) internal pure returns (uint256 pv) {
        if (count == 0) return 0;
        uint256 v = Math.mulDiv(Q, Q128, Q + 2 * b + 1, r);
        // unchecked: count >= 1, months rise (so each gap is positive), and acc stays at most
        // the flows' sum plus one per step (v^k <= 1), far below 2^128
        unchecked {
            uint256 j = count - 1;
            uint256 at = months[j];
            uint256 acc = flows[j];
            while (j != 0) {
                --j;
                uint256 k = months[j];
                acc = flows[j] + Math.mulDiv(acc, powerOf(v, at - k, r), Q128, r);
                at = k;
            }
            pv = Math.mulDiv(acc, powerOf(v, at, r), Q128, r);
        }
    }

    /// @notice v^e in Q128 by squaring, every product rounded `r` (v^0 = 1, v^1 = v exactly).
    function powerOf(uint256 v, uint256 e, Math.Rounding r) internal pure returns (uint256 result) {
        result = Q128;
        bool first = true;
        while (e != 0) {
            if (e & 1 == 1) {
                result = first ? v : Math.mulDiv(result, v, Q128, r);
                first = false;
            }
            e >>= 1;
            if (e != 0) v = Math.mulDiv(v, v, Q128, r);
        }
    }

    /// @dev A time as year << 96 | month << 64 | day << 32 | seconds into the day.
    function _civil(uint256 t) private pure returns (uint256) {
        (uint256 y, uint256 m, uint256 d) = civilFromDays(t / DAY);
        return (y << 96) | (m << 64) | (d << 32) | (t % DAY);
    }

    /// @notice Calendar months from a start (`from`, as _civil packs it) to `due`: the smallest k
    /// whose k-th monthly anniversary (same time of day, the day clamped to the month's end) is
    /// not before `due` (ledger.schedule.months_between). `due` is after the start.
    function _monthsAfter(uint256 from, uint256 due) private pure returns (uint256 k) {
        (uint256 y, uint256 m, uint256 d) = civilFromDays(due / DAY);
        // unchecked: due is after the start, so its month is not before the start's
        unchecked {
            k = (y * 12 + m) - ((from >> 96) * 12 + ((from >> 64) & 0xffffffff));
            uint256 day = Math.min((from >> 32) & 0xffffffff, daysInMonth(y, m));
            // the k-th anniversary falls in due's month: if it is before due, one month more
            if (day < d || (day == d && (from & 0xffffffff) < due % DAY)) ++k;
        }
    }

    /// @notice Howard Hinnant's civil_from_days for days since 1970-01-01 (non-negative).
    function civilFromDays(uint256 z) internal pure returns (uint256 y, uint256 m, uint256 d) {
        // unchecked: z is a 40-bit time's day count, so nothing here overflows, and every
        // subtraction is of a part of the value it is taken from
        unchecked {
            z += 719_468;
            uint256 era = z / 146_097;
            uint256 doe = z - era * 146_097;
            uint256 yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
            y = yoe + era * 400;
            uint256 doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            uint256 mp = (5 * doy + 2) / 153;
            d = doy - (153 * mp + 2) / 5 + 1;
            m = mp < 10 ? mp + 3 : mp - 9;
            if (m <= 2) ++y;
        }
    }

    function daysInMonth(uint256 y, uint256 m) internal pure returns (uint256) {
        if (m == 2) return (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) ? 29 : 28;
        return (m == 4 || m == 6 || m == 9 || m == 11) ? 30 : 31;
    }
}
