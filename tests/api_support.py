"""A running consortium for the end-to-end API tests: real anvil, the DEV-ONLY members, the key
service (`python -m keyservice`, the pepper's only holder; `urls["keyservice"]`, overrides under
the name `keyservice`) and the five node processes (uvicorn via `python -m api`) on free loopback
ports, as `ledger up` starts them. Each test module starts its own (module scope) and stops it
afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from ledger.keys import dev_account
from ledger.localnet import nodes
from ledger.localnet.chains import LocalChain
from ledger.localnet.consortium import LocalConsortium, bootstrap
from ledger.nodeclient import NodeSession

ROLES = ("platform", "bank-a", "bank-b", "bank-c", "auditor", "governor")


EXTRA = {"guarantor": ("guarantor", 0)}  # members started by start_node (dev key role, index)


def account(member: str) -> LocalAccount:
    if member in EXTRA:
        return dev_account(*EXTRA[member])
    m = nodes.member(member)
    return dev_account(m.key_role, m.key_index)


def address(member: str) -> str:
    return account(member).address


@dataclass
class Consortium:
    chain: LocalChain
    cx: LocalConsortium
    state: Path
    urls: dict[str, str]
    data: dict[str, Any] = field(default_factory=dict)  # what a module's fixture recorded
    _sessions: dict[tuple[str, str], NodeSession] = field(default_factory=dict)

    def session(self, member: str | None, node: str) -> NodeSession:
        """A signed-in session of `member` on `node` (None: anonymous), cached."""
        key = (member or "-", node)
        if key not in self._sessions:
            if member is None:
                self._sessions[key] = NodeSession(self.urls[node])
            else:
                self._sessions[key] = NodeSession.signed_in(self.urls[node], account(member))
        return self._sessions[key]

    def close(self) -> None:
        for s in self._sessions.values():
            s.close()
        self._sessions.clear()


@contextmanager
def running_consortium(
    tmp: Path,
    overrides: dict[str, dict[str, Any]] | None = None,
    database_url: str | None = None,
) -> Iterator[Consortium]:
    with LocalChain("anvil") as chain:
        cx = bootstrap(chain.url)
        state = tmp / "state"
        state.mkdir(parents=True)
        cx.deployment.save(state / "deployment.json")
        configs = nodes.write_configs(
            state, chain.url, database_url=database_url, schema_prefix="test_api_"
        )
        for name, extra in (overrides or {}).items():
            cfg = json.loads(configs[name].read_text())
            cfg.update(extra)
            configs[name].write_text(json.dumps(cfg))
        infos = nodes.start(state, configs)
        c = Consortium(chain, cx, state, {i.name: i.url for i in infos})
        try:
            yield c
        finally:
            c.close()
            nodes.down(state)


def start_node(c: Consortium, name: str, role: str) -> str:
    """One more node beside the consortium's, for a member the council admitted after start-up
    (a guarantor): the platform's config with its own name, role, DEV-ONLY key (EXTRA), port
    and database; recorded so that stopping the consortium stops it. Its URL."""
    import time

    state = c.state.resolve()
    base = json.loads((state / "nodes" / "platform" / "config.json").read_text())
    home = state / "nodes" / name
    home.mkdir(parents=True, exist_ok=True)
    key_role, index = EXTRA[name]
    port = nodes.free_port()
    cfg = {**base, "name": name, "role": role, "port": port, "peers": {},
           "key": {"kind": "dev", "role": key_role, "index": index},
           "database_url": nodes._database_url(None, state, name, True),
           "document_key_dir": str(home / "document-keys"),
           "document_dir": str(home / "documents")}  # fmt: skip
    path = home / "config.json"
    path.write_text(json.dumps(cfg, indent=2))
    proc = nodes._spawn(path)
    url = f"http://{nodes.HOST}:{port}"
    ticks, log = nodes.start_ticks(proc.pid), str(home / "node.log")
    info = nodes.NodeInfo(
        name, role, account(name).address, url, port, proc.pid, proc.pid, ticks, str(path), log
    )
    nodes._record(state, [*nodes.recorded(state), info])
    nodes._STARTED[proc.pid] = proc
    nodes._wait_ready(info, proc, time.monotonic() + 60)
    c.urls[name] = url
    return url


def loan_body(
    loan_id: str,
    shares: dict[str, int],
    *,
    borrower_key: str | None = None,
    borrower_id: str | None = None,
    product: str = "consumer",
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "loan_id": loan_id,
        "product": product,
        "principal": sum(shares.values()),
        "apr_bps": 1_200,
        "term_days": 180,
        "repayment": "instalment",
        "tranches": [{"lender": address(m), "amount": a} for m, a in shares.items()],
        **extra,
    }
    if "schedule" in extra and "term_days" not in extra:
        del body["term_days"]  # the node derives it from the schedule
    if borrower_id is not None:
        body["borrower_id"] = borrower_id
    else:
        body["borrower_key"] = borrower_key or "0x" + _hex_of(loan_id)
    return body


def _hex_of(text: str) -> str:
    from eth_utils import keccak

    return keccak(text=f"borrower|{text}").hex()


def problem(r: Any) -> dict[str, Any]:
    """The response's problem document, after checking it is one."""
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    body = r.json()
    assert body["status"] == r.status_code and body["type"].endswith(body["code"]), body
    assert {"title", "detail"} <= set(body), body
    return body
