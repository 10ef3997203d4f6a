"""What a platform node's writes work with: its member context, the consortium's chain state and
the lender nodes it asks to co-sign, and the one queue its co-loans go to the chain through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from api.service.consortium import ConsortiumView
from api.service.context import MemberContext
from api.service.peers import PeerPool
from api.service.submitter import Submitter
from ledger.domain import CoLoan


class Agreeing(Protocol):
    """What gathers loans requested at the same moment to pre-check and co-sign them together
    (api.service.batch.Gatherer)."""

    def agree(self, p: Platform, loan: CoLoan) -> list[bytes]: ...


@dataclass(frozen=True, slots=True)
class Platform:
    ctx: MemberContext
    chain: ConsortiumView
    peers: PeerPool
    submitter: Submitter
    gatherer: Agreeing
