"""QBFT's genesis `extraData`: the validators, RLP-encoded as Besu reads them.

Besu's documented layout (block header validator selection, "Configure QBFT consensus"):
RLP([32 bytes vanity, [validator addresses], vote (empty list: no vote), round (0), seals (empty
list in genesis)]). Checked in tests/test_network.py against the example in Besu's documentation.
"""

from __future__ import annotations

from collections.abc import Sequence

import rlp
from eth_utils import to_canonical_address, to_checksum_address

VANITY = b"\0" * 32


def encode_extra_data(validators: Sequence[str], vanity: bytes = VANITY) -> str:
    """The genesis extraData for `validators` (in the order given), as 0x-hex."""
    if len(vanity) != 32:
        raise ValueError("the vanity is 32 bytes")
    if not validators:
        raise ValueError("QBFT needs at least one validator")
    addresses = [to_canonical_address(v) for v in validators]
    if len(set(addresses)) != len(addresses):
        raise ValueError("a validator is listed twice")
    # round 0 is the integer zero, which RLP writes as the empty string (0x80)
    return "0x" + rlp.encode([vanity, addresses, [], 0, []]).hex()


def decode_validators(extra_data: str) -> list[str]:
    """The validators' checksummed addresses in a QBFT extraData."""
    items = rlp.decode(bytes.fromhex(extra_data.removeprefix("0x")))
    if not isinstance(items, list) or len(items) != 5 or len(items[0]) != 32:
        raise ValueError("not a QBFT extraData: RLP([vanity, validators, vote, round, seals])")
    return [to_checksum_address(a) for a in items[1]]
