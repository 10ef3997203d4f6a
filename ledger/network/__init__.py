"""Production network profiles: Hyperledger Besu QBFT genesis, node configs and compose file
(`ledger network init`), and the genesis the production-like local chain shares with them."""
