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

from ledger.chain.connect import DEV_CHAIN_ID, is_dev_chain, web3_for
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
    # the council (ConsortiumCouncil) and its TimelockController, which owns the registry once
    # hand_over has run; empty in a deployment file written before the council existed
    council: str = ""
    timelock: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deployment:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

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
    w3 = web3_for(rpc_url)
    reg_art, led_art = art["ConsortiumRegistry"], art["CoLendingLedger"]
    registry = w3.eth.contract(abi=reg_art.abi, bytecode=reg_art.bytecode)
    data = registry.constructor(governor.address, policy.as_abi()).data_in_transaction
    r1 = _send(w3, governor, {"from": governor.address, "data": data})
    ledger = w3.eth.contract(abi=led_art.abi, bytecode=led_art.bytecode)
    data = ledger.constructor(r1["contractAddress"]).data_in_transaction
    r2 = _send(w3, governor, {"from": governor.address, "data": data})
    reg_addr = to_checksum_address(r1["contractAddress"])
    led_addr = to_checksum_address(r2["contractAddress"])
    # the timelock starts with no delay and the deployer as its temporary proposer and admin, so
    # hand_over can accept the registry's ownership through it; hand_over then sets the real
    # delay and leaves the council its only proposer and canceller
    tl_art, co_art = art["TimelockController"], art["ConsortiumCouncil"]
    data = (
        w3.eth.contract(abi=tl_art.abi, bytecode=tl_art.bytecode)
        .constructor(0, [governor.address], [ZERO_ADDRESS], governor.address)
        .data_in_transaction
    )
    timelock = to_checksum_address(
        _send(w3, governor, {"from": governor.address, "data": data})["contractAddress"]
    )
    data = (
        w3.eth.contract(abi=co_art.abi, bytecode=co_art.bytecode)
        .constructor(reg_addr, timelock)
        .data_in_transaction
    )
    council = to_checksum_address(
        _send(w3, governor, {"from": governor.address, "data": data})["contractAddress"]
    )
    return Deployment(
        chain_id=w3.eth.chain_id,
        registry=reg_addr,
        ledger=led_addr,
        deployment_block=int(r1["blockNumber"]),
        registry_code_hash="0x" + keccak(bytes(w3.eth.get_code(reg_addr))).hex(),
        ledger_code_hash="0x" + keccak(bytes(w3.eth.get_code(led_addr))).hex(),
        governor=governor.address,
        deployed_at=int(time.time()),
        council=council,
        timelock=timelock,
    )


ZERO_ADDRESS = "0x" + "00" * 20
# Production default: 48 hours between a council decision and its execution.
DEFAULT_DELAY = 48 * 3_600
# The local dev chain's delay: a few seconds, so tests and the demo wait or mine past it.
DEV_DELAY = 3
# The shortest delay hand_over accepts on any other chain without allow_short_delay: members need
# time to see a scheduled change (and pull the brake) before it can execute.
MIN_DELAY = 3_600


class DelayTooShort(ValueError):
    """A timelock delay under MIN_DELAY on a chain that is not the local dev chain."""


def hand_over(
    rpc_url: str,
    deployer: LocalAccount,
    deployment: Deployment,
    delay: int = DEFAULT_DELAY,
    artifacts: Any = None,
    *,
    allow_short_delay: bool = False,
) -> None:
    """Give the registry to the council: the timelock accepts ownership and takes its real delay,
    the council becomes its only proposer and canceller, and the deployer keeps no role.

    Run after the deployer has admitted the initial members (the council is read from them).
    A delay under MIN_DELAY is refused (DelayTooShort) except on the local dev chain or with
    `allow_short_delay` (a test network).
    """
    from ledger.chain.artifacts import load_artifacts

    art = artifacts or load_artifacts()
    w3 = web3_for(rpc_url)
    if delay < MIN_DELAY and not allow_short_delay and w3.eth.chain_id != DEV_CHAIN_ID:
        raise DelayTooShort(
            f"a timelock delay of {delay} s is under the {MIN_DELAY} s floor on chain id "
            f"{w3.eth.chain_id} (not the local dev chain); allow_short_delay: a test network"
        )
    me = deployer.address
    reg = w3.eth.contract(address=deployment.registry, abi=art["ConsortiumRegistry"].abi)
    tl = w3.eth.contract(address=deployment.timelock, abi=art["TimelockController"].abi)

    def send(fn: Any) -> None:
        _send(w3, deployer, {"from": me, "to": fn.address, "data": fn._encode_transaction_data()})

    send(reg.functions.transferOwnership(deployment.timelock))
    targets = [deployment.registry, deployment.timelock]
    calls = [
        reg.functions.acceptOwnership()._encode_transaction_data(),
        tl.functions.updateDelay(delay)._encode_transaction_data(),
    ]
    zero = b"\0" * 32
    send(tl.functions.scheduleBatch(targets, [0, 0], calls, zero, zero, 0))
    send(tl.functions.executeBatch(targets, [0, 0], calls, zero, zero))
    proposer = tl.functions.PROPOSER_ROLE().call()
    canceller = tl.functions.CANCELLER_ROLE().call()
    admin = tl.functions.DEFAULT_ADMIN_ROLE().call()
    send(tl.functions.grantRole(proposer, deployment.council))
    send(tl.functions.grantRole(canceller, deployment.council))
    send(tl.functions.revokeRole(proposer, me))
    send(tl.functions.revokeRole(canceller, me))
    send(tl.functions.renounceRole(admin, me))


class NotFunded(RuntimeError):
    """An account a deployment needs cannot pay for its transactions."""


def fund(rpc_url: str, addresses: list[str], wei: int = 10**24) -> None:
    """Give accounts a balance on the local dev chain (anvil and Hardhat node both expose
    *_setBalance). Anywhere else nothing is called: the accounts must be funded in the chain's
    genesis (or gas must be free), which `require_funded` checks."""
    w3 = web3_for(rpc_url)
    if not is_dev_chain(int(w3.eth.chain_id)):
        require_funded(w3, addresses)
        return
    client = w3.client_version.lower()
    method = "hardhat_setBalance" if "hardhat" in client else "anvil_setBalance"
    for a in addresses:
        answer = w3.provider.make_request(method, [to_checksum_address(a), hex(wei)])
        if "error" in answer:
            raise NotFunded(f"{method} refused for {a}: {answer['error']}")


# a deployment and its first members' set-up: a few million gas each at most
NEEDED_GAS = 30_000_000


def require_funded(w3: Web3, addresses: list[str], gas: int = NEEDED_GAS) -> None:
    """Raise NotFunded naming every account in `addresses` that cannot pay `gas` at the chain's
    gas price. On a free-gas chain (gas price and base fee 0, as Besu runs with zeroBaseFee and
    min-gas-price 0) every account qualifies."""
    block = w3.eth.get_block("latest")
    price = int(block.get("baseFeePerGas") or 0) or int(w3.eth.gas_price)
    if price == 0:
        return
    short = [
        f"{to_checksum_address(a)} has {w3.eth.get_balance(to_checksum_address(a))} wei"
        for a in addresses
        if w3.eth.get_balance(to_checksum_address(a)) < gas * price
    ]
    if short:
        raise NotFunded(
            f"not funded (needs {gas * price} wei at gas price {price}): " + "; ".join(short)
        )
