#!/usr/bin/env bash
# Runs every test: fast unit tests, AppTest page tests, slow real-model tests and the browser
# (e2e) tests in Debian's Chromium.  Installs what is missing first, so it works on a fresh machine:
# the same environment as scripts/start.sh (.venv/ or the active virtualenv; scripts/env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's Chromium drives the e2e tests (never `playwright install`: no browser downloads here).
if [ ! -x /usr/bin/chromium ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q && $SUDO apt-get install -y -q chromium
fi

# The project and its test extras (skipped when already installed for this pyproject.toml).
source scripts/env.sh

"$PY" -m pytest -m "slow or e2e or not (slow or e2e)" "$@"
