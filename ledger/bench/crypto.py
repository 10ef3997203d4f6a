"""EIP-712 signs/s and recovers/s with the coincurve backend."""

from __future__ import annotations

import statistics
import time
from typing import Any

from eth_account import Account

from ledger.domain import CoLoan, Product, RepaymentType, Tranche
from ledger.provenance import Domain, digest, recover, sign


def run(seconds: float = 1.0, runs: int = 3) -> dict[str, Any]:
    key = Account.from_key(b"\x11" * 32)
    domain = Domain(31337, "0x" + "ab" * 20)
    loan = CoLoan(
        b"\x01" * 32,
        b"\x02" * 32,
        key.address,
        Product.CONSUMER,
        1_000_000,
        1_200,
        180,
        RepaymentType.INSTALMENT,
        2**40,
        (Tranche(key.address, 1_000_000),),
    )
    sig = sign(key.key, domain, loan)
    d = digest(domain, loan)
    signs, recovers = [], []
    for _ in range(runs):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            sign(key.key, domain, loan)
            n += 1
        signs.append(n / (time.perf_counter() - t0))
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            recover(d, sig)
            n += 1
        recovers.append(n / (time.perf_counter() - t0))
    return {
        "median_signs_per_s": round(statistics.median(signs)),
        "spread_signs_per_s": [round(min(signs)), round(max(signs))],
        "median_recovers_per_s": round(statistics.median(recovers)),
        "spread_recovers_per_s": [round(min(recovers)), round(max(recovers))],
        "note": "sign = EIP-712 digest + secp256k1 sign; recover = low-s check + ecrecover",
    }
