"""One node's live state: its member key, chain client, database, pepper, documents and peers.

Built once per process from NodeSettings; routes reach it through `request.app.state.node`.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from sqlalchemy import Engine

from api import store
from api.metrics import Metrics
from api.service.gate import Gate
from api.settings import NodeSettings
from ledger.chain.client import LedgerClient
from ledger.chain.deployment import Deployment
from ledger.documents import DocumentKey, DocumentStore, KeyRing, write_key_file
from ledger.domain import MemberStatus, Role
from ledger.identity import Pepper

ROLE_NAMES = {
    Role.NONE: "none",
    Role.GOVERNOR: "governor",
    Role.PLATFORM: "platform",
    Role.LENDER: "lender",
    Role.AUDITOR: "auditor",
}


@dataclass(frozen=True, slots=True)
class MemberInfo:
    address: str
    role: str
    status: MemberStatus
    frozen: bool
    index: int

    @property
    def active(self) -> bool:
        return self.status == MemberStatus.ACTIVE


class KeyedLocks:
    """One lock per idempotency key, so two concurrent retries of one write run one at a time."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Any, threading.Lock] = defaultdict(threading.Lock)

    def __call__(self, key: Any) -> threading.Lock:
        with self._guard:
            return self._locks[key]


@dataclass
class Node:
    settings: NodeSettings
    deployment: Deployment
    account: LocalAccount
    client: LedgerClient
    engine: Engine
    pepper: Pepper
    documents: DocumentStore
    metrics: Metrics
    locks: KeyedLocks = field(default_factory=KeyedLocks)
    peers: Any = None  # api.service.peers.PeerPool on a platform node
    indexed_block: Any = None  # () -> last block the read model holds, when an indexer runs
    indexed: Any = None  # api.service.indexed.IndexedReads when settings.read_model == "indexed"
    gate: Any = None  # api.service.gate.Gate: a caller's member record and the head, one batch
    tokens: store.TokenCache = field(default_factory=store.TokenCache)

    @property
    def address(self) -> str:
        return self.account.address

    @property
    def role(self) -> str:
        return self.settings.role

    def member(self, address: str, block: int | str = "latest") -> MemberInfo:
        """The registry's record of `address`, read from the chain on every call: a suspension
        takes effect on the next request, with no cache to go stale."""
        return member_info(
            address, self.client.call(self.client.registry, "member", address, block=block)
        )

    async def member_and_head(self, address: str) -> tuple[MemberInfo, int]:
        """`member(address)` at "latest" and the chain head, in one round trip (every
        authenticated request makes this read; see api/service/gate.py)."""
        record, head = await self.gate.read(address)
        return member_info(address, record), head

    def indexer_lag(self, head: int) -> int | None:
        """Blocks the read model is behind `head`; None when this node reads the chain directly
        (no indexer configured), which is never behind."""
        if self.indexed_block is None:
            return None
        return max(head - self.indexed_block(), 0)

    def chain_now(self) -> tuple[int, int]:
        """(latest block number, its timestamp): the clock the contract judges by."""
        block = self.client.w3.eth.get_block("latest")
        return int(block["number"]), int(block["timestamp"])


def member_info(address: str, m: Any) -> MemberInfo:
    """A MemberInfo from the registry's Member struct (role, status, frozen, index, ...)."""
    role, status, frozen, index = m[0], m[1], m[2], m[3]
    return MemberInfo(
        address,
        ROLE_NAMES.get(Role(role), "none"),
        MemberStatus(status),
        bool(frozen),
        int(index),
    )


class WrongChain(RuntimeError):
    """The RPC URL answers, but not with the chain and contracts of the deployment file."""


def check_chain(node: Node) -> None:
    """Refuse to start against a chain that is not the deployment's: another chain id, or no
    (or other) contract code at the deployment's addresses. A chain that does not answer yet is
    left to /readyz (api.app checks membership the same way)."""
    dep, w3, url = node.deployment, node.client.w3, node.settings.rpc_url
    try:
        chain_id = int(w3.eth.chain_id)
        codes = {n: bytes(w3.eth.get_code(getattr(dep, n))) for n in ("registry", "ledger")}
    except Exception as exc:  # noqa: BLE001 - chain down at start-up: /readyz reports it
        log = logging.getLogger("api")
        log.warning("cannot check the chain at %s yet: %s", url, type(exc).__name__)
        return
    where = f"deployment file {node.settings.deployment_file} expects"
    if chain_id != dep.chain_id:
        raise WrongChain(
            f"wrong chain: {where} chain id {dep.chain_id}, but {url} is chain id {chain_id}"
        )
    for name, code in codes.items():
        wanted = getattr(dep, f"{name}_code_hash")
        if not code:
            raise WrongChain(
                f"wrong chain: {where} the {name} at {getattr(dep, name)}, but there is no "
                f"contract code at that address on {url} (chain id {chain_id})"
            )
        if "0x" + keccak(code).hex() != wanted.lower():
            raise WrongChain(
                f"wrong chain: {where} the {name} at {getattr(dep, name)} with code hash "
                f"{wanted}, but the code there on {url} is different"
            )


def _keyring(settings: NodeSettings, dev: bool) -> KeyRing:
    directory = settings.document_key_dir
    if dev and not any(directory.glob("*.key")):
        # A local dev node makes its own key on first start; a real one is provisioned.
        write_key_file(directory, DocumentKey.generate("k1"))
    return KeyRing.from_directory(directory)


def build(settings: NodeSettings) -> Node:
    from api.settings import DEV_CHAIN_ID

    deployment = Deployment.load(settings.deployment_file)
    account = settings.key.load(deployment.chain_id)
    pepper = settings.load_pepper(deployment.chain_id)
    client = LedgerClient(settings.rpc_url, deployment, account)
    engine = store.make_engine(settings.database_url)
    documents = DocumentStore(
        settings.document_dir, _keyring(settings, deployment.chain_id == DEV_CHAIN_ID)
    )
    node = Node(
        settings=settings,
        deployment=deployment,
        account=account,
        client=client,
        engine=engine,
        pepper=pepper,
        documents=documents,
        metrics=Metrics(),
        gate=Gate(settings.rpc_url, client.registry),
    )
    if settings.read_model == "indexed":
        from api.service.indexed import IndexedReads

        node.indexed = IndexedReads(settings, deployment)
        node.indexed_block = node.indexed.last_block
    if settings.role == "platform":
        from api.service.peers import PeerPool

        node.peers = PeerPool(settings, account, deployment.chain_id)
    return node
