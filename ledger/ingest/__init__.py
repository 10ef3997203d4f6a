"""What `ledger.indexer.Indexer` is made of, above the one chain-reading layer (`ledger.chain.rpc`,
`ledger.chain.events`): range sizing (spans) and read-ahead (fetch), events into read-model state
(projection for the ledger, registry for the registry; state loads and writes that state, writer
writes one block range, cursor keeps the indexer's place), reorg rollback by replaying the
affected borrowers' surviving events (rollback) and the comparison with the contract views
(consistency)."""
