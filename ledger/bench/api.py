"""Through the API: exposure-query latency on a lender node with one, eight and 32 clients (the
co-sign flow's throughput is ledger/bench/throughput.py).

Beside each latency figure, the node's own CPU time per query (user + system, read from /proc,
so Linux only, over the node's whole process group: its HTTP worker(s) and its follower): on a
machine shared with other work, latency says as much about the neighbours as about the node,
and that figure does not. It includes the node's indexer polling the chain in the background
(a few milliseconds a second)."""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ledger.bench.recording import _pct
from ledger.localnet.chains import LocalChain
from ledger.localnet.consortium import LocalConsortium, bootstrap, new_id
from ledger.nodeclient import NodeSession


def _loan_body(cx: Any, loan_id: str, borrower_key: str) -> dict[str, Any]:
    return {
        "loan_id": loan_id,
        "borrower_key": borrower_key,
        "product": "consumer",
        "principal": 1_000_000,
        "apr_bps": 1_200,
        "term_days": 180,
        "repayment": "instalment",
        "tranches": [
            {"lender": cx.platform.address, "amount": 400_000},
            {"lender": cx.lenders[0].address, "amount": 300_000},
            {"lender": cx.lenders[1].address, "amount": 300_000},
        ],
    }


def per_client(queries: int, clients: int) -> int:
    """Queries each client makes: all of them for one client, a quarter each for several (the
    eight-client figure then rests on twice as many samples, in a quarter of the time)."""
    return queries if clients == 1 else max(1, queries // 4)


def _queries(url: str, account: Any, keys: list[str], n: int, clients: int) -> list[float]:
    latencies: list[float] = []
    lock = threading.Lock()

    def work(offset: int) -> None:
        with NodeSession.signed_in(url, account) as s:
            mine = []
            for i in range(n):
                key = keys[(offset + i) % len(keys)]
                t0 = time.perf_counter()
                r = s.get(f"/v1/borrowers/{key}/exposure")
                mine.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise RuntimeError(f"exposure query answered {r.status_code}: {r.text}")
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=work, args=(c * 997,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def group_pids(pid: int) -> list[int]:
    """`pid` and every process in its process group: a node started by the tooling leads its own
    group, which holds its follower (the indexer) and any extra HTTP workers."""
    out = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != pid:
            fields = _stat(int(entry.name))
            if fields is not None and fields[2] == str(pid):
                out.append(int(entry.name))
    return out


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds process `pid` and the rest of its process group (a node's
    follower and workers) have used so far; None where /proc is not."""
    total, found = 0.0, False
    for p in group_pids(pid) if Path("/proc").is_dir() else [pid]:
        fields = _stat(p)
        if fields is None:
            continue
        try:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            found = True
        except (ValueError, IndexError):
            continue
    return total if found else None


def measure(url: str, pid: int, account: Any, keys: list[str], n: int, clients: int) -> dict:
    """Exposure queries from `clients` clients, `n` each: p50/p99/mean, and the CPU the node
    (process `pid`) spent per query."""
    cpu0 = cpu_seconds(pid)
    lat = _queries(url, account, keys, n, clients)
    cpu1 = cpu_seconds(pid)
    out: dict[str, Any] = {
        "queries": len(lat),
        "p50_ms": round(_pct(lat, 50) * 1000, 2),
        "p99_ms": round(_pct(lat, 99) * 1000, 2),
        "mean_ms": round(statistics.fmean(lat) * 1000, 2),
    }
    if cpu0 is not None and cpu1 is not None:
        out["node_cpu_ms_per_query"] = round((cpu1 - cpu0) / len(lat) * 1000, 2)
    return out


def wait_indexed(urls: Iterable[str], account: Any, head: int, timeout: float = 120.0) -> None:
    """Until the read model of each node at `urls` holds block `head` (its follower has digested
    everything before), so what is measured next is not charged with indexing; RuntimeError
    naming the node after `timeout`."""
    deadline = time.monotonic() + timeout
    for url in urls:
        with NodeSession.signed_in(url, account) as s:
            while True:
                r = s.get(f"/v1/borrowers/0x{'00' * 32}/exposure")
                if r.status_code == 200 and r.json().get("as_of_block", -1) >= head:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the read model at {url} did not reach block {head}")
                time.sleep(0.2)


@contextmanager
def consortium_with_nodes() -> Iterator[tuple[LocalConsortium, dict[str, str], dict[str, int]]]:
    """A fresh anvil with the DEV-ONLY consortium deployed, the key service and the five nodes
    running: (consortium, node URLs, node pids); everything stopped afterwards."""
    from ledger.localnet import nodes

    with tempfile.TemporaryDirectory() as tmp, LocalChain("anvil") as chain:
        state = Path(tmp)
        cx = bootstrap(chain.url)
        cx.deployment.save(state / "deployment.json")
        infos = nodes.start(state, nodes.write_configs(state, chain.url, fresh=True))
        try:
            yield cx, {i.name: i.url for i in infos}, {i.name: i.pid for i in infos}
        finally:
            nodes.down(state)
            cx.reset_clients()


def run(loans: int, queries: int, progress: Callable[[str], None] | None = None) -> dict[str, Any]:

    say = progress or (lambda _m: None)
    with consortium_with_nodes() as (cx, urls, pids):
        out: dict[str, Any] = {}
        say(f"recording {loans} loans for the exposure queries")
        keys = ["0x" + new_id("q").hex() for _ in range(min(loans, 1_000))]
        items = []
        for i in range(loans):
            ln = cx.loan(100_000, borrower_key=bytes.fromhex(keys[i % len(keys)][2:]))
            items.append((ln, cx.sign(ln)))
        cx.plat.originate_pipelined(items)
        head = cx.plat.w3.eth.block_number
        wait_indexed([urls["bank-a"]], cx.lenders[0], head)
        for clients in (1, 8, 32):
            say(f"exposure queries, {clients} client(s)")
            n = per_client(queries, clients)
            out[f"exposure_{clients}_client"] = measure(
                urls["bank-a"], pids["bank-a"], cx.lenders[0], keys, n, clients
            )
        out["loans_indexed"] = loans
        out["target_p99_ms"] = 10
        return out
