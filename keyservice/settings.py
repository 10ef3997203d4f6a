"""The key service's settings, loaded from a JSON file (`python -m keyservice --config FILE`).

The pepper is read from `pepper_file` (hex, readable by the service's user only) or, without
one, from LEDGER_PEPPER. It is never in this file, and no member node's settings have a field
for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from api.settings import Limits, ServiceSettings
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


class KeyServiceSettings(ServiceSettings):
    name: str = Field("keyservice", min_length=1, max_length=64)
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

    def load_pepper(self) -> Pepper:
        if self.pepper_file is None:
            return Pepper.from_env()
        try:
            text = self.pepper_file.read_text()
        except OSError as exc:
            raise PepperError(f"cannot read pepper_file: {type(exc).__name__}") from None
        return Pepper.from_hex(text)
