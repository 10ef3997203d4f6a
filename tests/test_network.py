"""`ledger network init` and the Besu QBFT profile it writes (deploy/besu-qbft/): the extraData
against the example in Besu's documentation, the genesis and TOML files against Besu's
documented keys, the compose file through a YAML parser, and the generated member node configs
started against the production-like chain (anvil fed the profile's own genesis, dev methods
refused), each node with its own keystore and password as compose would give it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest
import yaml

from ledger.keys import KEY_PASSWORD_ENV, load_keystore
from ledger.network.qbft import decode_validators, encode_extra_data

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "deploy" / "besu-qbft"
MEMBERS = ["platform", "bank-a", "bank-b", "bank-c", "auditor"]

# Besu documentation, "Configure QBFT consensus" (besu.hyperledger.org/private-networks/how-to/
# configure/consensus/qbft), block header validator selection: the example genesis's extraData
# and the four validators it encodes.
BESU_DOC_EXTRA_DATA = (
    "0xf87aa00000000000000000000000000000000000000000000000000000000000000000f8549464a702e626"
    "3b7297a96638cac6ae65e6541f4169943923390ad55e90c237593b3b0e401f3b08a0318594aefdb9a738c9f4"
    "33e5b6b212a6d62f6370c2f69294c7eeb9a4e00ce683cf93039b212648e01c6c6b78c080c0"
)
BESU_DOC_VALIDATORS = [
    "0x64a702e6263b7297a96638cac6ae65e6541f4169",
    "0x3923390ad55e90c237593b3b0e401f3b08a03185",
    "0xaefdb9a738c9f433e5b6b212a6d62f6370c2f692",
    "0xc7eeb9a4e00ce683cf93039b212648e01c6c6b78",
]

# Besu command line options (besu.hyperledger.org, Reference > Command line options; a TOML
# config file takes the option names without the leading dashes) this profile uses.
BESU_OPTIONS = {
    "genesis-file", "data-path", "node-private-key-file", "data-storage-format", "sync-mode",
    "p2p-host", "p2p-port", "bootnodes", "discovery-enabled", "rpc-http-enabled",
    "rpc-http-host", "rpc-http-port", "rpc-http-api", "host-allowlist", "min-gas-price",
    "permissions-nodes-config-file-enabled", "permissions-nodes-config-file",
    "permissions-accounts-config-file-enabled", "permissions-accounts-config-file",
    "metrics-enabled", "metrics-host",
}  # fmt: skip
# Besu genesis file items (Reference > Genesis file items) and QBFT's own
GENESIS_KEYS = {"config", "nonce", "timestamp", "extraData", "gasLimit", "difficulty", "mixHash",
                "coinbase", "alloc", "baseFeePerGas"}  # fmt: skip
CONFIG_KEYS = {
    "chainId", "homesteadBlock", "eip150Block", "eip155Block", "eip158Block", "byzantiumBlock",
    "constantinopleBlock", "petersburgBlock", "istanbulBlock", "muirGlacierBlock", "berlinBlock",
    "londonBlock", "shanghaiTime", "cancunTime", "zeroBaseFee", "qbft",
}  # fmt: skip
QBFT_KEYS = {"blockperiodseconds", "epochlength", "requesttimeoutseconds"}


def test_extra_data_matches_besus_documentation() -> None:
    assert encode_extra_data(BESU_DOC_VALIDATORS) == BESU_DOC_EXTRA_DATA
    assert [v.lower() for v in decode_validators(BESU_DOC_EXTRA_DATA)] == BESU_DOC_VALIDATORS


def test_extra_data_refuses_what_qbft_cannot_take() -> None:
    with pytest.raises(ValueError, match="at least one"):
        encode_extra_data([])
    with pytest.raises(ValueError, match="twice"):
        encode_extra_data([BESU_DOC_VALIDATORS[0]] * 2)


def ledger_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("net") / "besu-qbft"
    run = ledger_cli("network", "init", "--members", ",".join(MEMBERS), "--validators", "4",
                     "--out", str(out), "--chain-id", "2026", "--json")  # fmt: skip
    assert run.returncode == 0, run.stderr
    return out


@pytest.mark.parametrize("where", ["generated", "committed"])
def test_genesis_is_qbft_with_the_validators_cancun_and_zero_base_fee(
    where: str, profile: Path
) -> None:
    base = profile if where == "generated" else PROFILE
    genesis = json.loads((base / "genesis.json").read_text())
    network = json.loads((base / "network.json").read_text())
    assert set(genesis) <= GENESIS_KEYS and set(genesis["config"]) <= CONFIG_KEYS
    assert set(genesis["config"]["qbft"]) <= QBFT_KEYS
    assert genesis["config"]["chainId"] == network["chain_id"] != 31337
    assert genesis["config"]["cancunTime"] == 0 and genesis["config"]["shanghaiTime"] == 0
    assert genesis["config"]["zeroBaseFee"] is True and genesis["baseFeePerGas"] == "0x0"
    validators = [v["address"] for v in network["validators"]]
    assert len(validators) == 4
    assert decode_validators(genesis["extraData"]) == validators
    # every member account is funded (gas is free as well)
    assert {m["account"] for m in network["members"]} <= set(genesis["alloc"])


@pytest.mark.parametrize("where", ["generated", "committed"])
def test_besu_configs_use_documented_options_loopback_rpc_and_an_archive_auditor(
    where: str, profile: Path
) -> None:
    base = profile if where == "generated" else PROFILE
    network = json.loads((base / "network.json").read_text())
    allow = tomllib.loads((base / "permissions_config.toml").read_text())
    assert set(allow) == {"accounts-allowlist", "nodes-allowlist"}
    assert sorted(allow["accounts-allowlist"]) == sorted(m["account"] for m in network["members"])
    assert sorted(allow["nodes-allowlist"]) == sorted(m["enode"] for m in network["members"])
    for name in MEMBERS:
        cfg = tomllib.loads((base / "besu" / name / "config.toml").read_text())
        assert set(cfg) <= BESU_OPTIONS, set(cfg) - BESU_OPTIONS
        assert cfg["rpc-http-host"] == "127.0.0.1" and cfg["min-gas-price"] == 0
        assert cfg["permissions-nodes-config-file-enabled"] is True
        assert cfg["permissions-accounts-config-file-enabled"] is True
        # Besu: an archive node is FOREST storage with full sync (Bonsai keeps recent state)
        archive = (cfg["data-storage-format"], cfg["sync-mode"]) == ("FOREST", "FULL")
        assert archive == (name == "auditor")
        node = json.loads((base / "members" / name / "node.json").read_text())
        assert node["rpc_url"] == f"http://127.0.0.1:{cfg['rpc-http-port']}"  # its own Besu
        assert node["key"] == {"kind": "keystore", "path": "/secrets/account.json"}


@pytest.mark.parametrize("where", ["generated", "committed"])
def test_compose_starts_the_nodes_a_database_per_member_and_the_member_nodes(
    where: str, profile: Path
) -> None:
    base = profile if where == "generated" else PROFILE
    compose = yaml.safe_load((base / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in MEMBERS:
        besu, db, node = (services[f"{k}-{name}"] for k in ("besu", "postgres", "node"))
        assert besu["image"].startswith("hyperledger/besu:")
        assert db["image"].startswith("postgres:")
        assert node["network_mode"] == f"service:besu-{name}"  # loopback to its own Besu
        assert f"./secrets/{name}/node.env" in node["env_file"]
        # a member's node mounts its own secrets only
        mounted = [v.split(":")[0] for v in node["volumes"] if v.startswith("./secrets/")]
        assert mounted == [f"./secrets/{name}"]
    assert len(services) == 3 * len(MEMBERS)


def test_the_committed_profile_holds_no_secret() -> None:
    assert not (PROFILE / "secrets").exists()
    tracked = subprocess.run(
        ["git", "ls-files", "deploy/besu-qbft"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    assert tracked and not any("secrets" in p or p.endswith(".key") for p in tracked)


def test_bad_arguments_give_one_line(tmp_path: Path) -> None:
    for args, message in (
        (["--validators", "3"], "at least 4"),
        (["--members", "platform,bank-a"], "auditor"),
        (["--members", "platform,platform,auditor,bank-a"], "twice"),
    ):
        run = ledger_cli("network", "init", "--out", str(tmp_path / "x"), *args)
        assert run.returncode != 0 and message in run.stderr and "Traceback" not in run.stderr


def test_the_generated_member_nodes_start_against_the_production_like_chain(
    profile: Path, tmp_path: Path
) -> None:
    """The profile's genesis runs on the production-like chain (2 s blocks, dev methods refused);
    the consortium is deployed with the generated members' keystores; each generated member
    node config starts (only what a container's paths and ports change is rewritten) with its
    own keystore password from its node.env, and its member signs in to it."""
    from eth_account import Account

    from ledger.chain.deployment import DEV_DELAY
    from ledger.keys import DevConsortium
    from ledger.localnet.consortium import bootstrap
    from ledger.localnet.processes import free_port, kill_group
    from ledger.localnet.prodlike import ProductionLikeChain
    from ledger.nodeclient import NodeSession

    secrets = profile / "secrets"
    env = {n: dict(line.split("=", 1) for line in (secrets / n / "node.env").read_text().split())
           for n in MEMBERS}  # fmt: skip
    accounts = {}
    before = os.environ.get(KEY_PASSWORD_ENV)
    try:
        for n in MEMBERS:
            os.environ[KEY_PASSWORD_ENV] = env[n]["LEDGER_KEY_PASSWORD"]
            accounts[n] = load_keystore(secrets / n / "account.json")
    finally:
        os.environ.pop(KEY_PASSWORD_ENV)
        if before is not None:
            os.environ[KEY_PASSWORD_ENV] = before
    procs: dict[str, subprocess.Popen[bytes]] = {}
    with ProductionLikeChain(tmp_path / "chain", block_time=2.0, genesis=profile / "genesis.json"
                             ) as chain:  # fmt: skip
        assert chain.chain_id == 2026
        cx = bootstrap(
            chain.url,
            keys=DevConsortium(
                governor=Account.create(),  # a one-off deployer: it keeps no power
                platform=accounts["platform"],
                lenders=[accounts[n] for n in ("bank-a", "bank-b", "bank-c")],
                auditor=accounts["auditor"],
            ),
            delay=DEV_DELAY,
        )
        cx.deployment.save(tmp_path / "deployment.json")
        ports = {n: free_port() for n in MEMBERS}
        try:
            for n in MEMBERS:
                cfg = json.loads((profile / "members" / n / "node.json").read_text())
                cfg.update(
                    rpc_url=chain.url,
                    deployment_file=str(tmp_path / "deployment.json"),
                    database_url=f"sqlite:///{tmp_path / n}.db",
                    key={"kind": "keystore", "path": str(secrets / n / "account.json")},
                    port=ports[n],
                    document_key_dir=str(secrets / n / "document-keys"),
                    document_dir=str(tmp_path / n / "documents"),
                    peers={a: f"http://127.0.0.1:{ports[m]}" for m, a in
                           ((m, accounts[m].address) for m in ("bank-a", "bank-b", "bank-c"))}
                    if n == "platform" else {},
                    key_service={"url": "http://127.0.0.1:9"},
                )  # fmt: skip
                path = tmp_path / f"{n}.json"
                path.write_text(json.dumps(cfg))
                log = (tmp_path / f"{n}.log").open("wb")
                procs[n] = subprocess.Popen(
                    [sys.executable, "-m", "api", "--config", str(path)],
                    cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                    env={**{k: v for k, v in os.environ.items() if k != KEY_PASSWORD_ENV},
                         **env[n]},
                )  # fmt: skip
            for n in MEMBERS:
                url = f"http://127.0.0.1:{ports[n]}"
                deadline = time.monotonic() + 90
                while True:
                    assert procs[n].poll() is None, (tmp_path / f"{n}.log").read_text()[-3000:]
                    try:
                        if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert time.monotonic() < deadline, f"{n} not ready"
                    time.sleep(0.5)
                # signing in needs the member active on chain in the role its config names
                with NodeSession.signed_in(url, accounts[n]) as s:
                    if n.startswith("bank"):
                        r = s.get(f"/v1/lenders/{accounts[n].address}/limits")
                        assert r.status_code == 200, r.text
        finally:
            for p in procs.values():
                kill_group(p.pid, p, 10.0)
        assert chain.refused == []
