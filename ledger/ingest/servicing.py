"""LoanServicing's events into the read model: guarantees recorded and released, compensations
(代偿), classifications (五级分类), recoveries and prepayments.

Each event only adds rows (see ledger.store.models), so a rollback deletes them by block and
nothing is replayed. A classification keeps the same bank's previous category for the same loan
(None for its first), found among the rows already written or earlier in the batch: that is what
an alert compares ("classified worse"), and what the portfolio reads as the bank's current one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ledger.chain.events import ChainEvent
from ledger.ingest.common import unhex


class Projection(Protocol):
    """What these handlers need of ledger.ingest.projection.Projection (named by its shape, so
    the two modules do not import each other)."""

    classified: dict[tuple[bytes, str], int]

    def insert(self, table: str, row: dict[str, Any]) -> None: ...


def _logged(ev: ChainEvent) -> dict:
    return {"block_number": ev.block_number, "log_index": ev.log_index, "tx_hash": ev.tx_hash}


def guarantee_recorded(p: Projection, ev: ChainEvent) -> None:
    a = ev.args
    p.insert(
        "guarantees",
        {
            **_logged(ev),
            "loan_id": unhex(a["loanId"]),
            "guarantor": a["guarantor"],
            "cover_bps": a["coverBps"],
            "amount": a["amount"],
        },
    )


def guarantee_released(p: Projection, ev: ChainEvent) -> None:
    a = ev.args
    p.insert(
        "guarantee_releases",
        {
            **_logged(ev),
            "loan_id": unhex(a["loanId"]),
            "guarantor": a["guarantor"],
            "amount": a["amount"],
        },
    )


def compensated(p: Projection, ev: ChainEvent) -> None:
    a = ev.args
    for i, payout in enumerate(a["payouts"]):
        p.insert(
            "compensations",
            {
                **_logged(ev),
                "loan_id": unhex(a["loanId"]),
                "idx": i,
                "guarantor": a["guarantor"],
                "payout": payout,
            },
        )


def classified(p: Projection, ev: ChainEvent) -> None:
    a = ev.args
    pair = (unhex(a["loanId"]), a["lender"])
    previous = p.classified.get(pair)
    p.classified[pair] = a["category"]
    p.insert(
        "classifications",
        {
            **_logged(ev),
            "loan_id": pair[0],
            "lender": pair[1],
            "category": a["category"],
            "previous": previous,
            "dpd": a["dpd"],
        },
    )


def recovered(p: Projection, ev: ChainEvent) -> None:
    a = ev.args
    for i, share in enumerate(a["split"]):
        p.insert(
            "recoveries",
            {
                **_logged(ev),
                "recovery_id": unhex(a["recoveryId"]),
                "idx": i,
                "loan_id": unhex(a["loanId"]),
                "amount": a["amount"],
                "share": share,
            },
        )


def prepaid(p: Projection, ev: ChainEvent) -> None:
    a = ev.args
    p.insert(
        "prepayments",
        {
            **_logged(ev),
            "loan_id": unhex(a["loanId"]),
            "principal": a["principal"],
            "covered": a["covered"],
            "principal_base": a["principalBase"],
            "schedule_digest": unhex(a["scheduleDigest"]),
        },
    )


HANDLERS: dict[str, Callable[[Projection, ChainEvent], None]] = {
    "GuaranteeRecorded": guarantee_recorded,
    "GuaranteeReleased": guarantee_released,
    "Compensated": compensated,
    "Classified": classified,
    "Recovered": recovered,
    "Prepaid": prepaid,
}
