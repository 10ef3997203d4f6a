"""The local consortium's tooling: process supervision (processes), anvil and Hardhat launch
(chaincmd: command lines; chains: a chain owned by this process; detached: one that outlives the
CLI), the DEV-ONLY members and their node processes (nodes), the demo story, the seed history and
the gas report.

Tests, benches and `ledger up` use it; production nodes never import it."""
