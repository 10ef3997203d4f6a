#!/usr/bin/env bash
# Set up, then run the local consortium: chain, contracts, DEV-ONLY members, five nodes, and the
# demo story played against them. Idempotent: a running consortium is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$(pwd)/.venv/bin:$(pwd)/node_modules/.bin:$PATH"
.venv/bin/ledger up "$@"
.venv/bin/ledger demo
