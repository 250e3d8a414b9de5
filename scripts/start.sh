#!/usr/bin/env bash
# Installs endolite (with a working torch + torchvision pair) and starts the dashboard on ./data.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e ".[dev]"
exec endolite serve "$@"
