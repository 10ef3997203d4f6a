"""The council: one member's side of governance (propose, approve, execute, cancel, status).

The registry is owned by an OpenZeppelin TimelockController whose only proposer is the
ConsortiumCouncil contract. A council member proposes one registry call; once a majority of the
active platforms, lenders and auditors approve it, the council schedules it on the timelock, and
anyone executes it after the delay. Each member signs with its own key on its own node: nothing
here holds more than one key.

The hard bounds below mirror ConsortiumRegistry._setPolicy: a proposal that crosses one is
refused before it costs a transaction (the contract refuses it anyway, PolicyOutOfBounds).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_utils import to_checksum_address

from ledger.chain.events import EventDecoder
from ledger.domain import Policy, Role

__all__ = [
    "ACTIONS",
    "POLICY_BOUNDS",
    "Council",
    "ProposalState",
    "ProposalStatus",
    "encode_action",
    "policy_bound_violations",
]


class ProposalState(IntEnum):
    NONE = 0
    PENDING = 1
    SCHEDULED = 2
    EXECUTED = 3
    CANCELLED = 4


# field -> (Policy attribute, "max" or "min", bound): DESIGN §4's hard bounds, as in the contract
POLICY_BOUNDS: dict[str, tuple[str, str, int]] = {
    "consumerCap": ("consumer_cap", "max", 200_000 * 100),  # R1 <= 200,000 CNY
    "businessCap": ("business_cap", "max", 1_000_000 * 100),  # R2 <= 1,000,000 CNY
    "maxInstitutions": ("max_institutions", "max", 5),  # R3 <= 5
    "minPlatformShareBps": ("min_platform_share_bps", "min", 3_000),  # R4 >= 30%
    "maxPartnerCapitalBps": ("max_partner_capital_bps", "max", 2_500),  # R5 <= 25%
    "maxJointLoanBps": ("max_joint_loan_bps", "max", 5_000),  # R6 <= 50%
    "maxConsumerBulletDays": ("max_consumer_bullet_days", "max", 365),  # R7 <= 365 days
}


def policy_bound_violations(policy: Policy) -> list[tuple[str, int, int]]:
    """(field, value, bound) for each hard bound `policy` crosses; empty when none."""
    out = []
    for name, (attr, kind, bound) in POLICY_BOUNDS.items():
        value = getattr(policy, attr)
        if (kind == "max" and value > bound) or (kind == "min" and value < bound):
            out.append((name, value, bound))
    return out


# action name -> registry function; the arguments follow the function's
ACTIONS: dict[str, str] = {
    "policy": "setPolicy",
    "admit": "admitMember",
    "suspend": "suspendMember",
    "reinstate": "reinstateMember",
    "remove": "removeMember",
    "freeze": "setFrozen",
    "pause": "pause",
    "unpause": "unpause",
    "transfer-servicing": "transferServicing",
}


def encode_action(registry: Any, action: str, *args: Any, check: bool = True) -> str:
    """The registry call an action stands for, ABI-encoded (0x hex). A policy beyond a hard
    bound is refused here unless `check` is off (tests that let the contract judge)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
    if action == "policy":
        (policy,) = args
        if check and (bad := policy_bound_violations(policy)):
            field, value, bound = bad[0]
            raise PolicyOutOfBounds(field, value, bound)
        args = (policy.as_abi(),)
    elif action == "admit":
        account, role, name, *rest = args
        args = (
            to_checksum_address(account),
            int(Role(role)),
            name,
            rest[0] if rest else b"\0" * 32,
        )
    elif action in ("suspend", "reinstate", "remove"):
        args = (to_checksum_address(args[0]),)
    elif action == "freeze":
        args = (to_checksum_address(args[0]), bool(args[1]))
    elif action == "transfer-servicing":
        args = (to_checksum_address(args[0]), to_checksum_address(args[1]))
    return registry.encode_abi(ACTIONS[action], args=list(args))


class PolicyOutOfBounds(ValueError):
    """A policy beyond a hard regulatory bound (the contract's PolicyOutOfBounds)."""

    code = "PolicyOutOfBounds"

    def __init__(self, field: str, value: int, bound: int) -> None:
        super().__init__(f"{field} = {value} crosses the hard bound {bound}")
        self.values = {"field": field, "value": value, "bound": bound}


@dataclass(frozen=True, slots=True)
class ProposalStatus:
    id: str
    target: str
    data: str
    salt: str
    proposer: str
    state: ProposalState
    approvals: int
    threshold: int
    approvers: tuple[str, ...]
    ready_at: int  # unix time the timelock allows execution; 0 until scheduled

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": self.target,
            "data": self.data,
            "salt": self.salt,
            "proposer": self.proposer,
            "state": self.state.name.lower(),
            "approvals": self.approvals,
            "threshold": self.threshold,
            "approvers": list(self.approvers),
            "ready_at": self.ready_at,
        }


def governance_decoder(council: str, timelock: str, artifacts: Any = None) -> EventDecoder:
    """The council's and its timelock's logs (apart from the registry's and the ledger's, which
    the indexer reads): proposals, approvals, scheduling, execution, cancellation, delays."""
    return EventDecoder.of(
        (("council", council, "ConsortiumCouncil"), ("timelock", timelock, "TimelockController")),
        artifacts,
        native=True,
    )


class Council:
    """One member's access to the council, through its own LedgerClient (its own key)."""

    def __init__(self, client: Any) -> None:
        if not client.deployment.council:
            raise ValueError("this deployment has no council (deployment file without 'council')")
        self.client = client
        self.contract = client.council
        self.timelock = client.timelock
        dep = client.deployment
        self.decoder = governance_decoder(dep.council, dep.timelock, client._artifacts)

    def events(self, receipt: Any, name: str | None = None) -> list[dict[str, Any]]:
        """The arguments of the council's (and timelock's) events `name` in a receipt."""
        return [e.args for e in self.decoder.receipt_events(receipt, name)]

    def propose(self, action: str, *args: Any, salt: bytes | None = None) -> tuple[bytes, Any]:
        """Propose a registry action; returns (proposal id, receipt)."""
        data = encode_action(self.client.registry, action, *args)
        return self.propose_call(self.client.registry.address, data, salt=salt)

    def propose_call(
        self, target: str, data: str | bytes, *, salt: bytes | None = None
    ) -> tuple[bytes, Any]:
        salt = salt if salt is not None else os.urandom(32)
        if isinstance(data, str):
            data = bytes.fromhex(data.removeprefix("0x"))
        target = to_checksum_address(target)
        pid = self.client.call(self.timelock, "hashOperation", target, 0, data, b"\0" * 32, salt)
        receipt = self.client.transact(self.contract, "propose", target, data, salt)
        return bytes(pid), receipt

    def approve(self, pid: bytes) -> Any:
        return self.client.transact(self.contract, "approve", pid)

    def schedule(self, pid: bytes) -> Any:
        return self.client.transact(self.contract, "schedule", pid)

    def execute(self, pid: bytes) -> Any:
        return self.client.transact(self.contract, "execute", pid)

    def cancel(self, pid: bytes) -> Any:
        return self.client.transact(self.contract, "cancel", pid)

    def threshold(self) -> int:
        return int(self.client.call(self.contract, "threshold"))

    def delay(self) -> int:
        return int(self.client.call(self.timelock, "getMinDelay"))

    def status(self, pid: bytes) -> ProposalStatus:
        target, data, salt, proposer, state = self.client.call(self.contract, "proposal", pid)
        counting, approvers = self.client.call(self.contract, "approvals", pid)
        ready = int(self.client.call(self.timelock, "getTimestamp", pid))
        return ProposalStatus(
            id="0x" + bytes(pid).hex(),
            target=target,
            data="0x" + bytes(data).hex(),
            salt="0x" + bytes(salt).hex(),
            proposer=proposer,
            state=ProposalState(state),
            approvals=int(counting),
            threshold=self.threshold(),
            approvers=tuple(approvers),
            ready_at=ready if ready > 1 else 0,  # the timelock marks "done" as 1
        )


def parse_id(text: str) -> bytes:
    """A proposal id from 0x hex (64 digits)."""
    raw = bytes.fromhex(text.removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError("a proposal id is 32 bytes of hex")
    return raw
