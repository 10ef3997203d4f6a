"""How a local chain process is launched: the error type, the anvil and Hardhat binaries under
node_modules, their command lines and environment. ledger.localnet.chains runs them (a chain
owned by this process), ledger.localnet.detached records one that outlives the CLI.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ledger.localnet.processes import HOST, SETUP_HINT, ProcessError

ChainKind = Literal["anvil", "hardhat"]

# Both kinds derive their dev accounts from this mnemonic by default; passing it explicitly keeps
# the two kinds interchangeable even if one of them changes its default.
DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"
# contracts/compiler.json targets cancun and hardhat.config.js runs the Hardhat network on cancun;
# anvil's default is "latest", so without this the two kinds would execute different EVMs.
DEFAULT_HARDFORK = "cancun"


class ChainError(ProcessError):
    """A chain could not be started, probed or stopped."""


def _anvil_binary(root: Path) -> Path:
    # node_modules/.bin/anvil is a Node wrapper that spawns the native binary as a grandchild.
    # The parent-death signal would only reach the wrapper, so prefer the native binary from the
    # platform package and keep the wrapper (which forwards SIGTERM/SIGINT) as a fallback.
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), ""
    )
    name = "anvil.exe" if sys.platform == "win32" else "anvil"
    native = root / "node_modules" / "@foundry-rs" / f"anvil-{sys.platform}-{arch}" / "bin" / name
    for candidate in (native, root / "node_modules" / ".bin" / "anvil"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ChainError(f"anvil is not installed under {root / 'node_modules'}; {SETUP_HINT}")


def _hardhat_binary(root: Path) -> Path:
    candidate = root / "node_modules" / ".bin" / "hardhat"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    raise ChainError(f"hardhat is not installed under {root / 'node_modules'}; {SETUP_HINT}")


@dataclass(frozen=True)
class ChainOptions:
    """The chain to run: id, dev accounts and their balance, EVM version, mining."""

    chain_id: int
    accounts: int = 10
    balance_eth: int = 10_000
    mnemonic: str = DEFAULT_MNEMONIC
    hardfork: str = DEFAULT_HARDFORK
    block_time: float | None = None  # None: a block per transaction (automine)
    extra_args: tuple[str, ...] = ()  # anvil only


def chain_argv(
    kind: ChainKind,
    root: Path,
    port: int,
    opts: ChainOptions,
    *,
    state_path: Path | None,
    workdir: Path,
) -> list[str]:
    """The command line of a `kind` chain on `port`. Anvil keeps its state in `state_path` (if
    given); a Hardhat node gets a config file of its own in `workdir`."""
    if kind == "anvil":
        return _anvil_argv(root, port, opts, state_path)
    config = workdir / "hardhat.config.js"
    config.write_text(_hardhat_config(root, opts))
    return _hardhat_argv(root, port, config)


def _anvil_argv(root: Path, port: int, opts: ChainOptions, state_path: Path | None) -> list[str]:
    argv = [
        str(_anvil_binary(root)),
        "--host", HOST,
        "--port", str(port),
        "--chain-id", str(opts.chain_id),
        "--accounts", str(opts.accounts),
        "--balance", str(opts.balance_eth),
        "--mnemonic", opts.mnemonic,
        "--hardfork", opts.hardfork,
        "--color", "never",
    ]  # fmt: skip
    if opts.block_time is not None:
        argv += ["--block-time", f"{opts.block_time:g}"]
    argv += list(opts.extra_args)
    if state_path is not None:
        # --state = --load-state + --dump-state: loads the file if present, dumps on SIGTERM or
        # SIGINT. --preserve-historical-states also keeps per-block states so eth_call and
        # eth_getBalance at past blocks still work after a restart.
        argv += ["--state", str(state_path), "--preserve-historical-states"]
    return argv


def _hardhat_config(root: Path, opts: ChainOptions) -> str:
    # `hardhat node` has no flags for chain id, accounts or mining; a config that extends the
    # project's one keeps its solc set-up and paths and overrides only the network.
    if opts.block_time is None:
        mining: dict[str, Any] = {"auto": True, "interval": 0}
    else:
        mining = {"auto": False, "interval": max(1, round(opts.block_time * 1000))}
    network = {
        "chainId": opts.chain_id,
        "hardfork": opts.hardfork,
        "accounts": {
            "mnemonic": opts.mnemonic,
            "count": opts.accounts,
            "accountsBalance": str(opts.balance_eth * 10**18),
        },
        "mining": mining,
    }
    base = json.dumps(str(root / "hardhat.config.js"))
    return (
        "// Generated by ledger.localnet.chaincmd; extends the project's config for one node run.\n"
        f"const base = require({base});\n"
        "const networks = base.networks || {};\n"
        "module.exports = {\n"
        "  ...base,\n"
        f"  paths: {{ ...(base.paths || {{}}), root: {json.dumps(str(root))} }},\n"
        "  networks: {\n"
        "    ...networks,\n"
        f"    hardhat: {{ ...(networks.hardhat || {{}}), ...{json.dumps(network)} }},\n"
        "  },\n"
        "};\n"
    )


def _hardhat_argv(root: Path, port: int, config_path: Path) -> list[str]:
    return [
        str(_hardhat_binary(root)),
        "--config", str(config_path),
        "node",
        # Without --hostname, Hardhat 2 listens on 0.0.0.0.
        "--hostname", HOST,
        "--port", str(port),
    ]  # fmt: skip


def child_env(kind: ChainKind) -> dict[str, str]:
    env = dict(os.environ)
    env["NO_COLOR"] = "1"
    if kind == "hardhat":
        env["FORCE_COLOR"] = "0"
        env["HARDHAT_DISABLE_TELEMETRY_PROMPT"] = "true"
    return env
