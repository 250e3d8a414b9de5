"""A full disk and a read-only data directory, on real processes (no mocks).

Disk full is simulated with RLIMIT_FSIZE in the child (Python ignores SIGXFSZ, so a write past
the limit fails with EFBIG).  The limit is set above the database file's size: a real full
disk still lets a process overwrite the blocks a file already has, and only refuses growth,
whereas a limit below the file's size would also fail writes inside the existing database
(DuckDB then reports a corrupt file: not what a full disk does).  The big files are frames
and videos of random noise, 2560x1440, so they cannot be compressed below the limit.

Read-only: as root, chmod alone does not stop writes, so the child runs without the right
to override file permissions (as user nobody when that user can run this interpreter, else
as root with CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH / CAP_FOWNER dropped from its bounding
set), on a data directory owned by root with folders 0555 and files 0444.

Each failure must exit non-zero with one clear ``error:`` (or ``rejected``) line naming the
cause and no traceback; afterwards the data directory opens, everything stored before is
intact, and ``endolite check --repair`` leaves it clean.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from endolite import annotate
from endolite.annotate import NewMask
from endolite.config import Settings
from endolite.extract import extract_frames
from endolite.ingest import ingest_paths
from endolite.storage import connect, labels
from endolite.synthetic import disc_mask, write_video

ROOT = Path(__file__).resolve().parents[1]
MARGIN = 1 << 20          # room above the database's size for its WAL and a checkpoint
NOBODY = 65534


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("ENDOLITE_DATA", "ENDOLITE_USER")}


def cli(data: Path, *args, preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "endolite.cli", "--data", str(data), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, env=env(), timeout=300,
                          preexec_fn=preexec)


H, W = 1440, 2560        # a noise frame: ~10 MB as PNG, ~2.3 MB in the H.264 stream


def noise_video(path: Path, frames: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    return write_video(path, [rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
                              for _ in range(frames)], gop=frames)


def snapshot(data: Path) -> dict[str, str]:
    """sha256 of every file of the data dir (the database included)."""
    return {p.relative_to(data).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(data.rglob("*")) if p.is_file()}


def rows(data: Path) -> dict[str, list]:
    con = connect(Settings.resolve(data))
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY id").fetchall()
                for t in ("videos", "frames", "extractions", "masks", "labels")}
    finally:
        con.close()


def clear_error(r: subprocess.CompletedProcess, *words: str) -> str:
    """The one line (``error: ...`` on stderr, or a ``rejected`` line) that names the cause."""
    assert r.returncode != 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    lines = [line for line in (r.stderr + r.stdout).splitlines()
             if line.startswith(("error:", "rejected"))]
    assert len(lines) == 1, r.stdout + r.stderr
    assert any(w in lines[0] for w in words), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> dict:
    """A data dir holding a noise video, one JPEG frame of it and a mask (closed)."""
    folder = tmp_path_factory.mktemp("disk")
    first = noise_video(folder / "first.mp4", 4, seed=1)
    second = noise_video(folder / "second.mp4", 4, seed=2)
    settings = Settings.resolve(folder / "base")
    con = connect(settings)
    [v] = ingest_paths(con, settings, [first], user="alice")
    [frame] = extract_frames(con, settings, v.id, method="uniform", count=1, context=0).picked
    labels.add(con, "polyp")
    annotate.save_mask(con, settings, NewMask(frame_id=frame.id, mask=disc_mask(H, W, 900, 500, 200)),
                       label="polyp", annotator="alice")
    con.close()
    return {"dir": settings.data_dir, "video_id": v.id, "second": second}


def copy_of(stored: dict, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(stored["dir"], data)
    return data


# --- disk full (RLIMIT_FSIZE) -----------------------------------------------------------------

def size_limit(data: Path) -> int:
    return max(p.stat().st_size for p in data.glob("endolite.duckdb*")) + MARGIN


def limited(limit: int):
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def assert_intact_and_clean(data: Path, before_rows: dict, before_files: dict) -> None:
    assert rows(data) == before_rows                     # it opens; every row as it was
    files = snapshot(data)
    assert {k: files.get(k) for k in before_files if not k.startswith("endolite.duckdb")} == {
        k: v for k, v in before_files.items() if not k.startswith("endolite.duckdb")}
    r = cli(data, "check", "--repair")
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli(data, "check")
    assert r.returncode == 0 and r.stdout.startswith("ok: "), r.stdout + r.stderr


def test_ingest_of_a_video_larger_than_the_file_size_limit(stored, tmp_path):
    data = copy_of(stored, tmp_path)
    before_rows, before_files = rows(data), snapshot(data)
    limit = size_limit(data)
    assert stored["second"].stat().st_size > limit       # the copy into videos/ must hit it

    r = cli(data, "ingest", stored["second"], preexec=limited(limit))
    line = clear_error(r, "file size limit", "disk is full")
    assert line.startswith("rejected") and "second.mp4" in line
    assert sorted(f"videos/{p.name}" for p in (data / "videos").iterdir()) == [
        p for p in before_files if p.startswith("videos/")]      # no partial copy left behind
    assert_intact_and_clean(data, before_rows, before_files)


def test_extraction_of_frames_larger_than_the_file_size_limit(stored, tmp_path):
    data = copy_of(stored, tmp_path)
    before_rows, before_files = rows(data), snapshot(data)
    frames_before = sorted((data / "frames").rglob("*"))
    assert 0.8 * 3 * H * W > size_limit(data), "a PNG frame must be larger than the limit"

    r = cli(data, "extract", stored["video_id"], "--count", "3", "--context", "0", "--format", "png",
            preexec=limited(size_limit(data)))
    assert r.returncode == 2
    line = clear_error(r, "file size limit", "disk is full")
    assert line.startswith("error: ") and r.stderr.count("\n") == 1
    assert sorted((data / "frames").rglob("*")) == frames_before   # written frames were removed
    assert_intact_and_clean(data, before_rows, before_files)


# --- read-only data directory -----------------------------------------------------------------

_CAP_BSET_DROP = 24                 # prctl(PR_CAPBSET_DROP, cap)
_DAC_CAPS = (0, 1, 2, 3, 4)         # CHOWN, DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER, FSETID


def _as_nobody() -> None:
    os.setgid(NOBODY)
    os.setgroups([])
    os.setuid(NOBODY)


def _without_dac_override() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in _DAC_CAPS:
        if libc.prctl(_CAP_BSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def unprivileged():
    """A preexec_fn that takes away the right to write files the permissions forbid."""
    if os.geteuid() != 0:
        return None
    try:
        probe = subprocess.run([sys.executable, "-c", "import endolite"], cwd=ROOT, env=env(),
                               preexec_fn=_as_nobody, capture_output=True)
    except PermissionError:          # the interpreter lies below a folder nobody cannot enter
        return _without_dac_override
    return _as_nobody if probe.returncode == 0 else _without_dac_override


@pytest.fixture
def read_only_data(stored):
    """A copy of the stored data dir, owned by root, folders 0555, files 0444, below a
    folder everyone can traverse."""
    top = Path(tempfile.mkdtemp(prefix="endolite-ro-"))
    top.chmod(0o755)
    data = top / "data"
    shutil.copytree(stored["dir"], data)
    for p in sorted(data.rglob("*"), reverse=True) + [data]:
        if os.geteuid() == 0:
            os.chown(p, 0, 0)
        p.chmod(0o555 if p.is_dir() else 0o444)
    yield data
    for p in [data, *data.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    shutil.rmtree(top)


@pytest.mark.parametrize("argv", [["ingest", "VIDEO"], ["extract", "VIDEO_ID", "--count", "2"],
                                  ["check", "--repair"]])
def test_read_only_data_directory(stored, read_only_data, argv):
    data = read_only_data
    before = snapshot(data)
    times = {p: p.stat().st_mtime_ns for p in data.rglob("*")}
    argv = [{"VIDEO": stored["second"], "VIDEO_ID": stored["video_id"]}.get(a, a) for a in argv]
    r = cli(data, *argv, preexec=unprivileged())
    line = clear_error(r, "permission denied", "read-only", "not writable")
    assert line.startswith("error: ") and "endolite.duckdb" in line and r.returncode == 2
    assert snapshot(data) == before
    assert {p: p.stat().st_mtime_ns for p in data.rglob("*")} == times
    assert not (data / "endolite.duckdb.wal").exists() or "endolite.duckdb.wal" in before


def test_a_database_file_that_is_not_writable_is_named_in_the_error(stored, tmp_path):
    """In-process: connect raises StorageError naming the file and the cause (no traceback
    material for the CLI to print)."""
    from endolite.errors import StorageError

    data = copy_of(stored, tmp_path)
    db = data / "endolite.duckdb"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match=r"endolite\.duckdb cannot be opened for writing"):
        connect(Settings.resolve(data))
    r = cli(data, "videos")
    assert r.returncode == 2 and r.stderr.startswith(f"error: the database {db}")
    assert "Traceback" not in r.stderr
    assert stat.S_ISREG(db.stat().st_mode)
