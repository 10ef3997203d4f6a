"""The council from a member's own node: the node signs with its own key only, so each member
proposes, approves, executes or cancels on its own node (ledger.governance)."""

from __future__ import annotations

import dataclasses
from typing import Any

from api.problems import Problem, rule_problem
from api.service.context import MemberContext
from ledger.domain import ADMISSIBLE_ROLES
from ledger.governance import (
    Council,
    PolicyOutOfBounds,
    ProposalStatus,
    encode_action,
    parse_id,
)

_ROLES = ADMISSIBLE_ROLES


def council(ctx: MemberContext) -> Council:
    if not ctx.deployment.council:
        raise Problem(503, "NoCouncil", "this deployment has no council")
    return Council(ctx.client)


def proposal_id(text: str) -> bytes:
    try:
        return parse_id(text)
    except ValueError:
        raise Problem(422, "BadProposalId", "a proposal id is 0x and 64 hex digits") from None


def action_args(ctx: MemberContext, body: Any) -> tuple[str, tuple[Any, ...]]:
    """The registry action a request body asks for, with its arguments."""
    action = body.action
    if action == "policy":
        current, _ = ctx.client.current_policy()
        fields = {f.name for f in dataclasses.fields(current)} - {"effective_block"}
        unknown = set(body.policy or {}) - fields
        if unknown or not body.policy:
            raise Problem(
                422, "BadPolicy", f"policy: give fields among {', '.join(sorted(fields))}"
            )
        return "policy", (dataclasses.replace(current, **body.policy),)
    if action in ("unpause", "pause"):
        return action, ()
    if body.address is None:
        raise Problem(422, "AddressRequired", f"{action}: the member's address is required")
    if action == "admit":
        if body.role not in _ROLES or not body.name:
            raise Problem(422, "BadAdmission", f"admit: role {'|'.join(_ROLES)} and a name")
        return "admit", (body.address, _ROLES[body.role], body.name)
    if action in ("freeze", "unfreeze"):
        return "freeze", (body.address, action == "freeze")
    if action == "transfer-servicing":
        if body.to is None:
            raise Problem(
                422, "AddressRequired", "transfer-servicing: the successor `to` is required"
            )
        return action, (body.address, body.to)
    return action, (body.address,)


def propose(ctx: MemberContext, body: Any) -> ProposalStatus:
    c = council(ctx)
    action, args = action_args(ctx, body)
    try:
        encode_action(ctx.client.registry, action, *args)
    except PolicyOutOfBounds as exc:
        raise rule_problem(exc.code, exc.values, "the pre-check (ledger.governance)") from None
    except Exception:  # noqa: BLE001 - a value the registry's ABI cannot carry (e.g. uint8)
        raise Problem(422, "BadProposal", f"{action}: a value does not fit its field") from None
    pid, _ = c.propose(action, *args)
    return c.status(pid)


def act(ctx: MemberContext, verb: str, text: str) -> ProposalStatus:
    c = council(ctx)
    pid = proposal_id(text)
    getattr(c, verb)(pid)  # a refusal is a ContractRevert: api.problems maps it
    return c.status(pid)


def status(ctx: MemberContext, text: str) -> ProposalStatus:
    c = council(ctx)
    st = c.status(proposal_id(text))
    if st.proposer == "0x" + "00" * 20:
        raise Problem(404, "UnknownProposal", f"no proposal {text}")
    return st
