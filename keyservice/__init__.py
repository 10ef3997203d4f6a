"""The key service (DESIGN §3): the only holder of the consortium pepper. Members' nodes sign in
to it (EIP-4361) and ask it for borrower keys; it rate-limits each member, requires a purpose
and appends every derivation (member, time, purpose, key; never the ID) to a hash-chained,
append-only log that the auditor reads. Its own process (`python -m keyservice --config FILE`),
key and database. `api/` never imports it and `ledger/` only talks to it over HTTP
(ledger.keyclient)."""
