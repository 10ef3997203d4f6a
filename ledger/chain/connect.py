"""Every web3 instance the project builds, and the start-up check of the chain's identity.

Proof-of-authority chains (clique, IBFT 2.0, QBFT: Besu's consortium chains) carry signer data in
`extraData` (97 bytes and more), which web3.py refuses (`ExtraDataLengthError`) unless
`ExtraDataToPOAMiddleware` is installed. It is harmless on anvil and Hardhat, so every instance
gets it: one place, no chain forgotten.
"""

from __future__ import annotations

import time
from typing import Any

from web3 import Web3
from web3.middleware import ExtraDataToPOAMiddleware

DEV_CHAIN_ID = 31337  # the local dev chains' id (anvil, Hardhat node): the only one with dev RPCs


def web3_for(rpc_url: str, timeout: float = 60.0) -> Web3:
    """A Web3 instance on `rpc_url` that reads proof-of-authority blocks."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    return w3


def is_dev_chain(chain_id: int) -> bool:
    """Whether `chain_id` is the local dev chain, the only one where anvil_*/hardhat_*/evm_*
    methods may be called (nothing real can be at stake there)."""
    return chain_id == DEV_CHAIN_ID


class ChainIdMismatch(RuntimeError):
    """The chain id the node reports, the one the contracts see and the configured one differ."""


def check_chain_id(w3: Web3, ledger: Any, expected: int) -> int:
    """Refuse to start unless eth_chainId, the ledger's EIP-712 domain (ERC-5267
    `eip712Domain()`, i.e. `block.chainid` inside the EVM) and the deployment's chain id agree.

    Signatures carry the domain's chain id; a node reporting one id over JSON-RPC while its EVM
    sees another (FISCO BCOS's web3 endpoint returns 0 inside the EVM unless configured) would
    have every signature checked by Python and refused by the contract, or the reverse."""
    reported = int(w3.eth.chain_id)
    in_evm = int(ledger.functions.eip712Domain().call()[3])
    if reported != in_evm:
        raise ChainIdMismatch(
            f"chain id mismatch: eth_chainId reports {reported} but block.chainid in the "
            f"contracts (EIP-712 domain) is {in_evm}; refusing to sign for either"
        )
    if reported != expected:
        raise ChainIdMismatch(
            f"chain id mismatch: the deployment file says {expected} but the chain reports "
            f"{reported}; refusing to start"
        )
    return reported


def wait_for_chain_time(w3: Web3, timestamp: int, timeout: float = 120.0) -> int:
    """Wait until the chain's latest block is at least `timestamp` (what a timelock's delay
    needs on a chain whose clock nobody may move). Returns the block's timestamp."""
    deadline = time.monotonic() + timeout
    while True:
        now = int(w3.eth.get_block("latest")["timestamp"])
        if now >= timestamp:
            return now
        if time.monotonic() > deadline:
            raise TimeoutError(f"no block at or after time {timestamp} within {timeout:g}s")
        time.sleep(min(0.5, max(0.05, timestamp - now - 0.5)))
