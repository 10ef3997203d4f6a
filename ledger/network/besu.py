"""`ledger network init`: a Hyperledger Besu QBFT network for the consortium, on paper.

For members `platform,bank-a,bank-b,bank-c,auditor` and `--validators 4` it writes:

* `genesis.json`: QBFT, the first four members' validators in `extraData`, Cancun at block 0,
  zero base fee, the chosen chain id, every member account funded (gas is free anyway);
* `besu/<member>/config.toml` per member's Besu node: the validators sign blocks, the others
  (the auditor) follow; RPC on loopback only; node and account allowlists
  (`permissions_config.toml`); the auditor's node keeps every state (FOREST storage, full
  sync: an archive node, so `ledger audit --block N` and `eth_getProof` work for any block);
* `members/<member>/node.json` (and `keyservice/keyservice.json`): each member's ledger node,
  talking to its own Besu node on loopback and to its own PostgreSQL;
* `docker-compose.yml`: the Besu nodes, one PostgreSQL per member, the member nodes;
* `secrets/` (never committed, mode 0600): each Besu node key, each member's account keystore
  with a random password (`node.env`), its document key and its database password. Only
  public material (addresses, enode public keys) leaves `secrets/`: a bank reviewer expects no
  private key in a repository, dev or not.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_keys import keys as eth_keys

from ledger.keyring import DocumentKey, write_key_file
from ledger.keys import write_keystore
from ledger.network.genesis import qbft_genesis

BESU_IMAGE = "hyperledger/besu:25.11.0"
POSTGRES_IMAGE = "postgres:17"
P2P_PORT = 30303
RPC_PORT = 8545
NODE_PORT = 8100
ROLES = {"platform": "platform", "auditor": "auditor"}  # anything else is a lender (a bank)


# the member node's image, built from the repository (compose: build context ../..)
DOCKERFILE = """\
FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ledger ledger
COPY api api
COPY keyservice keyservice
RUN pip install --no-cache-dir .
USER 10001
"""


@dataclass(frozen=True)
class Member:
    name: str
    role: str  # platform, lender, auditor
    validator: bool
    node_public_key: str  # 64 bytes hex, no 0x: the enode id
    node_address: str  # the validator address (from the node key)
    account: str  # the member's account (signs records)

    @property
    def host(self) -> str:
        return f"besu-{self.name}"

    @property
    def enode(self) -> str:
        return f"enode://{self.node_public_key}@{self.host}:{P2P_PORT}"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string: JSON's escapes are TOML's


def toml(entries: dict[str, Any], comment: str = "") -> str:
    head = "".join(f"# {line}\n" for line in comment.splitlines())
    return head + "".join(f"{k}={_toml_value(v)}\n" for k, v in entries.items())


def besu_config(member: Member, bootnodes: Sequence[str]) -> dict[str, Any]:
    """One Besu node's TOML options (each a documented Besu command line option)."""
    archive = member.role == "auditor"
    return {
        "genesis-file": "/config/genesis.json",
        "data-path": "/data",
        "node-private-key-file": "/secrets/key",
        # Bonsai (the default) keeps recent state only; the auditor's node is an archive
        "data-storage-format": "FOREST" if archive else "BONSAI",
        "sync-mode": "FULL",
        "p2p-host": "0.0.0.0",
        "p2p-port": P2P_PORT,
        "bootnodes": list(bootnodes),
        "discovery-enabled": False,
        # the member's node shares this container's network namespace: loopback only
        "rpc-http-enabled": True,
        "rpc-http-host": "127.0.0.1",
        "rpc-http-port": RPC_PORT,
        "rpc-http-api": ["ETH", "NET", "WEB3", "QBFT"],
        "host-allowlist": ["localhost", "127.0.0.1"],
        "min-gas-price": 0,
        "permissions-nodes-config-file-enabled": True,
        "permissions-nodes-config-file": "/config/permissions_config.toml",
        "permissions-accounts-config-file-enabled": True,
        "permissions-accounts-config-file": "/config/permissions_config.toml",
        "metrics-enabled": True,
        "metrics-host": "127.0.0.1",
    }


def node_config(member: Member, members: Sequence[Member]) -> dict[str, Any]:
    """The member's ledger node (api.settings.NodeSettings) on its own Besu node."""
    lenders = [m for m in members if m.role == "lender"]
    return {
        "name": member.name,
        "role": member.role,
        "rpc_url": f"http://127.0.0.1:{RPC_PORT}",
        "deployment_file": "/config/deployment.json",
        "database_url": f"postgresql+psycopg://ledger@postgres-{member.name}:5432/ledger",
        "key": {"kind": "keystore", "path": "/secrets/account.json"},
        "host": "127.0.0.1",
        "port": NODE_PORT,
        # peers are reached through each bank's TLS endpoint (its reverse proxy)
        "peers": {m.account: f"https://{m.name}.consortium.example" for m in lenders}
        if member.role == "platform"
        else {},
        "key_service": {"url": "https://keyservice.consortium.example"},
        "document_key_dir": "/secrets/document-keys",
        "document_dir": "/data/documents",
        # the auditor reads through its archive node; everyone else indexes as usual
        "read_model": "indexed",
    }


def _compose(members: Sequence[Member]) -> dict[str, Any]:
    services: dict[str, Any] = {}
    volumes: dict[str, Any] = {}
    for m in members:
        services[m.host] = {
            "image": BESU_IMAGE,
            "command": ["--config-file=/config/config.toml"],
            "volumes": [
                "./genesis.json:/config/genesis.json:ro",
                f"./besu/{m.name}/config.toml:/config/config.toml:ro",
                "./permissions_config.toml:/config/permissions_config.toml:ro",
                f"./secrets/{m.name}/key:/secrets/key:ro",
                f"besu-{m.name}-data:/data",
            ],
            "restart": "unless-stopped",
        }
        services[f"postgres-{m.name}"] = {
            "image": POSTGRES_IMAGE,
            "environment": {
                "POSTGRES_USER": "ledger",
                "POSTGRES_DB": "ledger",
                "POSTGRES_PASSWORD_FILE": "/run/secrets/db-password",
            },
            "volumes": [
                f"postgres-{m.name}-data:/var/lib/postgresql/data",
                f"./secrets/{m.name}/db-password:/run/secrets/db-password:ro",
            ],
            "restart": "unless-stopped",
        }
        services[f"node-{m.name}"] = {
            "build": {"context": "../..", "dockerfile": "deploy/besu-qbft/Dockerfile"},
            "command": ["python", "-m", "api", "--config", "/config/node.json"],
            # the member's node talks to its own Besu node on loopback
            "network_mode": f"service:{m.host}",
            # LEDGER_KEY_PASSWORD, which opens the account keystore
            "env_file": [f"./secrets/{m.name}/node.env"],
            "volumes": [
                f"./members/{m.name}/node.json:/config/node.json:ro",
                "./deployment.json:/config/deployment.json:ro",
                f"./secrets/{m.name}:/secrets:ro",
                f"node-{m.name}-data:/data",
            ],
            "depends_on": [m.host, f"postgres-{m.name}"],
            "restart": "unless-stopped",
        }
        volumes.update({f"besu-{m.name}-data": {}, f"postgres-{m.name}-data": {},
                        f"node-{m.name}-data": {}})  # fmt: skip
    return {"name": "consortium-ledger", "services": services, "volumes": volumes}


def _yaml(data: Any, indent: int = 0) -> str:
    """Block-style YAML for the compose file (plain dicts, lists and scalars; every string
    quoted as JSON, which YAML reads as the same string)."""
    pad = "  " * indent
    out = []
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(v, dict | list) and v:
                out.append(f"{pad}{k}:\n{_yaml(v, indent + 1)}")
            else:
                out.append(f"{pad}{k}: {_scalar(v)}\n")
    else:
        for v in data:
            if isinstance(v, dict | list) and v:
                out.append(f"{pad}-\n{_yaml(v, indent + 1)}")
            else:
                out.append(f"{pad}- {_scalar(v)}\n")
    return "".join(out)


def _scalar(v: Any) -> str:
    if v == {} or v is None:
        return "{}"
    if v == []:
        return "[]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v))


def init_network(
    members: Sequence[str],
    validators: int,
    out: Path,
    *,
    chain_id: int = 1515,
    block_period_s: int = 2,
) -> dict[str, Any]:
    """Write the profile to `out` (see the module docstring); returns a summary."""
    names = [m.strip() for m in members if m.strip()]
    if len(set(names)) != len(names):
        raise ValueError("--members lists a member twice")
    if "platform" not in names or "auditor" not in names:
        raise ValueError("--members must include platform and auditor")
    if not any(ROLES.get(n, "lender") == "lender" for n in names):
        raise ValueError("--members must include at least one bank")
    if not 1 <= validators <= len(names):
        raise ValueError(f"--validators must be between 1 and {len(names)}")
    if validators < 4:
        # QBFT tolerates f faulty validators out of 3f + 1; fewer than four tolerate none
        raise ValueError("--validators must be at least 4 for QBFT to tolerate a failure")
    # validators: the members that fund loans first, then the auditor only if needed
    order = sorted(names, key=lambda n: (ROLES.get(n) == "auditor", names.index(n)))
    validating = set(order[:validators])
    out.mkdir(parents=True, exist_ok=True)
    secret_dir = out / "secrets"
    built: list[Member] = []
    for name in names:
        home = secret_dir / name
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(0o700)
        node_key = eth_keys.PrivateKey(secrets.token_bytes(32))
        (home / "key").write_text(node_key.to_hex() + "\n")
        account = Account.create()
        password = secrets.token_urlsafe(24)
        write_keystore(account, home / "account.json", password)
        db_password = secrets.token_urlsafe(24)
        (home / "db-password").write_text(db_password + "\n")
        # what the member's node reads: its keystore's password, its database's (libpq)
        (home / "node.env").write_text(
            f"LEDGER_KEY_PASSWORD={password}\nPGPASSWORD={db_password}\n"
        )
        write_key_file(home / "document-keys", DocumentKey.generate("k1"))
        for f in home.iterdir():
            f.chmod(0o700 if f.is_dir() else 0o600)
        built.append(
            Member(
                name=name,
                role=ROLES.get(name, "lender"),
                validator=name in validating,
                node_public_key=node_key.public_key.to_hex().removeprefix("0x"),
                node_address=node_key.public_key.to_checksum_address(),
                account=account.address,
            )
        )
    validator_addresses = [m.node_address for m in built if m.validator]
    genesis = qbft_genesis(
        chain_id, validator_addresses, [m.account for m in built], block_period_s=block_period_s
    )
    (out / "genesis.json").write_text(json.dumps(genesis, indent=2) + "\n")
    (out / "permissions_config.toml").write_text(
        toml(
            {
                "accounts-allowlist": [m.account for m in built],
                "nodes-allowlist": [m.enode for m in built],
            },
            "Only the consortium's accounts may send transactions; only its nodes may peer.",
        )
    )
    bootnodes = [m.enode for m in built if m.validator]
    for m in built:
        path = out / "besu" / m.name / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        kind = "archive (auditor)" if m.role == "auditor" else (
            "validator" if m.validator else "member node"
        )  # fmt: skip
        path.write_text(toml(besu_config(m, bootnodes), f"Besu {kind} of {m.name}."))
        node = out / "members" / m.name / "node.json"
        node.parent.mkdir(parents=True, exist_ok=True)
        node.write_text(json.dumps(node_config(m, built), indent=2) + "\n")
    (out / "docker-compose.yml").write_text(
        '# Generated by `ledger network init`; see README.md, "Running a real consortium".\n'
        + _yaml(_compose(built))
    )
    (out / ".gitignore").write_text("secrets/\ndeployment.json\n")
    (out / "Dockerfile").write_text(DOCKERFILE)
    summary = {
        "chain_id": chain_id,
        "validators": [{"member": m.name, "address": m.node_address} for m in built if m.validator],
        "members": [
            {"member": m.name, "role": m.role, "account": m.account, "enode": m.enode}
            for m in built
        ],
    }
    (out / "network.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
