#!/usr/bin/env bash
# Starts the dashboard (default data directory ./data, or $ENDOLITE_DATA; port 8501).  Arguments
# go to `endolite serve`, e.g.  bash scripts/start.sh --address 127.0.0.1 --port 8501
# The first run creates .venv/ (unless a virtualenv is active) and installs endolite into it; see
# scripts/env.sh.  A later run skips the install while pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# Streamlit's file watcher would also walk .venv/ (in the app's folder: thousands of directories,
# "Inotify queue overflowed"); a running server has no code edits to react to.
export STREAMLIT_SERVER_FILE_WATCHER_TYPE="${STREAMLIT_SERVER_FILE_WATCHER_TYPE:-none}"
# Patient data: files the server writes are readable by its user and group only (the systemd
# unit does the same with UMask=0027).
umask 027
exec "$VENV_DIR/bin/endolite" serve "$@"
