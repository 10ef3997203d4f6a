"""One genesis for a consortium chain: Besu QBFT's, also fed to anvil (`--init`) for the
production-like local chain, which ignores the `qbft` section and keeps the rest (chain id,
Cancun at 0, zero base fee, the funded accounts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eth_utils import to_checksum_address

from ledger.network.qbft import encode_extra_data

# QBFT's fixed mixHash ("tical byzantine fault tolerance"), as in Besu's examples
QBFT_MIX_HASH = "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365"
# Ethereum's and Besu's usual 30 Mgas: about 200 three-tranche co-loans (~150k gas each) a block
DEFAULT_GAS_LIMIT = 30_000_000
# plenty for a member that pays gas anyway; with zero base fee and min gas price 0 it is unused
DEFAULT_BALANCE_WEI = 10**24


def qbft_genesis(
    chain_id: int,
    validators: Sequence[str],
    funded: Mapping[str, int] | Sequence[str],
    *,
    block_period_s: int = 2,
    gas_limit: int = DEFAULT_GAS_LIMIT,
    timestamp: int = 0,
) -> dict[str, Any]:
    """Besu QBFT genesis: `validators` in extraData, every fork up to Cancun at block 0, zero
    base fee (Besu `zeroBaseFee`), `funded` accounts (address -> wei, or addresses given
    DEFAULT_BALANCE_WEI) in `alloc`. `timestamp` is the genesis time (anvil counts its blocks'
    time on from it; Besu's validators stamp blocks with their clocks)."""
    if chain_id in (1, 31337) or chain_id <= 0:
        raise ValueError(f"chain id {chain_id} is taken (mainnet or the local dev chain)")
    balances = funded if isinstance(funded, Mapping) else dict.fromkeys(funded, DEFAULT_BALANCE_WEI)
    forks = (
        "homesteadBlock eip150Block eip155Block eip158Block byzantiumBlock constantinopleBlock "
        "petersburgBlock istanbulBlock muirGlacierBlock berlinBlock londonBlock"
    ).split()
    return {
        "config": {
            "chainId": chain_id,
            **dict.fromkeys(forks, 0),
            "shanghaiTime": 0,
            "cancunTime": 0,
            "zeroBaseFee": True,
            "qbft": {
                "blockperiodseconds": block_period_s,
                "epochlength": 30_000,
                "requesttimeoutseconds": max(4, 2 * block_period_s),
            },
        },
        "nonce": "0x0",
        "timestamp": hex(timestamp),
        "extraData": encode_extra_data(validators),
        "gasLimit": hex(gas_limit),
        "difficulty": "0x1",
        "mixHash": QBFT_MIX_HASH,
        "coinbase": "0x" + "00" * 20,
        "baseFeePerGas": "0x0",
        "alloc": {
            to_checksum_address(a): {"balance": hex(wei)} for a, wei in sorted(balances.items())
        },
    }
