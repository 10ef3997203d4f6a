"""`ledger gov`: the council, from one member's own key (propose, approve, execute, cancel,
status) and the emergency brake (pause). Nobody needs raw contract calls to govern."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.cli.common import (
    DEFAULT_STATE,
    CliError,
    DeploymentFile,
    JsonOpt,
    RpcUrl,
    StateDir,
    console,
    out,
    print_json,
    rpc_and_deployment,
)

gov_app = typer.Typer(
    no_args_is_help=True,
    help="The council: M-of-N approvals of the members behind a timelock.",
)

Keystore = Annotated[
    Path | None,
    typer.Option(help="This member's keystore (password from LEDGER_KEY_PASSWORD)."),
]
DevMember = Annotated[
    str | None,
    typer.Option(
        "--as", help="DEV-ONLY: act as this dev member (platform, bank-a, ...), local chain only."
    ),
]
ACTION_HELP = (
    "policy (with --set field=value ...), admit ADDRESS --role --name, suspend ADDRESS, "
    "reinstate ADDRESS, remove ADDRESS, freeze ADDRESS, unfreeze ADDRESS, unpause, "
    "transfer-servicing FROM --to TO (a suspended or removed platform's open loans and lines to "
    "an active platform)"
)


def _council(rpc_url, deployment_file, state_dir, keystore, dev_member):
    from ledger.chain.client import LedgerClient
    from ledger.governance import Council

    url, dep = rpc_and_deployment(rpc_url, deployment_file, state_dir)
    if keystore is not None:
        account = _load_keystore(keystore)
    elif dev_member is not None:
        from ledger.chain.transactor import DEV_CHAIN_ID
        from ledger.keys import DEV_KEYS_WARNING, dev_account
        from ledger.localnet import nodes

        if dep.chain_id != DEV_CHAIN_ID:
            raise CliError(f"dev keys are for the local dev chain (id {DEV_CHAIN_ID}) only")
        try:
            m = nodes.member(dev_member)
        except KeyError as exc:
            raise CliError(str(exc.args[0])) from None
        console.print(f"[yellow]{DEV_KEYS_WARNING}[/yellow]")
        account = dev_account(m.key_role, m.key_index)
    else:
        raise CliError("pass --keystore FILE (or, on the local dev chain, --as MEMBER)")
    try:
        return Council(LedgerClient(url, dep, account))
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _load_keystore(path: Path):
    from ledger.keys import load_keystore

    return load_keystore(path)


def _pid(text: str) -> bytes:
    from ledger.governance import parse_id

    try:
        return parse_id(text)
    except ValueError as exc:
        raise CliError(f"bad proposal id {text!r}: {exc}") from None


def _action_args(
    council,
    action: str,
    target: str | None,
    sets: list[str],
    role: str | None,
    name: str | None,
    to: str | None = None,
) -> tuple[str, tuple[Any, ...]]:
    from ledger.domain import ADMISSIBLE_ROLES

    if action == "policy":
        policy, _ = council.client.current_policy()
        changes: dict[str, int] = {}
        for item in sets:
            key, _, value = item.partition("=")
            fields = {f.name for f in dataclasses.fields(policy)} - {"effective_block"}
            if key not in fields or not value.strip().isdigit():
                raise CliError(f"--set {item!r}: one of {', '.join(sorted(fields))}=INTEGER")
            changes[key] = int(value)
        if not changes:
            raise CliError("policy: give at least one --set field=value")
        return "policy", (dataclasses.replace(policy, **changes),)
    if action == "unpause":
        return "unpause", ()
    if target is None:
        raise CliError(f"{action}: give the member's ADDRESS")
    if action == "admit":
        if role not in ADMISSIBLE_ROLES or not name:
            raise CliError(
                f"admit: --role {'|'.join(ADMISSIBLE_ROLES)} and --name NAME are required"
            )
        return "admit", (target, ADMISSIBLE_ROLES[role], name)
    if action in ("freeze", "unfreeze"):
        return "freeze", (target, action == "freeze")
    if action == "transfer-servicing":
        if not to:
            raise CliError("transfer-servicing: give the successor platform with --to ADDRESS")
        return action, (_address(target), _address(to))
    if action in ("suspend", "reinstate", "remove"):
        return action, (target,)
    raise CliError(f"unknown action {action!r}: {ACTION_HELP}")


def _address(text: str) -> str:
    from eth_utils import is_address, to_checksum_address

    if not is_address(text):
        raise CliError(f"{text!r} is not a 0x address")
    return to_checksum_address(text)


def _show(st, as_json: bool) -> None:
    if as_json:
        print_json(st.to_json())
        return
    out.print(
        f"proposal {st.id}\nstate     {st.state.name.lower()}\n"
        f"approvals {st.approvals} of {st.threshold} needed ({', '.join(st.approvers)})\n"
        f"proposer  {st.proposer}\ntarget    {st.target}"
        + (f"\nready at  {st.ready_at}" if st.ready_at else ""),
        highlight=False,
    )


def _guard(fn, *args):
    from ledger.chain.errors import ContractRevert
    from ledger.governance import PolicyOutOfBounds

    try:
        return fn(*args)
    except (ContractRevert, PolicyOutOfBounds) as exc:
        raise CliError(f"refused: {exc}") from None


@gov_app.command("propose")
def propose_cmd(
    action: Annotated[str, typer.Argument(help=ACTION_HELP)],
    target: Annotated[str | None, typer.Argument(help="the member's address")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="policy field=value (fen, bps, days)")
    ] = None,
    role: Annotated[str | None, typer.Option(help="admit: platform, lender or auditor")] = None,
    name: Annotated[str | None, typer.Option(help="admit: display name")] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="transfer-servicing: the successor platform")
    ] = None,
    keystore: Keystore = None,
    dev_member: DevMember = None,
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    state_dir: StateDir = DEFAULT_STATE,
    as_json: JsonOpt = False,
) -> None:
    """Propose a governed change; your own approval counts at once."""
    council = _council(rpc_url, deployment_file, state_dir, keystore, dev_member)
    act, args = _action_args(council, action, target, set_ or [], role, name, to)
    pid, _ = _guard(council.propose, act, *args)
    _show(council.status(pid), as_json)


ProposalArg = Annotated[str, typer.Argument(help="proposal id (0x...)")]


def _proposal_command(verb: str, doc: str) -> None:
    """`ledger gov VERB PROPOSAL`: the member's own council call, then the proposal's status."""

    def command(
        proposal: ProposalArg,
        keystore: Keystore = None,
        dev_member: DevMember = None,
        rpc_url: RpcUrl = None,
        deployment_file: DeploymentFile = None,
        state_dir: StateDir = DEFAULT_STATE,
        as_json: JsonOpt = False,
    ) -> None:
        council = _council(rpc_url, deployment_file, state_dir, keystore, dev_member)
        _guard(getattr(council, verb), _pid(proposal))
        _show(council.status(_pid(proposal)), as_json)

    command.__doc__ = doc
    command.__name__ = f"{verb}_cmd"
    gov_app.command(verb)(command)


_proposal_command(
    "approve", "Approve a pending proposal; it is scheduled on the timelock once a majority has."
)
_proposal_command("execute", "Execute a scheduled proposal once the timelock's delay has passed.")
_proposal_command("cancel", "Withdraw your own proposal while it is pending.")


@gov_app.command("status")
def status_cmd(
    proposal: ProposalArg,
    keystore: Keystore = None,
    dev_member: DevMember = None,
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    state_dir: StateDir = DEFAULT_STATE,
    as_json: JsonOpt = False,
) -> None:
    """A proposal's state, approvals counting now, threshold and earliest execution time."""
    from ledger.chain.client import LedgerClient
    from ledger.governance import Council

    if keystore is None and dev_member is None:
        url, dep = rpc_and_deployment(rpc_url, deployment_file, state_dir)
        council = Council(LedgerClient(url, dep))  # reads need no key
    else:
        council = _council(rpc_url, deployment_file, state_dir, keystore, dev_member)
    _show(council.status(_pid(proposal)), as_json)


@gov_app.command("pause")
def pause_cmd(
    keystore: Keystore = None,
    dev_member: DevMember = None,
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    state_dir: StateDir = DEFAULT_STATE,
) -> None:
    """The emergency brake: any one active member pauses every ledger write at once."""
    council = _council(rpc_url, deployment_file, state_dir, keystore, dev_member)
    _guard(council.client.pause)
    out.print("paused; only the council unpauses (ledger gov propose unpause)")


def register(app: typer.Typer) -> None:
    app.add_typer(gov_app, name="gov")
