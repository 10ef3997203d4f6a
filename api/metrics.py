"""Prometheus text exposition (format 0.0.4) for one node, without the client library.

Request latencies by route template (never the raw path: ids in paths would make one series per
loan), records submitted, records refused by code and rule, and the indexer lag as a gauge.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Labels = tuple[tuple[str, str], ...]


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    esc = [(k, v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")) for k, v in labels]
    return "{" + ",".join(f'{k}="{v}"' for k, v in esc) + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hist_counts: dict[Labels, list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self._hist_sum: dict[Labels, float] = defaultdict(float)
        self._hist_n: dict[Labels, int] = defaultdict(int)
        self._submitted: dict[Labels, int] = defaultdict(int)
        self._rejected: dict[Labels, int] = defaultdict(int)
        self._gauges: dict[str, tuple[str, Callable[[], float | None]]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (("method", method), ("route", route), ("status", str(status)))
        with self._lock:
            counts = self._hist_counts[key]
            for i, b in enumerate(BUCKETS):
                if seconds <= b:
                    counts[i] += 1
            self._hist_sum[key] += seconds
            self._hist_n[key] += 1

    def submitted(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self._submitted[(("kind", kind),)] += n

    def rejected(self, kind: str, code: str, rule: str | None, source: str) -> None:
        key = (("kind", kind), ("code", code), ("rule", rule or ""), ("source", source))
        with self._lock:
            self._rejected[key] += 1

    def gauge(self, name: str, help_text: str, fn: Callable[[], float | None]) -> None:
        """A gauge read at scrape time; `fn` returning None leaves it out."""
        self._gauges[name] = (help_text, fn)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            name = "ledger_http_request_duration_seconds"
            lines += [f"# HELP {name} HTTP request latency.", f"# TYPE {name} histogram"]
            for key, counts in sorted(self._hist_counts.items()):
                for b, c in zip(BUCKETS, counts, strict=True):
                    lines.append(f"{name}_bucket{_labels(key + (('le', f'{b:g}'),))} {c}")
                lines.append(f"{name}_bucket{_labels(key + (('le', '+Inf'),))} {self._hist_n[key]}")
                lines.append(f"{name}_sum{_labels(key)} {self._hist_sum[key]:.6f}")
                lines.append(f"{name}_count{_labels(key)} {self._hist_n[key]}")
            for name, help_text, counts in (
                ("ledger_records_submitted_total", "Records recorded on chain by this node.",
                 self._submitted),
                ("ledger_records_rejected_total", "Records refused, by error code and rule.",
                 self._rejected),
            ):  # fmt: skip
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
                lines += [f"{name}{_labels(key)} {n}" for key, n in sorted(counts.items())]
        for gname, (help_text, fn) in sorted(self._gauges.items()):
            try:
                value = fn()
            except Exception:  # noqa: BLE001 - a failing probe must not break the scrape
                value = None
            if value is None:
                continue
            lines += [f"# HELP {gname} {help_text}", f"# TYPE {gname} gauge", f"{gname} {value:g}"]
        return "\n".join(lines) + "\n"
