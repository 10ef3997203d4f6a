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
  # Slither's metadata caps web3 below 8, though its analysis never imports web3: install it and
  # its own dependencies without the resolver (docs/slither-triage.md).
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
    slither-analyzer==0.11.6 crytic-compile==0.4.2 solc-select==1.2.0 cbor2==6.3.0 \
    prettytable==3.18.0 wcwidth==0.9.4 packaging==26.4 pycryptodome==3.24.1
  touch "$stamp"
fi

# Headless Chromium and its WebDriver for the browser tests, from Debian, when missing.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
  else
    echo "chromium and chromium-driver are missing (the browser tests skip): apt-get install them" >&2
  fi
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
