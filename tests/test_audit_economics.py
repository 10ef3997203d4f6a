"""The audit replays the economics: a clean history with schedules, partnership fees, a guarantee
payout, recoveries and a prepayment (its new schedule replayed by the rule) passes; a loan
signed with an all-in APR more than 1 bp below its schedule's IRR no longer reaches the chain
(ScheduleCheck refuses it), and a held schedule that does not match its signed digest is named."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from api.store import LoanSchedule
from ledger import apr
from ledger import schedule as sched
from ledger.audit import run_audit
from ledger.chain.deployment import fund
from ledger.chain.errors import ContractRevert
from ledger.chain.servicing import Partnership
from ledger.domain import LoanStatus, Role
from ledger.keys import dev_account
from ledger.localnet.chains import LocalChain
from ledger.localnet.consortium import LocalConsortium, bootstrap, new_id

YEAR = 365 * 86_400


@pytest.fixture(scope="module")
def history(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalConsortium, str, dict]]:
    db = f"sqlite:///{tmp_path_factory.mktemp('schedules') / 'node.db'}"
    engine = sa.create_engine(db)
    SQLModel.metadata.create_all(engine, tables=[LoanSchedule.__table__])  # type: ignore[attr-defined]
    with LocalChain("anvil") as chain:
        cx = bootstrap(chain.url)
        now = cx.now()
        for bank, fee in zip(cx.lenders[:2], (3_000, 2_500), strict=True):
            t = Partnership(fee, 1_000, 4_000, now - 10, now + YEAR)
            cx.client(bank).offer_partnership(cx.platform.address, t)
            cx.plat.accept_partnership(bank.address, t)
        g = dev_account("guarantor", 0)
        fund(chain.url, [g.address])
        cx.gov.admit_member(g.address, Role.GUARANTOR, "Guarantor (dev)")
        cx.client(g).attest_capital(10**9, 0, cx.now() + 30 * 86_400)
        loans = {}
        for name, rate, declared_delta in (
            ("honest", 1_200, 0),
            ("understated", 1_800, -50),
            ("defaulted", 1_500, 0),
            ("written_off", 1_500, 0),
            ("prepaid", 1_200, 0),
        ):
            start = cx.now()
            rows = sched.build("equal_instalment", 1_000_000, 12, rate, start)
            true_apr = apr.all_in_apr_bps(rows, 1_000_000, start)
            loan = cx.loan(1_000_000, apr_bps=true_apr + declared_delta, schedule=rows, start=start)
            if declared_delta:
                with pytest.raises(ContractRevert, match="AprMismatch"):
                    cx.plat.originate(loan, cx.sign(loan))
                continue
            cx.plat.originate(loan, cx.sign(loan))
            with engine.begin() as conn:
                conn.execute(
                    LoanSchedule.__table__.insert().values(  # type: ignore[attr-defined]
                        loan_id="0x" + loan.loan_id.hex(),
                        start=start,
                        instalments=json.dumps(sched.to_json(rows)),
                    )
                )
            loans[name] = (loan, rows)
        honest, rows = loans["honest"]
        cx.plat.repay(
            honest, new_id("rp", cx.platform.address), rows[0].principal, rows[0].interest
        )
        d, _ = loans["defaulted"]
        cx.client(g).offer_guarantee(d.loan_id, 8_000)
        cx.plat.accept_guarantee(d, g.address, 8_000)
        cx.plat.set_status(d, LoanStatus.OVERDUE)
        cx.plat.set_status(d, LoanStatus.DEFAULTED)
        cx.client(g).compensate(d)
        w, _ = loans["written_off"]
        cx.plat.set_status(w, LoanStatus.OVERDUE)
        cx.plat.set_status(w, LoanStatus.WRITTEN_OFF)
        cx.plat.recover(w, new_id("rc", cx.platform.address), 12_345)
        cx.plat.recover(w, new_id("rc", cx.platform.address), 7_655)
        pp, prow = loans["prepaid"]
        paid = prow[0].principal + 100_000
        cx.plat.repay(pp, new_id("rp", cx.platform.address), paid, 0)
        cx.plat.prepay(pp, prow)
        yield cx, db, loans
    engine.dispose()


def test_the_audit_replays_fees_payouts_recoveries_and_agrees_with_the_chain(history) -> None:
    cx, db, loans = history
    report = run_audit(cx.rpc_url, cx.deployment, schedules_url=db)
    assert report.violations == [], report.violations
    assert "understated" not in loans  # refused on chain: nothing for the audit to flag
    assert report.records["fee_splits"] == 1
    assert report.records["compensations"] == 1 and report.records["recoveries"] == 2
    assert report.records["schedules_checked"] == 4
    assert report.records["prepayments"] == 1
    assert report.checks["bytecode"].items == 5  # LoanServicing's code is checked too


def test_a_held_schedule_that_is_not_the_signed_one_is_named(history, tmp_path) -> None:
    cx, db, loans = history
    honest, rows = loans["honest"]
    other = f"sqlite:///{tmp_path / 'other.db'}"
    engine = sa.create_engine(other)
    SQLModel.metadata.create_all(engine, tables=[LoanSchedule.__table__])  # type: ignore[attr-defined]
    altered = [dataclasses.replace(rows[0], interest=rows[0].interest - 1), *rows[1:]]
    with engine.begin() as conn:
        conn.execute(
            LoanSchedule.__table__.insert().values(  # type: ignore[attr-defined]
                loan_id="0x" + honest.loan_id.hex(),
                start=0,
                instalments=json.dumps(sched.to_json(altered)),
            )
        )
    engine.dispose()
    report = run_audit(cx.rpc_url, cx.deployment, schedules_url=other)
    assert [(v.code, v.record) for v in report.violations] == [
        ("ScheduleMismatch", "0x" + honest.loan_id.hex())
    ]
