"""Deploying the registry and the ledger, and the deployment file that records where they are."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import Web3

from ledger.domain import DEFAULT_POLICY, Policy


@dataclass(frozen=True, slots=True)
class Deployment:
    chain_id: int
    registry: str
    ledger: str
    deployment_block: int
    registry_code_hash: str
    ledger_code_hash: str
    governor: str
    deployed_at: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deployment:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        return cls.from_json(json.loads(Path(path).read_text()))


def _send(w3: Web3, account: LocalAccount, tx: dict[str, Any]) -> dict:
    tx.setdefault("nonce", w3.eth.get_transaction_count(account.address, "pending"))
    tx.setdefault("chainId", w3.eth.chain_id)
    tx.setdefault("value", 0)
    block = w3.eth.get_block("latest")
    if block.get("baseFeePerGas") is not None:
        base = int(block["baseFeePerGas"])
        tx.setdefault("maxPriorityFeePerGas", 0 if base == 0 else 10**9)
        tx.setdefault("maxFeePerGas", 2 * base + tx["maxPriorityFeePerGas"])
    else:
        tx.setdefault("gasPrice", int(w3.eth.gas_price))
    if "gas" not in tx:
        tx["gas"] = int(w3.eth.estimate_gas({k: v for k, v in tx.items() if k != "chainId"}) * 1.2)
    raw = account.sign_transaction(tx).raw_transaction
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw), timeout=120)
    if receipt["status"] != 1:
        raise RuntimeError(
            f"deployment transaction failed: {receipt['transactionHash'].to_0x_hex()}"
        )
    return receipt


def deploy(
    rpc_url: str,
    governor: LocalAccount,
    policy: Policy = DEFAULT_POLICY,
    artifacts: Any = None,
) -> Deployment:
    """Deploy the registry (governed by `governor`, with `policy` as version 1) and the ledger."""
    from ledger.chain.artifacts import load_artifacts

    art = artifacts or load_artifacts()
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
    reg_art, led_art = art["ConsortiumRegistry"], art["CoLendingLedger"]
    registry = w3.eth.contract(abi=reg_art.abi, bytecode=reg_art.bytecode)
    data = registry.constructor(governor.address, policy.as_abi()).data_in_transaction
    r1 = _send(w3, governor, {"from": governor.address, "data": data})
    ledger = w3.eth.contract(abi=led_art.abi, bytecode=led_art.bytecode)
    data = ledger.constructor(r1["contractAddress"]).data_in_transaction
    r2 = _send(w3, governor, {"from": governor.address, "data": data})
    reg_addr = to_checksum_address(r1["contractAddress"])
    led_addr = to_checksum_address(r2["contractAddress"])
    return Deployment(
        chain_id=w3.eth.chain_id,
        registry=reg_addr,
        ledger=led_addr,
        deployment_block=int(r1["blockNumber"]),
        registry_code_hash="0x" + keccak(bytes(w3.eth.get_code(reg_addr))).hex(),
        ledger_code_hash="0x" + keccak(bytes(w3.eth.get_code(led_addr))).hex(),
        governor=governor.address,
        deployed_at=int(time.time()),
    )


def fund(rpc_url: str, addresses: list[str], wei: int = 10**24) -> None:
    """Give local dev accounts a balance (anvil and Hardhat node both expose *_setBalance)."""
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    client = w3.client_version.lower()
    method = "hardhat_setBalance" if "hardhat" in client else "anvil_setBalance"
    for a in addresses:
        w3.provider.make_request(method, [to_checksum_address(a), hex(wei)])
