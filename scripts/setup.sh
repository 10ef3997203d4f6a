#!/usr/bin/env bash
# Idempotent set-up on a machine with only python3, node/npm and git:
# a project virtualenv with the pinned Python packages, and the pinned npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
  touch "$stamp"
fi

nstamp=node_modules/.installed
if [ ! -f "$nstamp" ] || [ package-lock.json -nt "$nstamp" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  touch "$nstamp"
fi
# anvil's native binary ships in an optional dependency; check it is really there.
node_modules/.bin/anvil --version >/dev/null

export PATH="$root/.venv/bin:$root/node_modules/.bin:$PATH"
npx hardhat compile --quiet >/dev/null
