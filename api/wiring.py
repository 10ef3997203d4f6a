"""Building a node's services once, from its settings: this member's context, the consortium
as the chain has it, the read model (chosen here, once: `settings.read_model`), and on a
platform node the pool of lender nodes it asks to co-sign."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from api import store
from api.buckets import Buckets
from api.metrics import Metrics
from api.service.batch import Gatherer
from api.service.consortium import ConsortiumView
from api.service.context import MemberContext
from api.service.dpd_keeper import DpdKeeper
from api.service.gate import Gate
from api.service.keeper import LineKeeper
from api.service.peers import PeerPool
from api.service.reads import ChainReads, ReadModel
from api.service.submitter import Submitter
from api.settings import DEV_CHAIN_ID, NodeSettings
from ledger.chain.client import LedgerClient
from ledger.chain.deployment import Deployment
from ledger.documents import DocumentKey, DocumentStore, KeyRing, write_key_file
from ledger.keyclient import KeyClient


@dataclass
class NodeServices:
    """What one node process serves with; each route depends on the parts it uses (api.deps)."""

    context: MemberContext
    chain: ConsortiumView
    reads: ReadModel
    buckets: Buckets
    peers: PeerPool | None = None
    keeper: LineKeeper | None = None
    submitter: Submitter | None = None
    gatherer: Gatherer | None = None
    dpd_keeper: DpdKeeper | None = None

    def close(self) -> None:
        if self.keeper is not None:
            self.keeper.stop()
        if self.gatherer is not None:
            self.gatherer.close()
        if self.submitter is not None:
            self.submitter.close()
        if self.dpd_keeper is not None:
            self.dpd_keeper.stop()
        self.reads.stop()
        self.buckets.close()
        if self.peers is not None:
            self.peers.close()
        self.chain.gate.close()
        self.context.client.close()
        self.context.keys.close()
        self.context.engine.dispose()


def _keyring(settings: NodeSettings, dev: bool) -> KeyRing:
    directory = settings.document_key_dir
    if dev and not any(directory.glob("*.key")):
        # A local dev node makes its own key on first start; a real one is provisioned.
        write_key_file(directory, DocumentKey.generate("k1"))
    return KeyRing.from_directory(directory)


def build(
    settings: NodeSettings, link_dir: Path | None = None, *, primary: bool = True
) -> NodeServices:
    """`primary`: the node process, which starts and supervises the node's follower and runs
    its keepers; else an extra HTTP worker (api/workers.py), attaching to that follower through
    `link_dir` (the node's signal directory, given whenever the node has several workers)."""
    deployment = Deployment.load(settings.deployment_file)
    account = settings.key.load(deployment.chain_id)
    client = LedgerClient(settings.rpc_url, deployment, account)
    if link_dir is not None:
        # several processes send from this account (api/workers.py): one at a time
        from api.workers import AccountLock

        client.send_lock = AccountLock(link_dir / "account.lock")
    context = MemberContext(
        settings=settings,
        deployment=deployment,
        account=account,
        client=client,
        engine=store.make_engine(settings.database_url),
        keys=KeyClient(settings.key_service.url, account, timeout_s=settings.key_service.timeout_s),
        documents=DocumentStore(
            settings.document_dir, _keyring(settings, deployment.chain_id == DEV_CHAIN_ID)
        ),
        metrics=Metrics(),
    )
    gate = Gate(settings.rpc_url, client.registry)
    chain = ConsortiumView(client, gate, deployment.deployment_block)
    reads: ReadModel = ChainReads(chain)
    if settings.read_model == "indexed":
        from api.service.follower_process import FollowerProcess
        from api.service.indexed import IndexedReads

        follower = FollowerProcess(settings, account.address, link_dir, spawn=primary)
        reads = IndexedReads(settings, ChainReads(chain), follower)
    peers = submitter = gatherer = None
    if settings.role == "platform":
        peers = PeerPool(settings, account, deployment.chain_id)
        submitter = Submitter(client, linger_s=settings.submit_linger_s)
        gatherer = Gatherer()
    keeper = None
    if primary and settings.role in ("platform", "lender"):
        keeper = LineKeeper(context, chain, settings.line_keeper_s)
    dpd_keeper = None
    if primary and settings.role == "platform":
        dpd_keeper = DpdKeeper(context, chain, settings.default_after_dpd, settings.dpd_keeper_s)
    buckets = Buckets(settings.database_url)
    return NodeServices(
        context, chain, reads, buckets, peers, keeper, submitter, gatherer, dpd_keeper
    )
