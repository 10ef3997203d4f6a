"""The consortium as the chain has it, read through this node's client: members, the policy,
lenders' usage, loans' and lines' live state, and the recorded events a read needs.

Every contract read the services make goes through here, so the registry's and the ledger's
tuples are decoded in one place (ledger.domain.MemberInfo.from_abi for a member record).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from api.service.gate import Gate
from ledger.chain.client import LedgerClient
from ledger.chain.events import ChainEvent
from ledger.domain import (
    CoLoan,
    CreditLine,
    LineStatus,
    LoanStatus,
    MemberInfo,
    Policy,
    Role,
    to_checksum_address,
    to_hex,
)

Block = int | str
NO_PARTNER = "0x" + "00" * 20  # lenderUsage's "no partner": the totals do not depend on it


@dataclass(frozen=True, slots=True)
class Recorded:
    """A loan as its LoanOriginated event recorded it."""

    loan: CoLoan
    block_number: int
    tx_hash: str
    policy_version: int


class LenderUsage(NamedTuple):
    total: int
    with_partner: int
    total_limit: int
    partner_limit: int
    until: int
    valid_until: int  # R8 at use: min(until, attested at + maxAttestationAge in force)


class LineOnChain(NamedTuple):
    limit: int
    drawn: int
    expires_at: int
    status: LineStatus
    product: int
    platform_index: int
    borrower_key: bytes
    holders: tuple[int, ...] = ()  # the share holders' member indices
    frozen: frozenset[int] = frozenset()  # those of them that froze their share (freezeLine)


class BorrowerExposure(NamedTuple):
    consumer: int
    business: int
    institutions: list[int]
    open_records: list[int]


def _line(_args: tuple[Any, ...], raw: Any) -> LineOnChain:
    (limit, drawn, expires, status, product, pidx, inst, mask), key = raw
    slots = [(int(inst) >> (16 * k)) & 0xFFFF for k in range(5)]
    holders = tuple(i for i in slots if i)
    frozen = frozenset(i for k, i in enumerate(slots) if i and (int(mask) >> k) & 1)
    return LineOnChain(
        int(limit), int(drawn), int(expires), LineStatus(status), int(product), int(pidx),
        bytes(key), holders, frozen,
    )  # fmt: skip


def _exposure(_args: tuple[Any, ...], raw: Any) -> BorrowerExposure:
    consumer, business, idx, counts = raw
    return BorrowerExposure(
        int(consumer), int(business), [int(i) for i in idx], [int(n) for n in counts]
    )


# name: (the client's contract attribute, its view function, the decoder of its answer)
_VIEWS: dict[str, tuple[str, str, Callable[[tuple[Any, ...], Any], Any]]] = {
    "member": ("registry", "member", lambda a, raw: MemberInfo.from_abi(a[0], raw)),
    "policy": ("registry", "currentPolicy", lambda _a, raw: Policy.from_abi(raw[0])),
    "paused": ("registry", "paused", lambda _a, raw: bool(raw)),
    "usage": ("ledger", "lenderUsage", lambda _a, raw: LenderUsage(*(int(v) for v in raw))),
    "loan_state": ("ledger", "loanState", lambda _a, raw: (int(raw[1]), LoanStatus(raw[2]))),
    "line_state": ("ledger", "lineState", _line),
    "borrower_exposure": ("ledger", "borrowerExposure", _exposure),
}


class ConsortiumView:
    def __init__(self, client: LedgerClient, gate: Gate, from_block: int) -> None:
        self.client = client
        self.gate = gate
        self.from_block = from_block

    # ------------------------------------------------------------------ the chain's clock

    def head(self) -> int:
        return self.client.head()

    def now(self) -> tuple[int, int]:
        """(latest block number, its timestamp): the clock the contract judges by."""
        return self.client.latest()

    # ------------------------------------------------------------------ the registry

    def member(self, address: str, block: Block = "latest") -> MemberInfo:
        """The registry's record of `address`, read from the chain on every call: a suspension
        takes effect on the next request, with no cache to go stale."""
        return self._read(block, ("member", address))

    async def member_and_head(self, address: str) -> tuple[MemberInfo, int, int]:
        """`member(address)` at "latest" and the latest block's number and timestamp, in one
        round trip (every authenticated request makes this read; see api/service/gate.py)."""
        record, head, clock = await self.gate.read(address)
        return MemberInfo.from_abi(address, record), head, clock

    def policy(self, block: Block = "latest") -> Policy:
        return self._read(block, ("policy",))

    def paused(self, block: Block = "latest") -> bool:
        return self._read(block, ("paused",))

    def platforms(self, block: Block) -> list[str]:
        c = self.client
        out = []
        # Member indices are 1-based (0 means "not a member" in the packed registry word).
        for i in range(1, int(c.call(c.registry, "memberCount", block=block)) + 1):
            address = c.call(c.registry, "memberAt", i, block=block)
            if self.member(address, block).role == Role.PLATFORM:
                out.append(address)
        return out

    # ------------------------------------------------------------------ the ledger's views

    def usage(self, lender: str, partner: str = NO_PARTNER, block: Block = "latest") -> LenderUsage:
        return self._read(block, ("usage", lender, partner))

    def servicer(self, platform: str, block: Block = "latest") -> str:
        """The platform servicing the records `platform` originated (itself unless its servicing
        was transferred: the registry's `servicer`)."""
        c = self.client
        return to_checksum_address(c.call(c.registry, "servicer", platform, block=block))

    def loan_state(self, loan_id: bytes, block: Block = "latest") -> tuple[int, LoanStatus]:
        """(outstanding, status) of a loan."""
        return self._read(block, ("loan_state", loan_id))

    def line_state(self, line_id: bytes, block: Block = "latest") -> LineOnChain:
        return self._read(block, ("line_state", line_id))

    def borrower_exposure(self, key: bytes, block: Block = "latest") -> BorrowerExposure:
        return self._read(block, ("borrower_exposure", key))

    def read_many(self, block: Block, wanted: list[tuple[Any, ...]]) -> list[Any]:
        """Several of the views above at one block in one JSON-RPC round trip (a batch of
        records is judged on a few hundred of them): each item is a view's name and its
        arguments, e.g. ("usage", lender, partner); results in order, as the view returns."""
        c = self.client
        calls = []
        for name, *args in wanted:
            contract, fn, _decode = _VIEWS[name]
            calls.append((getattr(c, contract), fn, tuple(args)))
        raws = c.call_many(calls, block)
        return [_VIEWS[w[0]][2](w[1:], raw) for w, raw in zip(wanted, raws, strict=True)]

    def _read(self, block: Block, wanted: tuple[Any, ...]) -> Any:
        name, *args = wanted
        contract, fn, decode = _VIEWS[name]
        c = self.client
        return decode(tuple(args), c.call(getattr(c, contract), fn, *args, block=block))

    # ------------------------------------------------------------------ recorded events

    def _events(
        self, event: str, filters: dict[str, bytes], to_block: Block = "latest"
    ) -> list[ChainEvent]:
        return self.client.events(event, from_block=self.from_block, to_block=to_block, **filters)

    def loans(self, **filters: bytes) -> list[Recorded]:
        """Loans as recorded, by their indexed loanId or borrowerKey."""
        return [
            Recorded(
                CoLoan.from_abi(e.args["loan"]),
                e.block_number,
                to_hex(e.tx_hash),
                int(e.args["policyVersion"]),
            )
            for e in self._events("LoanOriginated", filters)
        ]

    def find_loan(self, loan_id: bytes) -> Recorded | None:
        found = self.loans(loanId=loan_id)
        return found[0] if found else None

    def lines_of(self, key: bytes, block: int) -> list[tuple[CreditLine, LineStatus]]:
        """A borrower's lines as granted, each with its status at `block`."""
        out = []
        for e in self._events("LineGranted", {"borrowerKey": key}, to_block=block):
            line = CreditLine.from_abi(e.args["line"])
            out.append((line, self.line_state(line.line_id, block).status))
        return out

    def event_location(self, event: str, **filters: bytes) -> tuple[str | None, int]:
        """(transaction hash, block) where a record landed, found by its indexed id."""
        found = self._events(event, filters)
        if not found:
            return None, 0
        return to_hex(found[0].tx_hash), found[0].block_number

    def repaid(self, repayment_id: bytes) -> ChainEvent | None:
        """The Repaid event of a recorded repayment (its args, transaction and block)."""
        found = self._events("Repaid", {"repaymentId": repayment_id})
        return found[0] if found else None
