"""The audit's governance check (issue 14): replay the council's and its timelock's events and
the registry's governed changes, and flag any change that did not go through the council.

What must hold, from the chain alone:

* the registry's owner at the audited block is the deployment's timelock (never one key);
* after the hand-over (the registry's GovernorChanged to the timelock), every governed change of
  the registry (PolicyUpdated, MemberAdmitted, MemberStatusChanged, MemberFrozen, Unpaused,
  GovernorChanged, ServicingTransferred) happens in a transaction where the timelock executed a
  call on the registry;
* every call the timelock executed was scheduled by the council (ProposalScheduled) after a
  majority approved it (the last ProposalApproved before it counted at least its threshold), and
  executed no earlier than its schedule's delay allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ledger.audit.events import ChainEvent, Rpc, block_timestamps
from ledger.audit.report import AuditReport, CheckResult
from ledger.chain.deployment import Deployment

# the registry's events that only its owner can cause
GOVERNED = frozenset(
    {
        "PolicyUpdated",
        "MemberAdmitted",
        "MemberStatusChanged",
        "MemberFrozen",
        "Unpaused",
        "GovernorChanged",
        "OwnershipTransferStarted",
        "ServicingTransferred",
    }
)


def _where(ev: ChainEvent) -> str:
    return f"block {ev.block_number} tx 0x{ev.tx_hash.hex()} log {ev.log_index}"


def governance_events(rpc: Rpc, deployment: Deployment, to_block: int) -> list[ChainEvent]:
    """The council's and timelock's events from the deployment block, in chain order."""
    from ledger.governance import governance_decoder

    dec = governance_decoder(deployment.council, deployment.timelock)
    logs = rpc.get_logs(deployment.deployment_block, to_block, dec.addresses)
    out = [ev for ev in map(dec.decode, logs) if ev is not None]
    out.sort(key=lambda e: (e.block_number, e.log_index))
    return out


def check_governance(
    report: AuditReport,
    rpc: Rpc,
    deployment: Deployment,
    registry_events: Iterable[ChainEvent],
    to_block: int,
) -> dict[str, Any]:
    """Add the governance check's violations to `report`; returns a summary."""
    check = report.checks.setdefault("governance", CheckResult("governance"))
    check.run = True
    if not deployment.council or not deployment.timelock:
        report.add(
            "governance",
            "NoCouncil",
            "the deployment file names no council: the registry is governed by one key",
        )
        return {}
    owner_word = rpc.call(
        "eth_call", [{"to": deployment.registry, "data": "0x8da5cb5b"}, hex(to_block)]
    )  # owner()
    owner = "0x" + owner_word[-40:]
    if owner.lower() != deployment.timelock.lower():
        report.add(
            "governance",
            "GovernorNotCouncil",
            f"the registry's owner at block {to_block} is {owner}, not the council's timelock",
            details={"owner": owner, "timelock": deployment.timelock},
        )
    gov = governance_events(rpc, deployment, to_block)
    return replay_governance(report, deployment, list(registry_events), gov, rpc)


def replay_governance(
    report: AuditReport,
    deployment: Deployment,
    registry_events: list[ChainEvent],
    gov: list[ChainEvent],
    rpc: Rpc | None = None,
) -> dict[str, Any]:
    """The replay itself, apart from reading, so a test can replay an altered history."""
    timelock = deployment.timelock.lower()
    handover_tx: bytes | None = None
    for ev in registry_events:
        if ev.name == "GovernorChanged" and str(ev.args["newGovernor"]).lower() == timelock:
            handover_tx = ev.tx_hash
            break
    # timelock executions on the registry, by transaction
    executed_in: set[bytes] = {
        ev.tx_hash
        for ev in gov
        if ev.name == "CallExecuted"
        and str(ev.args["target"]).lower() == deployment.registry.lower()
    }
    started = handover_tx is None
    governed = 0
    for ev in registry_events:
        if not started:
            if ev.tx_hash == handover_tx:
                started = True
            continue
        if ev.name not in GOVERNED or ev.tx_hash == handover_tx:
            continue
        governed += 1
        if ev.tx_hash not in executed_in:
            report.add(
                "governance",
                "GovernedChangeOutsideTimelock",
                f"{ev.name} without a council decision executed by the timelock",
                where=_where(ev),
                details={"event": ev.name},
            )
    if handover_tx is None:
        report.add(
            "governance",
            "NoHandOver",
            "the registry was never handed to the council's timelock",
        )
    # the council: approvals, scheduling, execution after the delay
    handover_ops = {
        ev.args["id"] for ev in gov if ev.name == "CallExecuted" and ev.tx_hash == handover_tx
    }
    last_approval: dict[Any, ChainEvent] = {}
    council_scheduled: set[Any] = set()
    scheduled: dict[Any, ChainEvent] = {}
    proposals = executed = 0
    for ev in gov:
        pid = ev.args.get("id")
        if ev.contract == "council":
            if ev.name == "ProposalCreated":
                proposals += 1
            elif ev.name == "ProposalApproved":
                last_approval[pid] = ev
            elif ev.name == "ProposalScheduled":
                council_scheduled.add(pid)
                a = last_approval.get(pid)
                if (
                    a is not None
                    and a.tx_hash == ev.tx_hash
                    and a.args["approvals"] < a.args["threshold"]
                ):
                    report.add(
                        "governance",
                        "ScheduledWithoutMajority",
                        f"proposal 0x{bytes(pid).hex()} scheduled with {a.args['approvals']} of "
                        f"{a.args['threshold']} approvals",
                        where=_where(ev),
                    )
        elif ev.name == "CallScheduled":
            scheduled[pid] = ev
            if pid not in handover_ops and pid not in council_scheduled:
                # the council schedules in the same transaction, after the timelock's event
                same_tx = any(
                    g.name == "ProposalScheduled"
                    and g.args["id"] == pid
                    and g.tx_hash == ev.tx_hash
                    for g in gov
                )
                if not same_tx:
                    report.add(
                        "governance",
                        "ScheduledOutsideCouncil",
                        f"the timelock scheduled 0x{bytes(pid).hex()} without a council decision",
                        where=_where(ev),
                    )
        elif ev.name == "CallExecuted":
            executed += 1
            s = scheduled.get(pid)
            if s is None:
                report.add(
                    "governance",
                    "ExecutedWithoutSchedule",
                    f"the timelock executed 0x{bytes(pid).hex()} with no schedule on record",
                    where=_where(ev),
                )
            elif rpc is not None and pid not in handover_ops:
                ts = block_timestamps(rpc, {s.block_number, ev.block_number})
                if ts[ev.block_number] < ts[s.block_number] + int(s.args["delay"]):
                    report.add(
                        "governance",
                        "ExecutedBeforeDelay",
                        f"0x{bytes(pid).hex()} executed before its delay of {s.args['delay']} s",
                        where=_where(ev),
                    )
    report.checks["governance"] = CheckResult(
        "governance",
        True,
        proposals,
        f"{proposals} proposals, {executed} timelock executions, {governed} governed registry "
        f"changes after the hand-over",
    )
    return {"proposals": proposals, "executed": executed, "governed": governed}
