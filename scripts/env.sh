# Shared by scripts/start.sh and scripts/test.sh (and so by .ci/run): finds or creates the Python
# environment endolite runs in, installs the project into it when needed, and sets
#
#   PY        that environment's python (run things as "$PY" -m ...)
#   VENV_DIR  the environment's directory (its endolite command is "$VENV_DIR/bin/endolite")
#
# Which environment:
#   1. an active virtualenv ($VIRTUAL_ENV, or a python3 on PATH with sys.prefix != sys.base_prefix);
#   2. otherwise .venv/ at the repository root, created with `python3 -m venv` when missing.
# A stock Debian 12 / Ubuntu 24.04 python3 is "externally managed" (PEP 668): pip refuses to
# install into it, so endolite never installs there.
#
# Install: `pip install -e ".[dev]"`, skipped when <env>/.endolite-installed holds the sha256 of
# pyproject.toml and this checkout's path (written after a successful install), so a second start
# does not touch pip.  ENDOLITE_REINSTALL=1 forces the install.
#
# Usage:  source scripts/env.sh     (from bash; returns non-zero with a message on failure)
#         bash scripts/env.sh       (prepares the environment and prints PY=...)

_endolite_fail() {
  printf 'endolite setup: %s\n' "$@" >&2
  return 1
}

_endolite_sudo() { [ "$(id -u)" -eq 0 ] && echo "" || echo "sudo "; }

_endolite_env() {
  local root stamp_want stamp_have existed
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || return 1

  # 1. an active virtualenv
  VENV_DIR=""
  if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
    VENV_DIR="$VIRTUAL_ENV"
  elif command -v python3 >/dev/null 2>&1 \
      && python3 -c 'import sys; sys.exit(0 if sys.prefix != sys.base_prefix else 1)' 2>/dev/null; then
    VENV_DIR="$(python3 -c 'import sys; print(sys.prefix)')" || return 1
  fi

  # 2. .venv at the repository root
  if [ -z "$VENV_DIR" ]; then
    VENV_DIR="$root/.venv"
    if [ ! -x "$VENV_DIR/bin/python" ]; then
      command -v python3 >/dev/null 2>&1 || _endolite_fail \
        "no python3 on PATH; install it: $(_endolite_sudo)apt-get install -y python3 python3-venv" || return 1
      python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || _endolite_fail \
        "endolite needs Python >= 3.11; python3 is $(python3 -V 2>&1)" || return 1
      existed=0; [ -e "$VENV_DIR" ] && existed=1
      echo "endolite setup: creating the virtualenv $VENV_DIR" >&2
      if ! python3 -m venv "$VENV_DIR" || [ ! -x "$VENV_DIR/bin/python" ]; then
        # a half-made venv (python but no pip) would be picked up next time
        [ "$existed" = 1 ] || rm -rf "$VENV_DIR"
        _endolite_fail "\`python3 -m venv\` failed: this python3 has no venv module (Debian and Ubuntu ship it separately)." \
          "Install it and run this again:" \
          "    $(_endolite_sudo)apt-get install -y python3-venv" \
          "(on some releases the package is python3.X-venv, X being python3's minor version: $(python3 -V 2>&1))" \
          || return 1
      fi
    fi
  fi
  PY="$VENV_DIR/bin/python"

  # 3. install the project unless the stamp says this pyproject.toml is installed already
  stamp_want="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1) $root" || return 1
  stamp_have="$(cat "$VENV_DIR/.endolite-installed" 2>/dev/null || true)"
  if [ "${ENDOLITE_REINSTALL:-0}" = 1 ] || [ "$stamp_have" != "$stamp_want" ]; then
    "$PY" -m pip --version >/dev/null 2>&1 || _endolite_fail \
      "$VENV_DIR has no pip (made while python3-venv was missing?). Install python3-venv," \
      "    $(_endolite_sudo)apt-get install -y python3-venv" \
      "then remove $VENV_DIR and run this again." || return 1
    echo "endolite setup: pip install -e \".[dev]\" into $VENV_DIR (the first time this fetches torch, several GB)" >&2
    if ! (cd "$root" && "$PY" -m pip install -e ".[dev]"); then
      _endolite_fail "pip install -e \".[dev]\" failed (see pip's message above)." \
        "If a package had to be compiled from source, install a compiler and Python's headers and run this again:" \
        "    $(_endolite_sudo)apt-get install -y python3-dev gcc" || return 1
    fi
    # rapidocr-onnxruntime pulls in opencv-python (the GUI build: it needs libGL.so.1, which a
    # server may lack) beside our opencv-python-headless; both fill the same cv2/ folder. Keep
    # the headless build: remove the GUI one and lay the headless files down again.
    if "$PY" -m pip show -q opencv-python >/dev/null 2>&1; then
      local headless
      headless="$("$PY" -m pip show opencv-python-headless 2>/dev/null | sed -n 's/^Version: //p')"
      "$PY" -m pip uninstall -y -q opencv-python \
        && "$PY" -m pip install -q --force-reinstall --no-deps "opencv-python-headless==${headless}" \
        || { _endolite_fail "could not replace opencv-python by opencv-python-headless" || return 1; }
    fi
    printf '%s\n' "$stamp_want" > "$VENV_DIR/.endolite-installed" 2>/dev/null \
      || echo "endolite setup: could not write $VENV_DIR/.endolite-installed (the next start reinstalls)" >&2
  fi
  export PY VENV_DIR
}

if (return 0 2>/dev/null); then
  _endolite_env || return 1
else
  set -u
  _endolite_env || exit 1
  echo "PY=$PY"
fi
