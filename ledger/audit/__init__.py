"""Verify the complete on-chain history of a deployment from the chain alone.

`run_audit(rpc_url, deployment)` needs only an RPC URL and the deployment file. It recompiles the
sources and compares the code at both addresses, replays every event from the deployment block
(signatures, membership and rules as of each record's block, arithmetic of every repayment),
compares the replayed exposures and lender usage with the contract's views at the audited block,
and, when given, checks a document archive. A report with no violation is the only passing one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ledger.audit.bytecode import check_bytecode, contracts_of
from ledger.audit.events import ChainEvent, Rpc, block_timestamps, decoder, fetch_logs
from ledger.audit.governance import check_governance
from ledger.audit.replay import Replay
from ledger.audit.report import AuditReport, CheckResult, Violation
from ledger.audit.views import check_state, fetch_views, view_keys
from ledger.chain.artifacts import load_artifacts
from ledger.chain.deployment import Deployment
from ledger.documents import document_digest
from ledger.domain import ZERO32, Product
from ledger.provenance import Domain

__all__ = [
    "AuditReport",
    "CheckResult",
    "Violation",
    "load_history",
    "record_timestamps",
    "replay_events",
    "run_audit",
]

ERC1271_MAGIC = bytes.fromhex("1626ba7e")
Progress = Callable[[str, int, int], None]


def load_history(
    rpc: Rpc, deployment: Deployment, to_block: int, progress: Progress | None = None
) -> list[ChainEvent]:
    decode = decoder(deployment).decode
    events: list[ChainEvent] = []
    for log in fetch_logs(
        rpc,
        deployment,
        to_block,
        progress=(lambda d, t: progress("reading events", d, t)) if progress else None,
    ):
        ev = decode(log)
        if ev is not None:
            events.append(ev)
    events.sort(key=lambda e: (e.block_number, e.log_index))
    return events


def record_timestamps(rpc: Rpc, events: list[ChainEvent]) -> dict[int, int]:
    """Timestamps of the blocks holding records (rules are judged at their block's time), capital
    attestations (R8 judges their age) and line ends (an expiry is judged against the signed
    one)."""
    named = ("LoanOriginated", "LineGranted", "CapitalAttested", "LineEnded")
    blocks = {e.block_number for e in events if e.name in named}
    return block_timestamps(rpc, blocks)


def replay_events(
    report: AuditReport,
    events: list[ChainEvent],
    domain: Domain,
    timestamps: dict[int, int],
    rpc: Rpc | None = None,
) -> Replay:
    """Judge and apply every event; exposed separately so a test can replay an altered history."""

    def contract_signature_ok(signer: str, d: bytes, sig: bytes, block: int) -> bool:
        # an ERC-1271 wallet is asked, as of the record's block, whether it signed
        if rpc is None or rpc.call("eth_getCode", [signer, hex(block)]) in ("0x", "0x0"):
            return False
        data = (
            "0x1626ba7e"
            + (
                d
                + (64).to_bytes(32, "big")
                + len(sig).to_bytes(32, "big")
                + sig
                + b"\0" * (-len(sig) % 32)
            ).hex()
        )
        try:
            out = rpc.call("eth_call", [{"to": signer, "data": data}, hex(block)])
        except Exception:  # noqa: BLE001 - a reverting wallet did not sign
            return False
        return bytes.fromhex(out[2:10]) == ERC1271_MAGIC

    replay = Replay(report, domain, timestamps, contract_signature_ok)
    replay.run(events)
    return replay


def run_audit(
    rpc_url: str,
    deployment: Deployment,
    *,
    block: int | None = None,
    documents_dir: Path | None = None,
    document_keys: Path | None = None,
    database_url: str | None = None,
    progress: Progress | None = None,
) -> AuditReport:
    t0 = time.perf_counter()
    rpc = Rpc(rpc_url, timeout=120)
    try:
        chain_id = int(rpc.call("eth_chainId", []), 16)
        head = int(rpc.call("eth_blockNumber", []), 16)
        to_block = head if block is None else block
        report = AuditReport(
            chain_id, deployment.registry, deployment.ledger, deployment.deployment_block, to_block
        )
        if chain_id != deployment.chain_id:
            report.add(
                "bytecode",
                "WrongChain",
                f"the RPC serves chain {chain_id}, the deployment is on {deployment.chain_id}",
            )
            return report
        _check_bytecode(report, rpc, deployment, to_block)
        events = load_history(rpc, deployment, to_block, progress)
        timestamps = record_timestamps(rpc, events)
        check_governance(
            report, rpc, deployment, [e for e in events if e.contract == "registry"], to_block
        )
        with ThreadPoolExecutor(max_workers=1) as pool:
            views = pool.submit(fetch_views, rpc_url, deployment, to_block, view_keys(events))
            replay = replay_events(
                report, events, Domain(chain_id, deployment.ledger), timestamps, rpc
            )
            try:
                state_views = views.result()
            except Exception as exc:  # noqa: BLE001 - e.g. foreign code at the address
                state_views = exc
        book = replay.book
        n_records = replay.records["loans"] + replay.records["lines"]
        report.records = dict(replay.records)
        report.checks["provenance"] = CheckResult(
            "provenance",
            True,
            replay.signatures,
            f"{replay.signatures} signatures over {n_records} records",
        )
        report.checks["rules"] = CheckResult(
            "rules",
            True,
            n_records,
            f"R1-R8 under the policy in force at each record's block "
            f"({len(replay.policies)} policy versions)",
        )
        report.checks["arithmetic"] = CheckResult(
            "arithmetic",
            True,
            n_records + replay.records["repayments"],
            "tranche sums, repayment allocations, outstanding, write-offs",
        )
        if isinstance(state_views, Exception):
            report.add(
                "state",
                "ViewsUnreadable",
                f"the ledger's views could not be read at block {to_block}: {state_views}",
            )
            report.checks["state"] = CheckResult("state", True, 0, "views unreadable")
        else:
            check_state(report, state_views, book, to_block)
        if documents_dir is not None:
            _check_documents(
                report, book, Path(documents_dir), Path(document_keys) if document_keys else None
            )
        else:
            report.checks["documents"].note = "no document archive given (--documents DIR)"
        if database_url is not None:
            from ledger.audit.readmodel import check_read_model

            check_read_model(
                report, book, replay.repayments, database_url, to_block, replay.policies
            )
        else:
            report.checks["read_model"].note = "no node database given (--database-url)"
        for product in Product:
            report.exposure_by_product[product.name.lower()] = sum(
                b.exposure[product] for b in book.borrowers.values()
            )
        for lender, total in sorted(book.lender_total.items()):
            report.usage_by_lender[lender] = total
        report.names = {
            e.args["account"]: e.args["name"] for e in events if e.name == "MemberAdmitted"
        }
        return report
    finally:
        report_time = time.perf_counter() - t0
        if "report" in locals():
            report.seconds = report_time
        rpc.close()


def _check_bytecode(report: AuditReport, rpc: Rpc, deployment: Deployment, block: int) -> None:
    onchain = {
        name: bytes.fromhex(rpc.call("eth_getCode", [address, hex(block)])[2:])
        for name, address, _hash in contracts_of(deployment)
    }
    check_bytecode(report, onchain, load_artifacts(), deployment)


def _check_documents(report: AuditReport, book, archive: Path, keys: Path | None = None) -> None:
    """Every record with a document must have it in the archive, and its SHA-256 must equal the
    digest recorded on chain. The archive is either plain files named by the record's 0x id (any
    extension), or, with `keys`, a node's encrypted document store (envelopes named by digest)
    and the key directory that opens it."""
    from ledger.documents import DocumentError, DocumentNotFound, DocumentStore, KeyRing

    store = DocumentStore(archive, KeyRing.from_directory(keys)) if keys is not None else None
    files = (
        {} if store else {p.name.split(".")[0].lower(): p for p in archive.iterdir() if p.is_file()}
    )
    checked = 0
    records = [(r.loan.loan_id, r.loan.document_digest) for r in book.loans.values()]
    records += [(r.line.line_id, r.line.document_digest) for r in book.lines.values()]
    for rid, onchain in records:
        if onchain == ZERO32:
            continue
        name = "0x" + rid.hex()
        checked += 1
        if store is not None:
            try:
                data = store.get(onchain)
            except DocumentNotFound:
                report.add("documents", "DocumentMissing", "no document in the store", record=name)
                continue
            except DocumentError as exc:
                report.add(
                    "documents",
                    "DocumentMismatch",
                    f"the stored document does not open or hash to the on-chain digest "
                    f"({exc.__class__.__name__})",
                    record=name,
                )
                continue
        else:
            path = files.get(name)
            if path is None:
                report.add(
                    "documents", "DocumentMissing", "no document in the archive", record=name
                )
                continue
            data = path.read_bytes()
        actual = document_digest(data)
        if actual != onchain:
            report.add(
                "documents",
                "DocumentMismatch",
                f"the document hashes to 0x{actual.hex()}, the chain has 0x{onchain.hex()}",
                record=name,
            )
    report.checks["documents"] = CheckResult("documents", True, checked, str(archive))
