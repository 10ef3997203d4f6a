"""Delivery of the member's alerts (ledger.alerts): kept in the node's database under their
stable ids, streamed (Server-Sent Events) and pushed to the member's webhooks."""
