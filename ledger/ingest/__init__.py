"""What `ledger.indexer.Indexer` is made of: raw JSON-RPC (rpc), ABI plumbing (abi), log
decoding (decode), events into read-model state (projection for the ledger, registry for the
registry; state loads and writes that state, writer writes one block range), reorg rollback
(undo, rollback) and the comparison with the contract views (consistency)."""
