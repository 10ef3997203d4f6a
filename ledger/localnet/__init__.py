"""The local consortium's tooling: process supervision, anvil and Hardhat launch, the DEV-ONLY
members and their node processes, the demo story, the seed history and the gas report.

Tests, benches and `ledger up` use it; production nodes never import it."""
