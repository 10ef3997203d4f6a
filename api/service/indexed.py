"""The node's read model: its own indexer (ledger.indexer) following the chain into its own
database (ledger.store), in a process of its own (api/follower.py, started and supervised
here: api/service/follower_process.py), and the scoped loan queries served from it.

Listing a borrower's loans and a member's own share of an exposure need per-lender amounts the
contract does not keep; the read model maintains them as events arrive. A read first waits
(briefly) for the indexer to reach the chain head, so a member reads its own writes; the answer
says which block it is as of. Live consortium totals still come from the contract's views, at
that same block, except for the exposure query: its consortium-wide totals are the maintained
`borrower_exposure` aggregate, which the indexer's consistency check holds equal to the
contract's `borrowerExposure` view.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine, and_, bindparam, create_engine, exists, false, func, select, true
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from api.auth import Principal
from api.schemas.reads import LoanView
from api.service.follower_process import FollowerProcess
from api.service.reads import ChainReads, Exposure
from api.settings import NodeSettings
from ledger.domain import LineStatus, to_hex
from ledger.records import loan_from_row, loan_view

log = logging.getLogger("api.indexer")


class IndexedReads:
    """The read model in this node's own database, kept by its own indexer; the chain's reads
    (`fallback`) answer an exposure before the indexer holds the registry's first policy."""

    def __init__(
        self,
        settings: NodeSettings,
        fallback: ChainReads,
        follower: FollowerProcess,
    ) -> None:
        self.fallback = fallback
        from ledger.store import make_engine
        from ledger.store.db import database_url
        from ledger.store.models import TABLES

        self.t = TABLES
        self.engine: Engine = make_engine(settings.database_url)
        self._quick = self.engine
        url = database_url(settings.database_url)
        if make_url(url).get_backend_name() == "postgresql":
            # The exposure query is one statement, so it runs in autocommit (no BEGIN and
            # ROLLBACK round trips) on a pool without pre-ping (a round trip per checkout); a
            # pooled connection found dead is replaced and the query run once more instead.
            self._quick = create_engine(url, isolation_level="AUTOCOMMIT")
        self.follower = follower
        self._exposure_sql = self._exposure_statements()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the follower process (the indexer and the alert watcher) and listen to it."""
        self.follower.start()

    def stop(self) -> None:
        self.follower.stop()
        self.engine.dispose()
        self._quick.dispose()

    def down(self) -> str | None:
        return self.follower.error

    def last_block(self) -> int:
        """-1 until the indexer has migrated the read model: a node is not ready (its lag counts
        from block 0) before the tables it answers from exist."""
        return self.follower.block

    def lag(self, head: int) -> int | None:
        return max(head - self.last_block(), 0)

    def as_of(self, head: int, timeout: float = 3.0) -> int:
        """Wait until the read model holds block `head` (or `timeout` passes); the block it is
        as of. The follower is woken at once (it may be resting between polls of an idle
        chain) and signals each range it indexes: no polling here."""
        return min(head, self.follower.wait_for(head, timeout))

    # ------------------------------------------------------------------ queries

    def _views(self, where: Any) -> list[LoanView]:
        loans, tranches = self.t["loans"], self.t["tranches"]
        with self.engine.connect() as conn:
            rows = (
                conn.execute(select(loans).where(where).order_by(loans.c.block_number))
                .mappings()
                .all()
            )
            ids = [r["loan_id"] for r in rows]
            parts: dict[bytes, list[Any]] = {i: [] for i in ids}
            if ids:
                for t in conn.execute(
                    select(tranches).where(tranches.c.loan_id.in_(ids)).order_by(tranches.c.idx)
                ).mappings():
                    parts[t["loan_id"]].append(t)
        return [
            LoanView(
                **loan_view(
                    loan_from_row(r, parts[r["loan_id"]]),
                    r["outstanding"],
                    r["status"],
                    [t["outstanding"] for t in parts[r["loan_id"]]],
                    policy_version=r["policy_version"],
                    block_number=r["block_number"],
                    tx_hash=to_hex(r["tx_hash"]),
                )  # fmt: skip
            )
            for r in rows
        ]

    def _scope(self, principal: Principal) -> Any:
        role, address = principal.role, principal.address
        loans, tranches = self.t["loans"], self.t["tranches"]
        if role == "auditor":
            return true()
        if role == "platform":
            return loans.c.platform == address
        if role == "lender":
            return exists().where(
                and_(tranches.c.loan_id == loans.c.loan_id, tranches.c.lender == address)
            )
        return false()

    def loan(self, loan_id: bytes, principal: Principal) -> LoanView | None:
        found = self._views(and_(self.t["loans"].c.loan_id == loan_id, self._scope(principal)))
        return found[0] if found else None

    def loans_of(self, key: bytes, principal: Principal, block: int) -> list[LoanView]:
        return self._views(and_(self.t["loans"].c.borrower_key == key, self._scope(principal)))

    def exposure(self, key: bytes, who: str | None, block: int) -> Exposure:
        """The maintained aggregates (one local query instead of two chain round trips, whatever
        the history's length: DESIGN §8), as of the block the read model held when read (the
        indexer may have moved past `block` since); the chain's answer at `block` before the
        read model holds a policy."""
        found = self._exposure(key, who)
        return found if found is not None else self.fallback.exposure(key, who, block)

    def _exposure(self, key: bytes, address: str | None) -> Exposure | None:
        """The borrower's consortium-wide exposure (the maintained aggregate the consistency
        check holds equal to the contract's view), the policy in force, `address`'s own part
        (None: not asked) and the block they are as of (the indexer's cursor, committed with
        them). One statement, so one snapshot on PostgreSQL's READ COMMITTED and SQLite alike,
        and one round trip. None before the read model holds the registry's first policy."""
        statement, params = self._exposure_sql[address is not None], {"key": key, "who": address}
        try:
            with self._quick.connect() as conn:
                row = conn.execute(statement, params).one()
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            with self._quick.connect() as conn:
                row = conn.execute(statement, params).one()
        if row[4] is None:
            return None
        block, consumer, business, institutions = row[0], row[1] or 0, row[2] or 0, row[3] or 0
        own = None
        if address is not None:
            own = 0 if row[7] is None else int(row[7]) + int(row[8]) - int(row[9])
        return Exposure(
            int(consumer), int(business), int(institutions), *(int(v) for v in row[4:7]), own,
            int(block),
        )  # fmt: skip

    def _exposure_statements(self) -> dict[bool, Any]:
        """The exposure query without and with a member's own part, built once: building and
        hashing the statement on every request cost more than running it."""
        names = ("indexer_cursor", "borrower_exposure", "policy_versions", "borrower_lenders")
        cur, be, pv, bl = (self.t[n] for n in names)
        loans, tranches, lines = (self.t[n] for n in ("loans", "tranches", "credit_lines"))
        key, who = bindparam("key"), bindparam("who")
        policy = (
            select(pv.c.consumer_cap, pv.c.business_cap, pv.c.max_institutions)
            .order_by(pv.c.version.desc())
            .limit(1)
            .subquery()
        )
        cols = [
            cur.c.last_block, be.c.consumer, be.c.business, be.c.institutions,
            policy.c.consumer_cap, policy.c.business_cap, policy.c.max_institutions,
        ]  # fmt: skip
        joined = cur.outerjoin(be, be.c.borrower_key == key).outerjoin(policy, true())
        # The member's share of active lines' limits plus its outstanding tranches of loans not
        # drawn under an active line (the line's limit already counts those drawings).
        drawn = (
            select(func.coalesce(func.sum(tranches.c.outstanding), 0))
            .select_from(
                tranches.join(loans, tranches.c.loan_id == loans.c.loan_id).join(
                    lines, loans.c.line_id == lines.c.line_id
                )
            )  # fmt: skip
            .where(
                loans.c.borrower_key == key,
                # Not `lender == who`: SQLite (no statistics) would then drive the join from
                # the lender index, i.e. every tranche the member ever funded; through the
                # coalesce (a no-op, lender is never null) it starts from the borrower's loans.
                func.coalesce(tranches.c.lender, "") == who,
                lines.c.status == int(LineStatus.ACTIVE),
            )
            .scalar_subquery()
        )
        own = joined.outerjoin(bl, and_(bl.c.borrower_key == key, bl.c.lender == who))
        return {
            False: select(*cols).select_from(joined),
            True: select(*cols, bl.c.loan_outstanding, bl.c.line_limit, drawn).select_from(own),
        }
