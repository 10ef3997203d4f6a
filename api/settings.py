"""One node's settings: which member it acts for, where the chain and its database are, its
peers and its lending appetite. Loaded from a JSON file (`python -m api --config FILE`).

Private keys never sit in the file: a real key is a keystore whose password comes from
LEDGER_KEY_PASSWORD. The DEV-ONLY key is allowed only on chain id 31337, where nothing real can be
at stake. A node never holds the consortium pepper: it asks the key service for borrower keys
(`key_service`, see ledger.keyclient).
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Literal, Self

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.alerting.config import AlertSettings
from ledger.records.names import ProductName

DEV_CHAIN_ID = 31337

NodeRole = Literal["platform", "lender", "auditor", "guarantor"]


class DevOnlyRefused(RuntimeError):
    """A DEV-ONLY key was configured for a chain other than the local dev chain."""


class KeySource(BaseModel):
    """Where the node's signing key comes from."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["dev", "keystore"]
    role: str | None = Field(None, description="dev: the dev_account role name")
    index: int = Field(0, ge=0, description="dev: the dev_account index")
    path: Path | None = Field(None, description="keystore: V3 file, password in the environment")

    def load(self, chain_id: int) -> LocalAccount:
        from ledger.keys import dev_account, load_keystore

        if self.kind == "keystore":
            if self.path is None:
                raise ValueError("key.path is required for a keystore key")
            return load_keystore(self.path)
        if chain_id != DEV_CHAIN_ID:
            raise DevOnlyRefused(
                f"DEV-ONLY keys are allowed on chain id {DEV_CHAIN_ID} only, not {chain_id}"
            )
        if not self.role:
            raise ValueError("key.role is required for a dev key")
        return dev_account(self.role, self.index)


class Appetite(BaseModel):
    """A lender's own limits, checked before it co-signs (on top of the consortium rules)."""

    model_config = ConfigDict(extra="forbid")

    max_tranche: int | None = Field(None, gt=0, description="largest tranche it funds, fen")
    products: list[ProductName] = Field(default_factory=lambda: ["consumer", "business"])


class Limits(BaseModel):
    """What one client may make this node do. The defaults leave room for a busy member's own
    tooling (hundreds of requests a second) and stop a runaway or hostile client."""

    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(
        8 << 20, gt=0, description="larger request bodies are refused (413) before being read"
    )
    rate_per_s: float = Field(
        1_000.0, gt=0, description="requests a second per authenticated caller (token bucket)"
    )
    burst: int = Field(2_000, gt=0, description="bucket size per authenticated caller")
    auth_rate_per_s: float = Field(
        20.0, gt=0, description="sign-in requests a second per client IP (token bucket)"
    )
    auth_burst: int = Field(200, gt=0, description="bucket size for sign-in per client IP")
    signin_rate_per_s: float = Field(
        5.0,
        gt=0,
        description="tokens a second per member address, counted only after its signature is "
        "verified (so nobody else can spend a member's bucket)",
    )
    signin_burst: int = Field(200, gt=0, description="bucket size for tokens per member address")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses (or CIDR networks) of reverse proxies whose X-Forwarded-For is "
        "believed; from any other peer the header is ignored. Default: none trusted",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for entry in v:
            ipaddress.ip_network(entry, strict=False)  # ValueError names the bad entry
        return v


class KeyServiceLink(BaseModel):
    """Where this node asks for borrower keys: the key service, signed in with this node's key."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(..., description="https, or http on a loopback address")
    timeout_s: float = Field(10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _safe_url(cls, value: str) -> str:
        from ledger.keyclient import check_url

        return check_url(value)


class ServiceSettings(BaseModel):
    """What every service process of a member shares (a node, the key service): its chain, its
    deployment, its own database and key, and its loopback address."""

    model_config = ConfigDict(extra="forbid")

    rpc_url: str
    deployment_file: Path
    database_url: str
    key: KeySource
    host: str = "127.0.0.1"
    port: int = Field(..., gt=0, lt=65536)

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        # The local consortium binds loopback only; a production deployment sits behind a proxy
        # that terminates TLS and forwards to it.
        if value not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("host must be a loopback address")
        return value

    @property
    def public_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def domain(self) -> str:
        """The EIP-4361 domain: this service's authority. A sign-in for another is refused."""
        return f"{self.host}:{self.port}"

    @classmethod
    def load(cls, path: Path) -> Self:
        return cls.model_validate(json.loads(Path(path).read_text()))


class NodeSettings(ServiceSettings):
    name: str = Field(..., min_length=1, max_length=64)
    role: NodeRole
    peers: dict[str, str] = Field(
        default_factory=dict, description="lender address -> that lender node's base URL"
    )
    appetite: Appetite = Field(default_factory=Appetite)
    token_ttl_s: int = Field(900, gt=0, le=86_400)
    challenge_ttl_s: int = Field(300, gt=0, le=3_600)
    cosign_deadline_s: int = Field(600, gt=0, description="deadline given to records it proposes")
    max_cosign_deadline_s: int = Field(
        3_600, gt=0, description="a lender refuses to sign terms with a later deadline"
    )
    peer_timeout_s: float = Field(15.0, gt=0)
    submit_linger_s: float = Field(
        0.02,
        ge=0,
        le=1.0,
        description="a platform node's submitter waits up to this long for more co-loans before "
        "sending a round that would not fill one transaction (api/service/submitter.py); 0: "
        "send at once",
    )
    key_service: KeyServiceLink
    document_key_dir: Path
    document_dir: Path
    max_indexer_lag: int = Field(10, ge=0, description="blocks; readiness fails above it")
    read_model: Literal["indexed", "chain"] = Field(
        "indexed",
        description="indexed: this node's indexer and database serve loan reads; "
        "chain: read events and views from the chain directly (no indexer)",
    )
    indexer_poll_s: float = Field(
        0.1, gt=0, description="how often the indexer polls the chain while blocks arrive"
    )
    indexer_idle_poll_s: float = Field(
        2.0,
        gt=0,
        description="the longest pause between polls while the chain makes no blocks (the pause "
        "doubles from indexer_poll_s; a request waiting for a newer block polls at once)",
    )
    line_keeper_s: float = Field(
        30.0,
        ge=0,
        description="how often a platform or lender node expires credit lines past their signed "
        "expiry (api/service/keeper.py); 0: never",
    )
    dpd_keeper_s: float = Field(
        5.0,
        ge=0,
        description="how often a platform node moves its loans' status with days past due "
        "(api/service/dpd_keeper.py); 0: never",
    )
    default_after_dpd: int = Field(
        90,
        ge=1,
        description="a platform node's keeper moves an overdue loan to defaulted past this many "
        "days past due (api/service/dpd_keeper.py)",
    )
    workers: int = Field(
        1,
        ge=1,
        le=16,
        description="HTTP processes serving this node on its one port (api/workers.py); more "
        "than 1 on lender and auditor nodes only",
    )
    limits: Limits = Field(default_factory=Limits)
    alerts: AlertSettings = Field(default_factory=AlertSettings)

    @field_validator("peers")
    @classmethod
    def _checksum_peers(cls, value: dict[str, str]) -> dict[str, str]:
        return {to_checksum_address(k): v.rstrip("/") for k, v in value.items()}

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2) + "\n")
