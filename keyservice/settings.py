"""The key service's settings, loaded from a JSON file (`python -m keyservice --config FILE`).

The pepper is read from `pepper_file` (hex, readable by the service's user only) or, without
one, from LEDGER_PEPPER. It is never in this file, and no member node's settings have a field
for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.settings import KeySource, Limits
from ledger.identity import Pepper, PepperError, Purpose

Role = Literal["platform", "lender", "auditor"]


class KeyLimits(Limits):
    """The node's limits (body size, sign-in per client and per member, trusted proxies), with
    the key service's own defaults, plus a cap per member and UTC day. `rate_per_s`/`burst` are
    derivations per member."""

    rate_per_s: float = Field(50.0, gt=0, description="derivations a second per member")
    burst: int = Field(100, gt=0, description="bucket size per member")
    per_day: int = Field(100_000, gt=0, description="derivations per member and UTC day")
    max_body_bytes: int = Field(4_096, gt=0, description="larger bodies are refused (413)")


class KeyServiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("keyservice", min_length=1, max_length=64)
    rpc_url: str
    deployment_file: Path
    database_url: str
    key: KeySource
    host: str = "127.0.0.1"
    port: int = Field(..., gt=0, lt=65536)
    pepper_file: Path | None = Field(None, description="hex pepper; None reads LEDGER_PEPPER")
    roles: list[Role] = Field(
        default_factory=lambda: ["platform", "lender", "auditor"],
        description="active members in these roles may derive keys",
    )
    purposes: dict[Role, list[Purpose]] = Field(
        default_factory=lambda: {
            "platform": ["origination", "enquiry", "servicing"],
            "lender": ["enquiry", "servicing"],
            "auditor": ["enquiry", "audit"],
        },
        description="the purposes each role may state (a lender does not originate)",
    )
    limits: KeyLimits = Field(default_factory=KeyLimits)
    token_ttl_s: int = Field(900, gt=0, le=86_400)
    challenge_ttl_s: int = Field(300, gt=0, le=3_600)
    max_log_page: int = Field(1_000, gt=0)

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        # As a node: loopback, behind a TLS-terminating proxy in production.
        if value not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("host must be a loopback address")
        return value

    @property
    def public_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def domain(self) -> str:
        return f"{self.host}:{self.port}"

    def load_pepper(self) -> Pepper:
        if self.pepper_file is None:
            return Pepper.from_env()
        try:
            text = self.pepper_file.read_text()
        except OSError as exc:
            raise PepperError(f"cannot read pepper_file: {type(exc).__name__}") from None
        return Pepper.from_hex(text)

    @classmethod
    def load(cls, path: Path) -> KeyServiceSettings:
        return cls.model_validate(json.loads(Path(path).read_text()))
