"""ledger.localnet.chains against the real anvil and the real Hardhat node.

Every test starts its own chain on a free port. Liveness is judged from /proc, independently of
the module under test, and zombies count as dead: an orphaned chain is reparented to an init
that may reap it late.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.localnet import chains as node
from ledger.localnet import processes
from ledger.localnet.chains import ChainError, LocalChain
from ledger.localnet.detached import ChainInfo, down, status, up_detached

if not sys.platform.startswith("linux"):
    pytest.skip("process checks read /proc", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
DEV0 = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"  # first account of the default mnemonic
DEV1 = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
ONE_ETH = 10**18

# A 18-byte contract: stores calldata word 0 in slot 0 and emits LOG1(topic 7, data = word).
#   CALLDATALOAD(0) DUP1 SSTORE(0,v) MSTORE(0,v) LOG1(0,32,7) STOP
RUNTIME = "600035" + "80" + "600055" + "600052" + "6007" + "6020" + "6000" + "a1" + "00"
#   CODECOPY(0, 12, 18) RETURN(0, 18)
INIT = "6012" + "600c" + "6000" + "39" + "6012" + "6000" + "f3" + RUNTIME
TOPIC = "0x" + "07".rjust(64, "0")


# -------------------------------------------------------------------------------------------
# helpers, deliberately independent of ledger.localnet.chains


def rpc(url: str, method: str, *params: Any) -> Any:
    with httpx.Client(trust_env=False, timeout=10) as client:
        body = client.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                      "params": list(params)}).json()  # fmt: skip
    assert "error" not in body, body
    return body["result"]


def send(url: str, tx: dict[str, str]) -> dict[str, Any]:
    receipt: dict[str, Any] = rpc(
        url, "eth_getTransactionReceipt", rpc(url, "eth_sendTransaction", tx)
    )
    assert receipt["status"] == "0x1", receipt
    return receipt


def stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def alive(pid: int) -> bool:
    st = stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def live_pids() -> Iterator[int]:
    for entry in os.listdir("/proc"):
        if entry.isdigit() and alive(int(entry)):
            yield int(entry)


def chain_pids(port: int) -> list[int]:
    """Live processes whose command line carries `--port <port>` (anvil and hardhat both do)."""
    needle = f"\0--port\0{port}\0".encode()
    found = []
    for pid in live_pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if needle in b"\0" + cmdline:
            found.append(pid)
    return found


def live_children() -> list[int]:
    me = str(os.getpid())
    return [pid for pid in live_pids() if (st := stat(pid)) is not None and st[1] == me]


def listen_addrs(pid: int) -> set[tuple[str, int]]:
    """(ip, port) of every listening TCP socket the process holds."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    addrs = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] != "0A" or f[9] not in inodes:
                continue
            hexip, hexport = f[1].split(":")
            raw = bytes.fromhex(hexip)
            assert len(raw) * 2 == width
            # /proc prints addresses as host-order 32-bit words.
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            family = socket.AF_INET if width == 8 else socket.AF_INET6
            addrs.add((socket.inet_ntop(family, words), int(hexport, 16)))
    return addrs


def wait_until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def assert_gone(pid: int, port: int, timeout: float = 15.0) -> None:
    wait_until(lambda: not alive(pid) and not chain_pids(port), timeout, f"chain {pid} to exit")


@pytest.fixture(autouse=True)
def no_children_left() -> Iterator[None]:
    # Only children born during the test: session-scoped chains of conftest.py are ours too.
    before = set(live_children())
    yield
    left = set(live_children()) - before
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"test left child processes behind: {sorted(left)}"


# -------------------------------------------------------------------------------------------
# owned chains


@pytest.mark.parametrize(("kind", "chain_id"), [("anvil", 1337), ("hardhat", 31338)])
def test_starts_answers_on_loopback_only_and_stops(kind: node.ChainKind, chain_id: int) -> None:
    chain = LocalChain(kind, chain_id=chain_id)
    t0 = time.monotonic()
    with chain:
        print(f"{kind} ready in {time.monotonic() - t0:.2f}s")
        pid, port = chain.pid, chain.port
        assert chain.url == f"http://127.0.0.1:{port}"
        assert int(rpc(chain.url, "eth_chainId"), 16) == chain_id == chain.chain_id
        assert len(rpc(chain.url, "eth_accounts")) == 10
        # Own process group (the group kill relies on it) and nothing but loopback listeners.
        st = stat(pid)
        assert st is not None and int(st[2]) == pid
        addrs = listen_addrs(pid)
        assert ("127.0.0.1", port) in addrs
        assert {ip for ip, _ in addrs} == {"127.0.0.1"}, addrs
    assert not chain.running
    assert_gone(pid, port, timeout=2)
    chain.stop()  # idempotent
    with socket.create_server(("127.0.0.1", port)):
        pass  # the port was released


def test_anvil_restart_keeps_blocks_balances_nonces_storage_and_logs(tmp_path: Path) -> None:
    state = tmp_path / "nested" / "anvil.json"
    with LocalChain("anvil", state_path=state) as chain:
        url = chain.url
        deployed = send(url, {"from": DEV0, "data": "0x" + INIT})
        contract = deployed["contractAddress"]
        stored = send(url, {"from": DEV0, "to": contract, "data": "0x" + "2a".rjust(64, "0")})
        send(url, {"from": DEV0, "to": DEV1, "value": hex(ONE_ETH)})
        rpc(url, "anvil_setBalance", "0x" + "ab" * 20, hex(12345))

        def snapshot() -> dict[str, Any]:
            return {
                "block": rpc(url, "eth_blockNumber"),
                "head": rpc(url, "eth_getBlockByNumber", "latest", False)["hash"],
                "nonce": rpc(url, "eth_getTransactionCount", DEV0, "latest"),
                "dev1": rpc(url, "eth_getBalance", DEV1, "latest"),
                "set": rpc(url, "eth_getBalance", "0x" + "ab" * 20, "latest"),
                "code": rpc(url, "eth_getCode", contract, "latest"),
                "slot0": rpc(url, "eth_getStorageAt", contract, "0x0", "latest"),
                "logs": rpc(url, "eth_getLogs", {"fromBlock": "0x0", "address": contract}),
                "receipt": rpc(url, "eth_getTransactionReceipt", stored["transactionHash"]),
                # state at a past block, not only at the head
                "dev1_at_1": rpc(url, "eth_getBalance", DEV1, "0x1"),
            }

        before = snapshot()
        assert before["block"] == "0x3" and before["nonce"] == "0x3"
        assert before["slot0"] == "0x" + "2a".rjust(64, "0")
        assert [log["topics"] for log in before["logs"]] == [[TOPIC]]
        old_pid, port = chain.pid, chain.port

        t0 = time.monotonic()
        chain.restart()
        print(f"anvil restart in {time.monotonic() - t0:.2f}s")

        assert state.is_file()
        assert chain.port == port and chain.pid != old_pid and not alive(old_pid)
        assert snapshot() == before
        # and the chain goes on from there: the next nonce, the next block
        send(url, {"from": DEV0, "to": DEV1, "value": "0x1"})
        assert rpc(url, "eth_blockNumber") == "0x4"
        assert rpc(url, "eth_getTransactionCount", DEV0, "latest") == "0x4"
        pid = chain.pid
    assert_gone(pid, port, timeout=2)


def test_restart_without_persistable_state_is_refused() -> None:
    with pytest.raises(NotImplementedError, match="Hardhat node"):
        LocalChain("hardhat").restart()
    with pytest.raises(ChainError, match="state_path"):
        LocalChain("anvil").restart()
    with pytest.raises(ValueError, match="state_path"):
        LocalChain("hardhat", state_path=Path("x.json"))


@pytest.mark.parametrize("kind", ["anvil", "hardhat"])
def test_exception_inside_with_leaves_nothing(kind: node.ChainKind) -> None:
    seen: dict[str, int] = {}
    with pytest.raises(ZeroDivisionError), LocalChain(kind) as chain:
        seen.update(pid=chain.pid, port=chain.port)
        1 / 0  # noqa: B018
    assert_gone(seen["pid"], seen["port"], timeout=2)


CHILD = textwrap.dedent(
    """
    import json, sys, time
    from ledger.localnet import chains as node, processes
    kind, mode, guard = sys.argv[1:4]
    if guard == "python-only":
        # Take the kernel's parent-death signal away, so only Python's own cleanup can pass.
        processes._deathsig_preexec = lambda sig: None
    chain = node.LocalChain(kind)
    if mode == "with":
        with chain:
            print(json.dumps({"pid": chain.pid, "port": chain.port}), flush=True)
            time.sleep(120)
    else:
        chain.start()
        print(json.dumps({"pid": chain.pid, "port": chain.port}), flush=True)
        if mode == "bare":
            time.sleep(120)
        # mode "exit": fall off the end, atexit has to stop the chain
    """
)


@pytest.mark.parametrize(
    ("kind", "mode", "sig", "guard"),
    [
        ("anvil", "bare", signal.SIGINT, "python-only"),  # KeyboardInterrupt, then atexit
        ("anvil", "with", signal.SIGINT, "python-only"),  # KeyboardInterrupt in __exit__
        ("anvil", "exit", None, "python-only"),  # normal interpreter exit, atexit
        ("anvil", "bare", signal.SIGKILL, "all"),  # no Python cleanup: parent-death signal
        ("hardhat", "bare", signal.SIGKILL, "all"),
    ],
)
def test_parent_interrupted_or_killed_leaves_no_chain(
    kind: str, mode: str, sig: signal.Signals | None, guard: str
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, kind, mode, guard],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.communicate(timeout=30)[1]
        info = json.loads(line)
        if sig is not None:
            assert alive(info["pid"])
            proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    try:
        assert_gone(info["pid"], info["port"])
    finally:
        for pid in chain_pids(info["port"]):  # don't let a failure leak a chain
            os.kill(pid, signal.SIGKILL)


def test_anvil_dumps_its_state_when_the_parent_is_killed(tmp_path: Path) -> None:
    # The parent-death signal is SIGTERM, not SIGKILL, so anvil still writes --state on its way
    # out and nothing is lost when the owning Python process is killed outright.
    state = tmp_path / "state.json"
    script = textwrap.dedent(
        f"""
        import json, sys, time
        from pathlib import Path
        from ledger.localnet.chains import LocalChain, rpc_call
        chain = LocalChain("anvil", state_path=Path(sys.argv[1])).start()
        tx = rpc_call(chain.url, "eth_sendTransaction", [{{"from": "{DEV0}", "to": "{DEV1}"}}])
        # anvil's automine can stall on a loaded machine (foundry#10122): the state file only
        # holds block 1 once it is mined, so make sure it is before the parent is killed.
        nudge = time.monotonic() + 2
        while rpc_call(chain.url, "eth_getTransactionReceipt", [tx]) is None:
            if time.monotonic() > nudge:
                rpc_call(chain.url, "evm_mine", [])
                nudge = time.monotonic() + 2
            time.sleep(0.05)
        print(json.dumps({{"pid": chain.pid, "port": chain.port}}), flush=True)
        time.sleep(120)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(state)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        text=True,
    )
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    proc.kill()
    proc.wait(timeout=30)
    proc.stdout.close()
    assert_gone(info["pid"], info["port"])
    assert int(json.loads(state.read_text())["block"]["number"], 16) >= 1
    with LocalChain("anvil", state_path=state) as chain:
        assert rpc(chain.url, "eth_getTransactionCount", DEV0, "latest") == "0x1"


def test_chain_started_on_a_worker_thread_outlives_the_thread() -> None:
    # PR_SET_DEATHSIG fires on exit of the forking *thread*; the module must not let that kill
    # a chain started from a short-lived worker.
    box: dict[str, LocalChain] = {}
    worker = threading.Thread(target=lambda: box.setdefault("chain", LocalChain().start()))
    worker.start()
    worker.join()
    chain = box["chain"]
    try:
        time.sleep(0.3)
        assert alive(chain.pid)
        assert rpc(chain.url, "eth_chainId") == hex(31337)
    finally:
        pid, port = chain.pid, chain.port
        chain.stop()
    assert_gone(pid, port, timeout=2)


# -------------------------------------------------------------------------------------------
# failures


@pytest.mark.parametrize("kind", ["anvil", "hardhat"])
def test_port_in_use_fails_clearly_and_leaves_nothing(kind: node.ChainKind) -> None:
    # A listener that accepts connections but never answers: the node must fail to bind, and
    # the probe must not hang on the squatter.
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        port = squatter.getsockname()[1]
        chain = LocalChain(kind, port=port, startup_timeout=30)
        with pytest.raises(ChainError, match=r"(?s)exited with code.*(already in use|EADDRINUSE)"):
            chain.start()
        assert not chain.running
        assert chain_pids(port) == []


def test_port_held_by_another_chain_is_not_mistaken_for_ours() -> None:
    # The other chain answers eth_chainId with the right id; only ours failing to bind tells.
    with LocalChain("anvil") as other:
        chain = LocalChain("anvil", port=other.port)
        with pytest.raises(ChainError, match="already in use"):
            chain.start()
        assert not chain.running
        assert chain_pids(other.port) == [other.pid]


def test_corrupt_anvil_state_fails_with_the_log_tail(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text("not json")
    with pytest.raises(ChainError, match="failed to parse json"):
        LocalChain("anvil", state_path=state).start()


def test_missing_binaries_point_to_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hardhat.config.js").write_text("module.exports = {};\n")
    monkeypatch.setenv("LEDGER_ROOT", str(tmp_path))
    kinds: tuple[node.ChainKind, ...] = ("anvil", "hardhat")
    for kind in kinds:
        with pytest.raises(ChainError, match=r"scripts/setup\.sh"):
            LocalChain(kind).start()
    monkeypatch.setenv("LEDGER_ROOT", str(tmp_path / "nowhere"))
    with pytest.raises(processes.ProcessError, match="LEDGER_ROOT"):
        LocalChain().start()


# -------------------------------------------------------------------------------------------
# detached chains


def test_detached_anvil_round_trip_keeps_state(tmp_path: Path) -> None:
    sd = tmp_path / "chain"
    assert status(sd) is None and down(sd) is False

    # Started by a process that exits right away: the chain must outlive it.
    script = "import sys; from pathlib import Path; "
    script += "from ledger.localnet.detached import up_detached; "
    script += "print(up_detached('anvil', state_dir=Path(sys.argv[1])).to_json())"
    out = subprocess.run(
        [sys.executable, "-c", script, str(sd)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    info = ChainInfo.from_json(out)
    assert info.kind == "anvil" and info.pid == info.pgid and info.chain_id == 31337
    assert ChainInfo.from_json((sd / "chain.json").read_text()) == info
    assert info.state_path == str(sd / "anvil-state.json")
    assert alive(info.pid)
    assert {ip for ip, _ in listen_addrs(info.pid)} == {"127.0.0.1"}

    try:
        assert status(sd) == info
        assert up_detached("anvil", state_dir=sd) == info  # idempotent
        assert up_detached("anvil", info.port, state_dir=sd) == info
        with pytest.raises(ChainError, match="already running"):
            up_detached("hardhat", state_dir=sd)
        send(info.url, {"from": DEV0, "to": DEV1, "value": hex(ONE_ETH)})
        assert rpc(info.url, "eth_blockNumber") == "0x1"
    finally:
        assert down(sd) is True
    assert_gone(info.pid, info.port)
    assert not (sd / "chain.json").exists()
    assert status(sd) is None and down(sd) is False

    again = up_detached("anvil", state_dir=sd)
    try:
        assert again.pid != info.pid
        assert again.port == info.port  # same URL as before, like the same state
        assert status(sd) == again
        assert rpc(again.url, "eth_blockNumber") == "0x1"
        assert rpc(again.url, "eth_getTransactionCount", DEV0, "latest") == "0x1"
    finally:
        assert down(sd) is True
    assert_gone(again.pid, again.port)


def test_detached_hardhat_round_trip(tmp_path: Path) -> None:
    info = up_detached("hardhat", state_dir=tmp_path, chain_id=31339)
    try:
        assert info.kind == "hardhat" and info.state_path is None
        assert status(tmp_path) == info
        assert up_detached("hardhat", state_dir=tmp_path, chain_id=31339) == info
        assert rpc(info.url, "eth_chainId") == hex(31339)
    finally:
        assert down(tmp_path) is True
    assert_gone(info.pid, info.port)
    assert status(tmp_path) is None


def test_status_cleans_a_stale_record(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = ChainInfo(
        kind="anvil",
        pid=dead.pid,
        pgid=dead.pid,
        port=1,
        url="http://127.0.0.1:1",
        chain_id=31337,
        started_at="2020-01-01T00:00:00+00:00",
        state_path=None,
        log_path=str(tmp_path / "chain.log"),
    )
    (tmp_path / "chain.json").write_text(stale.to_json())
    assert status(tmp_path) is None
    assert not (tmp_path / "chain.json").exists()
    (tmp_path / "chain.json").write_text("{garbage")
    assert down(tmp_path) is False
    assert not (tmp_path / "chain.json").exists()
