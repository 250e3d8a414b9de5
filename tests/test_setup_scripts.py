"""scripts/env.sh (shared by scripts/start.sh and scripts/test.sh): which Python environment it
picks, when it creates .venv, when it runs pip, and what it says when it cannot.

Each test runs the real scripts with bash in a temporary copy of the repository's scripts and
pyproject.toml.  ``python3`` on PATH is a wrapper around the base (non-venv) interpreter that can
be told to fail ``-m venv``; the environments' ``bin/python`` are stand-ins that log their
arguments, so nothing is installed and each test takes well under a second.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BASE_PYTHON = os.path.realpath(getattr(sys, "_base_executable", sys.executable))

FAKE_PYTHON3 = """#!/usr/bin/env bash
# python3 outside any virtualenv; FAKE_VENV_FAIL makes `-m venv` fail like Debian without python3-venv
echo "python3 $*" >> "$LOG"
if [ "${1:-}" = "-m" ] && [ "${2:-}" = "venv" ]; then
  if [ -n "${FAKE_VENV_FAIL:-}" ]; then
    mkdir -p "$3/bin" && ln -s "%(base)s" "$3/bin/python"   # half-made, as the real failure leaves it
    echo "The virtual environment was not created successfully because ensurepip is not available." >&2
    exit 1
  fi
  mkdir -p "$3/bin" && cp "%(venv_python)s" "$3/bin/python" && cp "%(endolite)s" "$3/bin/endolite"
  exit 0
fi
if [ -n "${FAKE_OLD:-}" ]; then
  case "$*" in *version_info*) exit 1 ;; -V) echo "Python 3.9.2"; exit 0 ;; esac
fi
exec "%(base)s" "$@"
"""

FAKE_VENV_PYTHON = """#!/usr/bin/env bash
# a virtualenv's python: logs its arguments; pip "succeeds" unless FAKE_PIP_RC says otherwise
echo "venv-python $*" >> "$LOG"
if [ "${1:-}" = "-m" ] && [ "${2:-}" = "pip" ]; then
  [ "${3:-}" = "--version" ] && { echo "pip 23.0.1"; exit 0; }
  exit "${FAKE_PIP_RC:-0}"
fi
exit 0
"""

FAKE_ENDOLITE = """#!/usr/bin/env bash
echo "endolite $*" >> "$LOG"
"""


@pytest.fixture
def sandbox(tmp_path):
    """A repository copy (scripts + pyproject.toml), a bin dir with the fake python3, a log."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    for name in ("env.sh", "start.sh", "test.sh"):
        shutil.copy2(REPO / "scripts" / name, root / "scripts" / name)
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")

    stubs = tmp_path / "stubs"
    stubs.mkdir()
    _script(stubs / "venv_python", FAKE_VENV_PYTHON)
    _script(stubs / "endolite", FAKE_ENDOLITE)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _script(bindir / "python3", FAKE_PYTHON3 % {
        "base": BASE_PYTHON, "venv_python": stubs / "venv_python", "endolite": stubs / "endolite"})

    log = tmp_path / "log"
    log.touch()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PATH=f"{bindir}:/usr/bin:/bin", LOG=str(log))
    return {"root": root, "tmp": tmp_path, "log": log, "env": env, "stubs": stubs}


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def _stamp(root: Path) -> str:
    return hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest() + f" {root}"


def _fake_venv(sb, where: Path, stamp: str | None) -> Path:
    (where / "bin").mkdir(parents=True)
    shutil.copy2(sb["stubs"] / "venv_python", where / "bin" / "python")
    shutil.copy2(sb["stubs"] / "endolite", where / "bin" / "endolite")
    if stamp is not None:
        (where / ".endolite-installed").write_text(stamp + "\n")
    return where


def _source(sb, **extra_env) -> subprocess.CompletedProcess:
    """`source scripts/env.sh` as start.sh and test.sh do, then print what it chose."""
    return subprocess.run(
        ["bash", "-c", 'set -euo pipefail; source scripts/env.sh; echo "PY=$PY"; echo "VENV_DIR=$VENV_DIR"'],
        cwd=sb["root"], env={**sb["env"], **extra_env}, capture_output=True, text=True, timeout=60)


def _chosen(proc) -> dict[str, str]:
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


def _log(sb) -> str:
    return sb["log"].read_text()


def test_base_python_is_not_a_virtualenv():
    """The premise of the fake python3: it stands for a stock, externally managed system python."""
    out = subprocess.run([BASE_PYTHON, "-c", "import sys; print(sys.prefix != sys.base_prefix)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_existing_venv_with_matching_stamp_is_used_without_pip(sandbox):
    sb = sandbox
    venv = _fake_venv(sb, sb["root"] / ".venv", _stamp(sb["root"]))
    proc = _source(sb)
    assert proc.returncode == 0, proc.stderr
    assert _chosen(proc) == {"PY": str(venv / "bin" / "python"), "VENV_DIR": str(venv)}
    assert "pip" not in _log(sb)                      # up to date: no install, not even pip --version
    assert "-m venv" not in _log(sb)


def test_start_execs_the_venvs_endolite_serve_with_its_arguments(sandbox):
    sb = sandbox
    _fake_venv(sb, sb["root"] / ".venv", _stamp(sb["root"]))
    proc = subprocess.run(["bash", "scripts/start.sh", "--address", "127.0.0.1", "--port", "8502"],
                          cwd=sb["root"], env=sb["env"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "endolite serve --address 127.0.0.1 --port 8502" in _log(sb)
    assert "pip" not in _log(sb)


@pytest.mark.skipif(not os.access("/usr/bin/chromium", os.X_OK),
                    reason="test.sh would apt-get install chromium first")
def test_test_sh_runs_pytest_with_the_venvs_python(sandbox):
    sb = sandbox
    _fake_venv(sb, sb["root"] / ".venv", _stamp(sb["root"]))
    proc = subprocess.run(["bash", "scripts/test.sh", "-k", "nothing"], cwd=sb["root"], env=sb["env"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "venv-python -m pytest -m slow or e2e or not (slow or e2e) -k nothing" in _log(sb)


def test_stale_stamp_reinstalls_once_and_records_the_new_stamp(sandbox):
    sb = sandbox
    venv = _fake_venv(sb, sb["root"] / ".venv", "0" * 64 + f" {sb['root']}")   # older pyproject.toml
    proc = _source(sb)
    assert proc.returncode == 0, proc.stderr
    assert "venv-python -m pip install -e .[dev]" in _log(sb)
    assert (venv / ".endolite-installed").read_text().strip() == _stamp(sb["root"])

    sb["log"].write_text("")
    assert _source(sb).returncode == 0
    assert "pip" not in _log(sb)                      # second start is fast


def test_stamp_of_another_checkout_reinstalls(sandbox):
    """An editable install points at one checkout: a venv stamped for another path is reinstalled."""
    sb = sandbox
    _fake_venv(sb, sb["root"] / ".venv", _stamp(sb["root"]).split()[0] + " /elsewhere")
    assert _source(sb).returncode == 0
    assert "-m pip install -e .[dev]" in _log(sb)


def test_missing_venv_is_created_then_installed(sandbox):
    sb = sandbox
    proc = _source(sb)
    assert proc.returncode == 0, proc.stderr
    venv = sb["root"] / ".venv"
    assert f"python3 -m venv {venv}" in _log(sb)
    assert _chosen(proc)["PY"] == str(venv / "bin" / "python")
    assert "venv-python -m pip install -e .[dev]" in _log(sb)
    assert (venv / ".endolite-installed").read_text().strip() == _stamp(sb["root"])


def test_failing_venv_prints_the_apt_get_hint_and_fails(sandbox):
    sb = sandbox
    proc = _source(sb, FAKE_VENV_FAIL="1")
    assert proc.returncode != 0
    assert "apt-get install -y python3-venv" in proc.stderr
    assert "PY=" not in proc.stdout
    assert not (sb["root"] / ".venv").exists()        # the half-made venv is not left behind
    assert "pip" not in _log(sb)

    start = subprocess.run(["bash", "scripts/start.sh"], cwd=sb["root"],
                           env={**sb["env"], "FAKE_VENV_FAIL": "1"}, capture_output=True, text=True,
                           timeout=60)
    assert start.returncode != 0
    assert "apt-get install -y python3-venv" in start.stderr
    assert "endolite serve" not in _log(sb)


def test_env_sh_run_directly_fails_the_same_way(sandbox):
    sb = sandbox
    proc = subprocess.run(["bash", "scripts/env.sh"], cwd=sb["root"],
                          env={**sb["env"], "FAKE_VENV_FAIL": "1"}, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0
    assert "python3-venv" in proc.stderr


def test_too_old_python_is_named(sandbox):
    sb = sandbox
    proc = _source(sb, FAKE_OLD="1")
    assert proc.returncode != 0
    assert "Python >= 3.11" in proc.stderr and "3.9.2" in proc.stderr
    assert not (sb["root"] / ".venv").exists()


def test_failing_pip_names_the_build_packages_and_writes_no_stamp(sandbox):
    sb = sandbox
    venv = _fake_venv(sb, sb["root"] / ".venv", None)
    proc = _source(sb, FAKE_PIP_RC="1")
    assert proc.returncode != 0
    assert "apt-get install -y python3-dev gcc" in proc.stderr
    assert not (venv / ".endolite-installed").exists()   # the next start tries again


def test_active_virtualenv_is_used_instead_of_dot_venv(sandbox):
    sb = sandbox
    other = _fake_venv(sb, sb["tmp"] / "myenv", _stamp(sb["root"]))
    proc = _source(sb, VIRTUAL_ENV=str(other))
    assert proc.returncode == 0, proc.stderr
    assert _chosen(proc)["PY"] == str(other / "bin" / "python")
    assert not (sb["root"] / ".venv").exists()
    assert "pip" not in _log(sb)


def test_python3_running_inside_a_venv_is_used_without_virtual_env_set(sandbox):
    """A venv's python3 first on PATH (not activated): sys.prefix != sys.base_prefix picks it."""
    sb = sandbox
    real = sb["tmp"] / "realenv"
    subprocess.run([BASE_PYTHON, "-m", "venv", "--without-pip", str(real)], check=True, timeout=60)
    (real / ".endolite-installed").write_text(_stamp(sb["root"]) + "\n")
    env = {**sb["env"], "PATH": f"{real / 'bin'}:/usr/bin:/bin"}
    proc = subprocess.run(["bash", "-c", 'source scripts/env.sh && echo "PY=$PY"'], cwd=sb["root"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert _chosen(proc)["PY"] == str(real / "bin" / "python")
    assert not (sb["root"] / ".venv").exists()
