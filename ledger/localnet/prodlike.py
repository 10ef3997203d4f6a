"""The production-like local chain: what a consortium chain looks like from a member's node,
imitated with anvil (no multi-validator client installs here; DESIGN §7).

* interval mining (`--block-time`, 1 or 2 s), never a block per transaction;
* a chain id other than the dev chain's 31337;
* base fee and gas price 0 (Besu's `zeroBaseFee` with min gas price 0);
* accounts funded only in the genesis (`--init`: the genesis `ledger network init` writes for
  Besu QBFT, same generator), no dev accounts (`--accounts 0`);
* keys only from eth-account keystores (one per member, under `<dir>/keys/`), their password in
  `<dir>/keys/PASSWORD` (mode 0600: a local test chain's, never a real member's);
* a JSON-RPC filter in front (ledger.localnet.rpcfilter) refusing every anvil_*, hardhat_* and
  evm_* method, so code that leans on them fails here as on Besu.

`ProductionLikeChain` runs it inside this process (tests); `python -m ledger.localnet.prodlike
--state-dir DIR` runs it as a process of its own recorded in DIR/chain.json (`ledger up
--profile production-like`), so `ledger status|down` treat it as any detached chain.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.keys import KEY_PASSWORD_ENV, load_keystore, write_keystore
from ledger.localnet.chains import LocalChain
from ledger.localnet.rpcfilter import RpcFilter
from ledger.network.genesis import DEFAULT_GAS_LIMIT, qbft_genesis

# any id but the dev chain's; the Besu profile's default too
PRODUCTION_LIKE_CHAIN_ID = 1515
# The timelock's delay on this chain: short enough to wait out in a test, as nobody may move
# the clock here (production runs 48 hours).
PRODUCTION_LIKE_DELAY = 4
MEMBER_NAMES = (
    "governor", "platform", "bank-a", "bank-b", "bank-c", "auditor", "guarantor", "keyservice"
)  # fmt: skip
OPTIONAL = "guarantor"
PASSWORD_FILE = "PASSWORD"
PROFILE_FILE = "profile"  # in a state dir: which chain profile `ledger up` started
# scrypt at 2**14: a local chain's keys, decrypted at every node start; real keys use
# eth-keyfile's default (2**18)
LOCAL_WORK_FACTOR = 2**14


@dataclass(frozen=True)
class MemberKeys:
    """The members' keystores in one directory and the password that opens them."""

    directory: Path

    @property
    def password(self) -> str:
        """The PASSWORD file of a local chain's keys; real keys' from LEDGER_KEY_PASSWORD."""
        local = self.directory / PASSWORD_FILE
        if local.exists():
            return local.read_text().strip()
        if not os.environ.get(KEY_PASSWORD_ENV):
            raise OSError(f"{KEY_PASSWORD_ENV} is not set and {local} does not exist")
        return os.environ[KEY_PASSWORD_ENV]

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def export_password(self) -> None:
        """Put the password where load_keystore (and the nodes this process starts) read it."""
        os.environ[KEY_PASSWORD_ENV] = self.password

    def names(self) -> tuple[str, ...]:
        """The members with a keystore here: every one but the guarantor is required (a key
        directory made before `ledger up` ran a guarantor has none, and runs without one)."""
        return tuple(n for n in MEMBER_NAMES if n != OPTIONAL or self.path(n).exists())

    def accounts(self) -> dict[str, LocalAccount]:
        self.export_password()
        return {n: load_keystore(self.path(n)) for n in self.names()}

    def addresses(self) -> dict[str, str]:
        return {
            n: "0x" + json.loads(self.path(n).read_text())["address"].removeprefix("0x")
            for n in self.names()
        }

    @classmethod
    def create(cls, directory: Path) -> MemberKeys:
        """New random keys for every member (once; an existing directory is reused)."""
        keys = cls(directory)
        if (directory / PASSWORD_FILE).exists():
            return keys
        directory.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(24)
        for name in MEMBER_NAMES:
            account: LocalAccount = Account.create()
            write_keystore(account, keys.path(name), password, work_factor=LOCAL_WORK_FACTOR)
        from ledger.secretfile import atomic_write

        atomic_write(directory / PASSWORD_FILE, password.encode() + b"\n")
        (directory / PASSWORD_FILE).chmod(0o600)
        return keys


def write_genesis(
    path: Path, keys: MemberKeys, chain_id: int, block_time: float, gas_limit: int
) -> Path:
    """The consortium's genesis: the banks' and platform's addresses as the (nominal) QBFT
    validators, every member funded; starting now, so blocks carry today's time."""
    addr = keys.addresses()
    validators = [addr[n] for n in ("platform", "bank-a", "bank-b", "bank-c")]
    genesis = qbft_genesis(
        chain_id,
        validators,
        list(addr.values()),
        block_period_s=max(1, math.ceil(block_time)),
        gas_limit=gas_limit,
        timestamp=int(time.time()),
    )
    path.write_text(json.dumps(genesis, indent=2) + "\n")
    return path


class ProductionLikeChain:
    """Anvil as a consortium chain, behind the dev-method filter; owned by this process."""

    def __init__(
        self,
        workdir: Path,
        *,
        block_time: float = 1.0,
        chain_id: int = PRODUCTION_LIKE_CHAIN_ID,
        gas_limit: int = DEFAULT_GAS_LIMIT,
        report_chain_id: int | None = None,
        genesis: Path | None = None,
    ) -> None:
        """`genesis`: a genesis of its own (e.g. the Besu profile's from `ledger network init`)
        instead of one funding this chain's member keystores; its chain id and gas limit win."""
        self.workdir = Path(workdir).resolve()
        self._genesis = Path(genesis).resolve() if genesis is not None else None
        if self._genesis is not None:
            given = json.loads(self._genesis.read_text())
            chain_id = int(given["config"]["chainId"])
            gas_limit = int(given["gasLimit"], 16)
        self.block_time = block_time
        self.chain_id = chain_id
        self.gas_limit = gas_limit
        self.keys = MemberKeys(self.workdir / "keys")
        self._report_chain_id = report_chain_id
        self.chain: LocalChain | None = None
        self.filter: RpcFilter | None = None

    @property
    def url(self) -> str:
        """The filtered URL: the only one members' code is given."""
        if self.filter is None:
            raise RuntimeError("the production-like chain is not running")
        return self.filter.url

    @property
    def refused(self) -> list[str]:
        """Development methods something tried through the filter (should stay empty)."""
        return list(self.filter.refused) if self.filter else []

    def start(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._genesis is None:
            MemberKeys.create(self.keys.directory)
            genesis = write_genesis(
                self.workdir / "genesis.json",
                self.keys,
                self.chain_id,
                self.block_time,
                self.gas_limit,
            )
        else:
            # anvil counts block time on from the genesis': today's, not the file's
            given = json.loads(self._genesis.read_text())
            given["timestamp"] = hex(int(time.time()))
            genesis = self.workdir / "genesis.json"
            genesis.write_text(json.dumps(given, indent=2) + "\n")
        self.chain = LocalChain(
            "anvil",
            chain_id=self.chain_id,
            block_time=self.block_time,
            accounts=0,
            log_path=self.workdir / "chain.log",
            extra_args=(
                "--init", str(genesis),
                "--base-fee", "0",
                "--gas-price", "0",
                "--disable-min-priority-fee",
                "--gas-limit", str(self.gas_limit),
            ),
        ).start()  # fmt: skip
        self.filter = RpcFilter(self.chain.url, report_chain_id=self._report_chain_id).start()
        return self

    def stop(self) -> None:
        if self.filter is not None:
            self.filter.stop()
            self.filter = None
        if self.chain is not None:
            self.chain.stop()
            self.chain = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _serve(state_dir: Path, block_time: float) -> None:
    """Run the chain and its filter until SIGTERM, recorded in state_dir/chain.json."""
    from ledger.localnet.detached import ChainInfo, record_info
    from ledger.localnet.processes import start_ticks

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with ProductionLikeChain(state_dir / "chain", block_time=block_time) as chain:
        port = int(chain.url.rsplit(":", 1)[1])
        record_info(
            state_dir,
            ChainInfo(
                kind="anvil",
                pid=os.getpid(),
                pgid=os.getpgid(0),
                port=port,
                url=chain.url,
                chain_id=chain.chain_id,
                started_at=datetime.now(UTC).isoformat(timespec="seconds"),
                state_path=None,
                log_path=str(state_dir / "chain" / "chain.log"),
                start_ticks=start_ticks(os.getpid()),
            ),
        )
        (state_dir / PROFILE_FILE).write_text("production-like\n")
        stop.wait()


def up_production_like(state_dir: Path, block_time: float = 1.0, timeout: float = 60.0) -> str:
    """Start the production-like chain as a process of its own for `state_dir` (or find the one
    running); returns its filtered URL."""
    import subprocess
    import sys

    from ledger.localnet.chaincmd import ChainError
    from ledger.localnet.detached import status
    from ledger.localnet.processes import find_project_root, kill_group, log_tail, spawn

    state_dir = Path(state_dir).resolve()
    running = status(state_dir)
    profile = state_dir / PROFILE_FILE
    if running is not None:
        if profile.exists() and profile.read_text().strip() == "production-like":
            return running.url
        raise ChainError(
            f"a dev chain is already running for {state_dir}; stop it first (ledger down)"
        )
    profile.unlink(missing_ok=True)
    log_path = state_dir / "prodlike.log"
    argv = [sys.executable, "-m", "ledger.localnet.prodlike", "--state-dir", str(state_dir),
            "--block-time", f"{block_time:g}"]  # fmt: skip
    with log_path.open("ab") as log:
        offset = log.tell()
        proc: subprocess.Popen[bytes] = spawn(
            argv, cwd=find_project_root(), env=dict(os.environ), log=log, deathsig=None
        )
    deadline = time.monotonic() + timeout
    while (info := status(state_dir)) is None or not profile.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            kill_group(proc.pid, proc, 5.0)
            raise ChainError(
                "the production-like chain did not start\n" + log_tail(log_path, offset)
            )
        time.sleep(0.1)
    return info.url


def main() -> None:
    parser = argparse.ArgumentParser(description="the production-like local chain")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--block-time", type=float, default=1.0)
    args = parser.parse_args()
    _serve(args.state_dir.resolve(), args.block_time)


if __name__ == "__main__":
    main()
