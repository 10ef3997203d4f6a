#!/usr/bin/env bash
# Set up what the suite needs, then run the whole test suite (real anvil, real Hardhat node,
# PostgreSQL too when TEST_DATABASE_URL or DATABASE_URL is set).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$(pwd)/.venv/bin:$(pwd)/node_modules/.bin:$PATH"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
