"""What the chain checks of a co-loan's schedule when it is recorded, mirrored exactly
(contracts/libraries/ScheduleCheck.sol): the words hash to the signed digest, due dates rise
strictly after the loan's start, the principal parts sum to the principal, and the declared all-in
APR is the schedule's IRR within the audit's 1 bp tolerance.

The loan's start is not in the signed terms; it is defined from them: start = last due - termDays
days (the term runs from start to maturity).

The exact IRR (ledger.apr) needs integers far wider than the 256 bits the contract has, so the
contract judges the APR by rigorous fixed-point bounds, reproduced here step for step: with
q = 240,000 and c = 2b + 1 (an annual rate of b + 1/2 bps), v = q / (q + c) in Q128, and
PV(b) = sum CF_k * v^k in nested (Horner) form from the last month back (acc = CF_last; acc =
CF_j + acc * v^gap; PV = acc * v^k_first; v^gap by squaring), every product rounded down for
PV_floor and up for PV_ceil (OpenZeppelin Math.mulDiv's Floor and Ceil): all terms are
non-negative and v < 1, so rounding one way at every step keeps each a bound. A declared APR
a is refused as understated when PV_floor(a + 1) >= received (so the IRR is at least a + 1.5
bps: the rounded APR a + 2 or more), as overstated when a >= 2 and PV_ceil(a - 2) < received.
The exact APR is never refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ledger import apr
from ledger import schedule as sched
from ledger.rules import Violation
from ledger.schedule import MAX_INSTALMENTS, Instalment, months_between

DAY = 86_400
Q128 = 1 << 128
_Q = 240_000


def start_of(last_due: int, term_days: int) -> int:
    """The loan's start as the chain defines it (may be negative: refused by `check`)."""
    return last_due - term_days * DAY


def mul_div(x: int, y: int, d: int, up: bool) -> int:
    return -(-x * y // d) if up else x * y // d


def power_of(v: int, e: int, up: bool) -> int:
    """v^e in Q128 by squaring, every product rounded the one way (v^1 = v exactly)."""
    result, first = Q128, True
    while e:
        if e & 1:
            result = v if first else mul_div(result, v, Q128, up)
            first = False
        e >>= 1
        if e:
            v = mul_div(v, v, Q128, up)
    return result


def present_value(flows: Sequence[tuple[int, int]], b: int, up: bool) -> int:
    """sum CF_k v^k at b + 1/2 bps a year, a lower bound (`up` False) or an upper one, in nested
    form from the last month back: acc = CF_last, then acc = CF_j + acc * v^(gap), PV = acc *
    v^k_first, every product rounded the one way."""
    if not flows:
        return 0
    v = mul_div(_Q, Q128, _Q + 2 * b + 1, up)
    at, acc = flows[-1]
    for k, cf in reversed(flows[:-1]):
        acc = cf + mul_div(acc, power_of(v, at - k, up), Q128, up)
        at = k
    return mul_div(acc, power_of(v, at, up), Q128, up)


def check_apr(declared: int, received: int, flows: Sequence[tuple[int, int]]) -> Violation | None:
    pv = present_value(flows, declared + 1, False)
    if pv >= received:
        return Violation("AprMismatch", _apr(declared, declared + 1, pv, received))
    if declared >= 2:
        pv = present_value(flows, declared - 2, True)
        if pv < received:
            return Violation("AprMismatch", _apr(declared, declared - 2, pv, received))
    return None


def _apr(declared: int, tested: int, pv: int, received: int) -> dict[str, int]:
    return {"declaredBps": declared, "testedBps": tested, "presentValue": pv, "received": received}


def check(
    digest: bytes, words: Sequence[int], principal: int, apr_bps: int, term_days: int
) -> Violation | None:
    """The chain's verdict on a loan's schedule (None: accepted), in the contract's order."""
    sent = sched.words_digest(words)
    if digest == b"\0" * 32:
        return (
            None
            if not words
            else Violation("ScheduleDigestMismatch", {"signed": digest, "sent": sent})
        )
    if sent != digest:
        return Violation("ScheduleDigestMismatch", {"signed": digest, "sent": sent})
    n = len(words)
    if not 1 <= n <= MAX_INSTALMENTS:
        return Violation("ScheduleLengthOutOfRange", {"instalments": n, "max": MAX_INSTALMENTS})
    rows = [Instalment.from_word(w) for w in words]
    last = rows[-1].due
    term = term_days * DAY
    if term > last:
        return Violation("InvalidSchedule", {"index": n - 1, "due": last, "notAfter": term})
    start = last - term
    flows: list[tuple[int, int]] = []
    prev, total = start, 0
    for i, row in enumerate(rows):
        due = row.due
        if due <= prev:
            return Violation("InvalidSchedule", {"index": i, "due": due, "notAfter": prev})
        prev = due
        total += row.principal
        paid = row.total
        k = months_between(start, due)
        if flows and flows[-1][0] == k:
            flows[-1] = (k, flows[-1][1] + paid)
        else:
            flows.append((k, paid))
    if total != principal:
        return Violation("ScheduleNotPrincipal", {"sum": total, "principal": principal})
    return check_apr(apr_bps, principal, flows)


@dataclass(frozen=True, slots=True)
class Committed:
    """What a loan's terms carry for a schedule started at `start`, and the words sent with it."""

    term_days: int
    apr_bps: int
    digest: bytes
    words: tuple[int, ...]


def committed(schedule: Sequence[Instalment], principal: int, start: int) -> Committed:
    """The term (whole days from `start` to the last due: ValueError otherwise), the all-in APR
    (ledger.apr, exact), the digest and the words of a schedule."""
    days, rest = divmod(schedule[-1].due - start, DAY)
    if rest or days <= 0:
        raise ValueError("the last instalment must fall due a whole number of days after the start")
    return Committed(
        days, apr.all_in_apr_bps(schedule, principal, start), sched.digest(schedule),
        sched.words(schedule),
    )  # fmt: skip
