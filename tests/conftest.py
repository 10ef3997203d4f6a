"""Shared fixtures: real chains (anvil and Hardhat node) started on free loopback ports, and a
deployed DEV-ONLY consortium on each, reset between tests with evm_snapshot/evm_revert."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.localnet.chains import LocalChain
from ledger.localnet.consortium import LocalConsortium, bootstrap
from tests.personal_data import LEAKS, LogWatch

CHAIN_KINDS = [k for k in os.environ.get("LEDGER_TEST_CHAINS", "anvil,hardhat").split(",") if k]


@pytest.fixture(scope="session", params=CHAIN_KINDS)
def chain(request: pytest.FixtureRequest) -> Iterator[LocalChain]:
    with LocalChain(request.param) as c:
        yield c


@pytest.fixture(scope="session")
def anvil() -> Iterator[LocalChain]:
    with LocalChain("anvil") as c:
        yield c


class Snapshots:
    """evm_snapshot/evm_revert around a test; clients are rebuilt so nonces start fresh."""

    def __init__(self, cx: LocalConsortium) -> None:
        self.cx = cx

    def take(self) -> str:
        return self.cx.gov.w3.provider.make_request("evm_snapshot", [])["result"]

    def revert(self, snap: str) -> None:
        self.cx.gov.w3.provider.make_request("evm_revert", [snap])
        self.cx.reset_clients()


@pytest.fixture(scope="session")
def _deployed(chain: LocalChain) -> LocalConsortium:
    return bootstrap(chain.url)


@pytest.fixture
def cx(_deployed: LocalConsortium) -> Iterator[LocalConsortium]:
    """A freshly reset consortium on the session's chain (anvil or Hardhat node)."""
    snaps = Snapshots(_deployed)
    snap = snaps.take()
    _deployed.reset_clients()
    try:
        yield _deployed
    finally:
        snaps.revert(snap)


def advance_time(cx: LocalConsortium, seconds: int) -> None:
    """Move the chain's clock forward and mine a block."""
    w3 = cx.gov.w3
    w3.provider.make_request("evm_increaseTime", [seconds])
    w3.provider.make_request("evm_mine", [])


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger().addHandler(LogWatch(LEAKS))


_CANARY_SCAN = "test_nothing_written_in_the_suite_holds_a_raw_national_id"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The canary scan looks at what every other test wrote, so it runs last.
    last = [i for i in items if i.name == _CANARY_SCAN]
    items[:] = [i for i in items if i not in last] + last


# Anvil moves the per-block states it cannot hold in memory (about 180 MB per 1,500 blocks) to
# ~/.foundry/anvil/tmp, and an anvil a test kills on purpose leaves them there: about 471 MB a
# run. What this session's anvils left is deleted when it ends. (Pointing anvil elsewhere, with
# --cache-path or its own HOME, made a restart from --state lose a block's logs now and then in
# tests/test_faults.py.)
_ANVIL_SPILL = Path.home() / ".foundry" / "anvil" / "tmp"
_spill_before: set[Path] = set()


def pytest_sessionstart(session: pytest.Session) -> None:
    if _ANVIL_SPILL.is_dir():
        _spill_before.update(_ANVIL_SPILL.iterdir())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _ANVIL_SPILL.is_dir():
        for left in set(_ANVIL_SPILL.iterdir()) - _spill_before:
            shutil.rmtree(left, ignore_errors=True)
