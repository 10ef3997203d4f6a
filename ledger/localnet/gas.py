"""Gas report: a co-loan's gas by tranche count and batch size, new and existing borrower.

Runs on a fresh local anvil with a DEV-ONLY consortium. Lender usage slots (R5/R6) are warmed
by one loan first, as they are in any consortium after its first day; "new borrower" means the
borrower's exposure slot is written for the first time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ledger.domain import DEFAULT_POLICY, CoLoan, Policy
from ledger.localnet.chains import LocalChain
from ledger.localnet.consortium import LocalConsortium, bootstrap, new_id

TRANCHE_COUNTS = (2, 3, 5)  # every record carries a bank tranche (R0): the fewest is two
BATCH_SIZES = (1, 10, 50)
PRINCIPAL = 1_000_000  # fen


@dataclass(frozen=True, slots=True)
class GasRow:
    tranches: int
    batch: int
    borrower: str  # "new" or "existing"
    gas_total: int
    gas_per_loan: int
    case: str = "originate"  # or one of ECONOMICS_CASES

    @property
    def key(self) -> tuple[int, int, str, str]:
        return (self.tranches, self.batch, self.borrower, self.case)


ECONOMICS_CASES = (
    "originate, no schedule",
    "originate, 12-instalment schedule",
    "repay, no partnership terms",
    "repay with service fees",
    "prepay, 12-instalment schedule rescaled",
    "originate, 12-month bullet schedule",
)


def _shares(cx: LocalConsortium, tranches: int, principal: int) -> list[tuple]:
    bank = (principal * 6 // 10) // (tranches - 1)
    shares = [(cx.lenders[i], bank) for i in range(tranches - 1)]
    return [(cx.platform, principal - bank * (tranches - 1)), *shares]


def measure(
    cx: LocalConsortium,
    tranche_counts: tuple[int, ...] = TRANCHE_COUNTS,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    progress: Callable[[str], None] | None = None,
) -> list[GasRow]:
    rows: list[GasRow] = []
    plat = cx.plat
    for tranches in tranche_counts:
        warm = cx.loan(PRINCIPAL, _shares(cx, tranches, PRINCIPAL))
        plat.originate(warm, cx.sign(warm))
        for batch in batch_sizes:
            for kind in ("new", "existing"):
                loans: list[CoLoan] = []
                for _ in range(batch):
                    key = new_id("borrower")
                    if kind == "existing":
                        first = cx.loan(
                            PRINCIPAL, _shares(cx, tranches, PRINCIPAL), borrower_key=key
                        )
                        plat.originate(first, cx.sign(first))
                    loans.append(
                        cx.loan(PRINCIPAL, _shares(cx, tranches, PRINCIPAL), borrower_key=key)
                    )
                sigs = [cx.sign(ln) for ln in loans]
                if batch == 1:
                    gas = plat.originate(loans[0], sigs[0]).gas_used
                else:
                    gas = plat.originate_batch(loans, sigs, atomic=True).gas_used
                rows.append(GasRow(tranches, batch, kind, gas, gas // batch))
                if progress:
                    progress(f"{tranches} tranches, batch {batch}, {kind} borrower")
    return rows


def measure_economics(cx: LocalConsortium) -> list[GasRow]:
    """Three tranches, new borrower: origination without and with a committed 12-instalment
    schedule (their difference is what the schedule commitment costs), then the first
    repayment of a loan whose banks have no partnership terms and of one whose banks do (the
    difference is what the service-fee split costs), and a prepayment that rescales the
    remaining 11 instalments on chain (LoanServicing.prepay)."""
    from ledger import apr, schedule
    from ledger.chain.servicing import Partnership

    plat, shares = cx.plat, _shares(cx, 3, PRINCIPAL)
    rows = []

    def originate(
        with_schedule: bool, kind: str = "equal_instalment"
    ) -> tuple[CoLoan, tuple[schedule.Instalment, ...], int]:
        start = cx.now()
        s = schedule.build(kind, PRINCIPAL, 12, 1_200, start)
        if with_schedule:  # its words travel with it and are checked on chain (ScheduleCheck)
            loan = cx.loan(PRINCIPAL, shares, schedule=s, start=start)
        else:
            loan = cx.loan(PRINCIPAL, shares, apr_bps=apr.all_in_apr_bps(s, PRINCIPAL, start))
        return loan, s, plat.originate(loan, cx.sign(loan)).gas_used

    plain, s, gas = originate(False)
    rows.append(GasRow(3, 1, "new", gas, gas, ECONOMICS_CASES[0]))
    _bullet, _s, gas = originate(True, "bullet")
    rows.append(GasRow(3, 1, "new", gas, gas, ECONOMICS_CASES[5]))
    scheduled, s, gas = originate(True)
    rows.append(GasRow(3, 1, "new", gas, gas, ECONOMICS_CASES[1]))
    gas = plat.repay(
        plain, new_id("repayment", cx.platform.address), s[0].principal, s[0].interest
    ).gas_used
    rows.append(GasRow(3, 1, "existing", gas, gas, ECONOMICS_CASES[2]))
    now = cx.now()
    for bank, _amount in shares[1:]:
        terms = Partnership(3_000, 1_000, 4_000, now - 1, now + 365 * 86_400)
        cx.client(bank).offer_partnership(cx.platform.address, terms)
        plat.accept_partnership(bank.address, terms)
    gas = plat.repay(
        scheduled, new_id("repayment", cx.platform.address), s[0].principal, s[0].interest
    ).gas_used
    rows.append(GasRow(3, 1, "existing", gas, gas, ECONOMICS_CASES[3]))
    plat.repay(scheduled, new_id("repayment", cx.platform.address), 100_000, 0)
    gas = plat.prepay(scheduled, s).gas_used
    rows.append(GasRow(3, 1, "existing", gas, gas, ECONOMICS_CASES[4]))
    return rows


def run(progress: Callable[[str], None] | None = None) -> list[GasRow]:
    """Start anvil, deploy, measure, stop. Five tranches need R3 raised to five institutions."""
    policy = Policy(**{**asdict(DEFAULT_POLICY), "max_institutions": 5})
    with LocalChain("anvil") as chain:
        cx = bootstrap(chain.url, n_lenders=4, policy=policy)
        try:
            rows = measure(cx, progress=progress)
            if progress:
                progress("schedule commitment and service fees")
            return rows + measure_economics(cx)
        finally:
            cx.reset_clients()


TOLERANCE = 0.02
SNAPSHOT_NOTE = (
    "Gas per co-loan (ledger gas). tests/test_gas_snapshot.py fails when any figure rises by more "
    "than 2%. Refresh with: ledger gas --write-snapshot gas-snapshot.json"
)


def write_snapshot_file(path: Path, rows: list[GasRow]) -> None:
    data = {"note": SNAPSHOT_NOTE, "rows": [asdict(r) for r in rows]}
    Path(path).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def compare_snapshot(path: Path, rows: list[GasRow]) -> list[str]:
    """Every case whose gas per loan rose by more than 2% over the snapshot, described."""
    old = {
        (r["tranches"], r["batch"], r["borrower"], r.get("case", "originate")): r["gas_per_loan"]
        for r in json.loads(Path(path).read_text(encoding="utf-8"))["rows"]
    }
    rises = []
    for r in rows:
        before = old.get(r.key)
        what = f"{r.tranches} tranches, batch {r.batch}, {r.borrower} borrower, {r.case}"
        if before is None:
            rises.append(f"{what}: not in snapshot")
        elif r.gas_per_loan > before * (1 + TOLERANCE):
            rises.append(
                f"{what}: {before:,} -> {r.gas_per_loan:,} "
                f"(+{(r.gas_per_loan - before) / before:.1%})"
            )
    return rises
