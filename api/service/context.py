"""This node's member: its settings, key, chain client (for the writes it signs), database,
key service client, document store, metrics, idempotency locks and token cache.

Built once per process (api.wiring); routes get it as `ContextDep` (api.deps).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from sqlalchemy import Engine

from api import store
from api.metrics import Metrics
from api.settings import NodeSettings
from ledger.chain.client import LedgerClient
from ledger.chain.connect import ChainIdMismatch, check_chain_id
from ledger.chain.deployment import Deployment
from ledger.documents import DocumentStore
from ledger.keyclient import KeyClient


class KeyedLocks:
    """One lock per idempotency key, so two concurrent retries of one write run one at a time."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Any, threading.Lock] = defaultdict(threading.Lock)

    def __call__(self, key: Any) -> threading.Lock:
        with self._guard:
            return self._locks[key]


@dataclass
class MemberContext:
    settings: NodeSettings
    deployment: Deployment
    account: LocalAccount
    client: LedgerClient
    engine: Engine
    keys: KeyClient
    documents: DocumentStore
    metrics: Metrics
    locks: KeyedLocks = field(default_factory=KeyedLocks)
    tokens: store.TokenCache = field(default_factory=store.TokenCache)

    @property
    def address(self) -> str:
        return self.account.address

    @property
    def role(self) -> str:
        return self.settings.role


_REGISTRY_CALL = "0x" + keccak(text="registry()")[:4].hex()  # CoLendingLedger.registry()


class WrongChain(RuntimeError):
    """The RPC URL answers, but not with the chain and contracts of the deployment file."""


def check_chain(ctx: MemberContext) -> None:
    """Refuse to start against a chain that is not the deployment's: another chain id, no (or
    other) contract code at the deployment's addresses, or a ledger wired to another registry
    than the deployment names (a shadow registry one member owns). A chain that does not answer
    yet is left to /readyz (api.app checks membership the same way)."""
    dep, w3, url = ctx.deployment, ctx.client.w3, ctx.settings.rpc_url
    try:
        chain_id = int(w3.eth.chain_id)
        codes = {n: bytes(w3.eth.get_code(getattr(dep, n))) for n in ("registry", "ledger")}
        call = {"to": dep.ledger, "data": _REGISTRY_CALL}
        wired = bytes(w3.eth.call(call)) if codes["ledger"] else b""
    except Exception as exc:  # noqa: BLE001 - chain down at start-up: /readyz reports it
        log = logging.getLogger("api")
        log.warning("cannot check the chain at %s yet: %s", url, type(exc).__name__)
        return
    where = f"deployment file {ctx.settings.deployment_file} expects"
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
    registry = to_checksum_address(wired[-20:]) if len(wired) == 32 else "0x" + wired.hex()
    if registry != to_checksum_address(dep.registry):
        raise WrongChain(
            f"wrong wiring: {where} the ledger at {dep.ledger} to use the registry at "
            f"{dep.registry}, but on {url} it is wired to the registry at {registry}"
        )
    # the EIP-712 domain's chain id is block.chainid inside the EVM; a node whose eth_chainId
    # says otherwise would have every signature judged differently by Python and the contract
    try:
        check_chain_id(w3, ctx.client.ledger, dep.chain_id)
    except ChainIdMismatch as exc:
        raise WrongChain(str(exc)) from None
