#!/usr/bin/env bash
# Set up, then run the local consortium: chain, contracts, demo data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$(pwd)/.venv/bin:$(pwd)/node_modules/.bin:$PATH"
exec .venv/bin/ledger up "$@"
