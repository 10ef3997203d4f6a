"""The audit's outcome: which checks ran, what they covered, every violation, and summaries."""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ledger.money import cny

# The console's style sheet (api/console serves the same file), inlined so the page stands
# alone.
STYLE = (Path(__file__).resolve().parents[1] / "data" / "console.css").read_text(encoding="utf-8")

CHECKS = ("bytecode", "provenance", "rules", "state", "arithmetic", "read_model", "documents")


@dataclass(slots=True)
class Violation:
    check: str
    code: str
    message: str
    record: str | None = None  # 0x id of the loan, line or repayment
    where: str | None = None  # block / tx / log
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CheckResult:
    name: str
    run: bool = False
    items: int = 0  # what it covered: records, signatures, views compared, rows, documents
    note: str = ""


@dataclass(slots=True)
class AuditReport:
    chain_id: int
    registry: str
    ledger: str
    from_block: int
    to_block: int
    checks: dict[str, CheckResult] = field(
        default_factory=lambda: {name: CheckResult(name) for name in CHECKS}
    )
    violations: list[Violation] = field(default_factory=list)
    records: dict[str, int] = field(default_factory=dict)
    exposure_by_product: dict[str, int] = field(default_factory=dict)
    usage_by_lender: dict[str, int] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # member address -> registered name
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations

    def add(self, check: str, code: str, message: str, **kw: Any) -> None:
        self.violations.append(Violation(check, code, message, **kw))

    def to_json(self) -> dict[str, Any]:
        total = sum(self.records.values())
        return {
            "ok": self.ok,
            "chain_id": self.chain_id,
            "registry": self.registry,
            "ledger": self.ledger,
            "blocks": [self.from_block, self.to_block],
            "checks": {k: asdict(v) for k, v in self.checks.items()},
            "violations": [asdict(v) for v in self.violations],
            "violation_count": len(self.violations),
            "records": self.records,
            "exposure_by_product": self.exposure_by_product,
            "usage_by_lender": self.usage_by_lender,
            "names": self.names,
            "seconds": round(self.seconds, 3),
            "records_per_second": round(total / self.seconds, 1) if self.seconds else None,
        }

    def to_html(self) -> str:
        """A self-contained page: counts, violations, per-lender and per-product exposure."""
        e = html.escape
        rows = "".join(
            f"<tr><td>{e(c.name)}</td><td>{'yes' if c.run else 'no'}</td><td>{c.items}</td>"
            f"<td>{e(c.note)}</td></tr>"
            for c in self.checks.values()
        )
        vrows = (
            "".join(
                f"<tr><td>{e(v.check)}</td><td>{e(v.code)}</td><td>{e(v.record or '')}</td>"
                f"<td>{e(v.where or '')}</td><td>{e(v.message)}</td></tr>"
                for v in self.violations
            )
            or '<tr><td colspan="5">none</td></tr>'
        )
        recs = "".join(f"<tr><td>{e(k)}</td><td>{n}</td></tr>" for k, n in self.records.items())
        prod = "".join(
            f'<tr><td>{e(k)}</td><td class="num">{cny(v)}</td></tr>'
            for k, v in self.exposure_by_product.items()
        )
        lend = "".join(
            f"<tr><td>{e(self.names.get(k, 'unregistered'))}<br>"
            f'<span class="addr">{e(k)}</span></td><td class="num">{cny(v)}</td></tr>'
            for k, v in self.usage_by_lender.items()
        )
        verdict = "PASS: no violations" if self.ok else f"FAIL: {len(self.violations)} violations"
        data = e(json.dumps(self.to_json()))
        return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ledger audit {e(self.ledger)}</title>
<style>{STYLE}</style></head><body>
<header><h1>Joint-lending ledger audit</h1></header><main><section>
<p>Chain {self.chain_id}, ledger {e(self.ledger)}, registry {e(self.registry)},
blocks {self.from_block}–{self.to_block}.</p>
<h2 class="{"ok" if self.ok else "bad"}">{verdict}</h2>
<h3>Checks</h3><table><tr><th>check</th><th>run</th><th>items</th><th>note</th></tr>{rows}</table>
<h3>Violations</h3><table><tr><th>check</th><th>code</th><th>record</th><th>where</th>
<th>message</th></tr>{vrows}</table>
<h3>Records</h3><table><tr><th>kind</th><th>count</th></tr>{recs}</table>
<h3>Exposure by product (CNY, exact to the fen)</h3>
<table><tr><th>product</th><th>exposure</th></tr>{prod}</table>
<h3>Outstanding joint loans by lender (CNY)</h3><table><tr><th>lender</th><th>outstanding</th></tr>
{lend}</table>
</section></main>
<script type="application/json" id="audit-report">{data}</script>
</body></html>
"""
