"""kill -9 at awkward moments, on real processes and real files (no mocks).

The CLI (``python -m endolite.cli --data DIR ...``) ingests a video, extracts frames from a
long synthetic video and propagates a mask; each run is killed with SIGKILL at several moments
(soon after it starts, or when its files start to appear).  Afterwards:

* opening the data dir leaves no job queued / running;
* ``endolite check``, ``check --repair``, ``check`` ends with exit 0;
* no file under a real name is half written (every frame / mask image decodes, every video
  probes and decodes with PyAV);
* nothing stored before the run changed (files byte for byte, rows value for value).

Jobs are threads of the dashboard process, so job recovery is tested on a child Python
process that holds the connection while a ``jobs.start`` thread runs, killed with SIGKILL.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from endolite import annotate
from endolite.annotate import NewMask
from endolite.config import Settings
from endolite.extract import extract_frames
from endolite.ingest import ingest_paths
from endolite.storage import connect, labels
from endolite.storage import jobs as job_store
from endolite.storage import media as media_store
from endolite.synthetic import disc_center, disc_mask, write_disc_video

ROOT = Path(__file__).resolve().parents[1]
H, W = 144, 192
ROW_TABLES = {"videos": "id", "frames": "id", "extractions": "id", "masks": "id", "labels": "id"}


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("ENDOLITE_DATA", "ENDOLITE_USER")}


def cli(data: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "endolite.cli", "--data", str(data), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, env=env(), timeout=300)


# --- the base data directory: a long video, frames, a mask -------------------------------------

@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict:
    """A data dir (closed) with the long video ingested, 10 picks (+2 context each) and a mask
    on a middle pick; plus a second video file not yet ingested."""
    folder = tmp_path_factory.mktemp("crash")
    long_video = write_disc_video(folder / "long.mp4", 750, gop=50)
    other = write_disc_video(folder / "other.mp4", 300, gop=25, seed=5)
    settings = Settings.resolve(folder / "base")
    con = connect(settings)
    [v] = ingest_paths(con, settings, [long_video], user="alice")
    picked = extract_frames(con, settings, v.id, method="uniform", count=10, context=2).picked
    labels.add(con, "polyp")
    f = picked[4]
    cx, cy = disc_center(f.frame_number, height=H, width=W, radius=H / 6)
    mask = annotate.save_mask(con, settings, NewMask(frame_id=f.id, mask=disc_mask(H, W, cx, cy, H / 6)),
                              label="polyp", annotator="alice")
    target = picked[6]                       # propagation stops here (two picks later)
    con.close()
    return {"dir": settings.data_dir, "video_id": v.id, "mask_id": mask.id, "to": target.id,
            "other": other}


def fresh_copy(base: dict, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(base["dir"], data)
    return data


def snapshot(data: Path) -> tuple[dict[str, str], dict[str, list]]:
    """(file -> sha256 for every file but the database, rows of the stored tables by id)."""
    files = {}
    for p in sorted(data.rglob("*")):
        if p.is_file() and not p.name.startswith("endolite.duckdb"):
            files[p.relative_to(data).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    con = connect(Settings.resolve(data))
    try:
        rows = {t: con.execute(f"SELECT * FROM {t} ORDER BY {key}").fetchall()
                for t, key in ROW_TABLES.items()}
    finally:
        con.close()
    return files, rows


def kill_when(argv: list[str], ready: Callable[[], bool], *, timeout: float = 60.0) -> bool:
    """Start ``endolite`` with ``argv``; SIGKILL it as soon as ``ready()`` holds (polled every
    millisecond).  Returns whether it was killed (False: it finished first)."""
    proc = subprocess.Popen([sys.executable, "-m", "endolite.cli", *map(str, argv)], cwd=ROOT, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if ready():
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.001)
        assert proc.poll() is not None, f"{argv} still running after {timeout} s"
        assert proc.returncode == 0, proc.stderr.read().decode()
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def after(seconds: float) -> Callable[[], bool]:
    start = time.monotonic()
    return lambda: time.monotonic() - start >= seconds


def files_appear(folder: Path, pattern: str, count: int = 1) -> Callable[[], bool]:
    before = set(folder.glob(pattern)) if folder.is_dir() else set()

    def ready() -> bool:
        if not folder.is_dir():
            return False
        return len(set(folder.glob(pattern)) - before) >= count

    return ready


def assert_whole_files(data: Path) -> None:
    """Every image / video under a real name decodes (temporary .tmp-* names may be partial)."""
    import av

    from endolite.media import probe

    for p in sorted((data / "frames").rglob("*")) + sorted((data / "masks").rglob("*")):
        if p.is_file() and not p.name.startswith(".tmp-"):
            with Image.open(p) as im:
                im.load()
    for p in sorted((data / "videos").iterdir()):
        if p.is_file() and not p.name.startswith(".tmp-"):
            info = probe(p)
            assert info.frame_count > 0, p
            with av.open(str(p)) as container:
                assert next(container.decode(video=0)).width == info.width


def assert_recovers(data: Path, before: tuple[dict, dict]) -> None:
    assert_whole_files(data)
    con = connect(Settings.resolve(data))
    try:
        left = con.execute("SELECT id, kind FROM jobs WHERE status IN ('queued', 'running')").fetchall()
        assert left == []
    finally:
        con.close()
    first = cli(data, "check")
    assert first.returncode in (0, 1), first.stderr
    assert "Traceback" not in first.stderr
    fixed = cli(data, "check", "--repair")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    final = cli(data, "check")
    assert final.returncode == 0, final.stdout + final.stderr
    assert final.stdout.startswith("ok: the database and data/ agree")
    files, rows = snapshot(data)
    old_files, old_rows = before
    assert {k: files.get(k) for k in old_files} == old_files          # every old file, unchanged
    for table, old in old_rows.items():
        by_id = {r[0]: r for r in rows[table]}
        assert [by_id.get(r[0]) for r in old] == old, table            # every old row, unchanged


# --- kill -9 during CLI commands ---------------------------------------------------------------

def scenario(base: dict, data: Path, command: str, moment: str) -> tuple[list, Callable[[], bool], bool]:
    """(arguments, when to kill, whether the kill must land before the command ends)."""
    frames = data / "frames" / f"video_{base['video_id']}"
    argv = {"ingest": ["ingest", base["other"]],
            "extract": ["extract", base["video_id"], "--count", "40", "--method", "random",
                        "--seed", "7"],
            "propagate": ["propagate", base["mask_id"], "--direction", "forward", "--to", base["to"]],
            }[command]
    ready = {("ingest", "later"): after(0.8),
             # the video file is in place (or still under its .tmp- name), its row not yet
             ("ingest", "placed"): files_appear(data / "videos", "*.mp4"),
             ("extract", "first_frame"): files_appear(frames, "frame_*.jpg"),
             ("extract", "half"): files_appear(frames, "frame_*.jpg", count=60),
             ("propagate", "walking"): after(1.5),
             ("propagate", "saving"): files_appear(data / "masks", "frame_*/mask_*.png"),
             }.get((command, moment)) or after(0.3)
    return argv, ready, moment == "early" or command == "extract"


@pytest.mark.parametrize("command, moment", [
    ("ingest", "early"), ("ingest", "later"), ("ingest", "placed"),
    ("extract", "early"), ("extract", "first_frame"), ("extract", "half"),
    ("propagate", "early"), ("propagate", "walking"), ("propagate", "saving")])
def test_kill_9_during_a_cli_command(base, tmp_path, command, moment):
    data = fresh_copy(base, tmp_path)
    before = snapshot(data)
    argv, ready, must_kill = scenario(base, data, command, moment)
    killed = kill_when(["--data", str(data), *argv], ready)
    assert killed or not must_kill
    assert_recovers(data, before)
    if killed and command in ("extract", "propagate") and moment != "early":
        con = connect(Settings.resolve(data))   # the killed command's job row: failed, with why
        try:
            rows = con.execute("SELECT status, message FROM jobs WHERE kind = ?", [command]).fetchall()
        finally:
            con.close()
        # a command that may finish before the kill (must_kill False: propagation's walk can
        # end within its 1.5 s on a fast machine) may have recorded "done"; any other row is
        # failed with the reason, and a command that had to be killed left no "done"
        assert rows and all(status == "failed" and message.startswith("interrupted")
                            or (status == "done" and not must_kill)
                            for status, message in rows), rows


# --- jobs of a process that stopped ------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys, time
    from endolite import jobs
    from endolite.config import Settings
    from endolite.storage import connect

    settings = Settings.resolve(sys.argv[1])
    con = connect(settings)
    staging = settings.tmp_dir / "upload-child"
    staging.mkdir()
    (staging / "video.mp4.part").write_bytes(b"half an upload")

    def work(cur, progress):
        for i in range(10_000):
            progress(i / 1000, f"step {i}")
            time.sleep(0.01)
        return {"steps": i}

    job = jobs.start(con, "slow", work, params={"n": 1000}, created_by="alice")
    print(job.id, flush=True)
    time.sleep(600)
""")


def test_kill_9_of_a_process_running_a_job_thread(settings, tmp_path):
    connect(settings).close()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen([sys.executable, str(script), str(settings.data_dir)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True, env=env())
    try:
        job_id = int(proc.stdout.readline())
        time.sleep(1.5)                                 # progress is saved every 0.5 s
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert (settings.tmp_dir / "upload-child").is_dir()

    con = connect(settings)
    try:
        job = job_store.get(con, job_id)
        assert job.status == "failed"
        assert job.message.startswith("interrupted: the server stopped while this job was running (at ")
        assert job.message.endswith("%); start it again") and 0.0 < job.progress < 1.0
        assert f"(at {round(job.progress * 100)}%)" in job.message
        assert not any(settings.tmp_dir.iterdir())      # staging of the dead process is gone
        from endolite.storage.db import last_recovery

        assert [j.id for j in last_recovery(settings).jobs] == [job_id]
    finally:
        con.close()
    r = cli(settings.data_dir, "check")
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_job_row_left_queued_by_a_process_that_exited(settings, tmp_path):
    code = ("import sys\nfrom endolite.config import Settings\nfrom endolite.storage import connect\n"
            "from endolite.storage import jobs\n"
            "con = connect(Settings.resolve(sys.argv[1]))\n"
            "a = jobs.create(con, 'extract')\nb = jobs.create(con, 'embed')\n"
            "jobs.update(con, b.id, status='running', progress=0.25)\n"
            "c = jobs.create(con, 'done')\njobs.update(con, c.id, status='done', progress=1.0)\n"
            "con.close()\n")
    subprocess.run([sys.executable, "-c", code, str(settings.data_dir)], check=True, cwd=ROOT, env=env())
    con = connect(settings)
    try:
        a, b, c = (job_store.get(con, i) for i in (1, 2, 3))
        assert a.status == b.status == "failed" and c.status == "done"
        assert a.message == "interrupted: the server stopped before this job started; start it again"
        assert b.message == ("interrupted: the server stopped while this job was running (at 25%); "
                             "start it again")
    finally:
        con.close()


def test_a_second_connection_of_the_same_process_leaves_its_jobs_and_tmp_alone(settings):
    import threading

    from endolite import jobs

    con = connect(settings)
    release = threading.Event()
    staging = settings.tmp_dir / "upload-live"
    staging.mkdir()

    def work(cur, progress):
        progress(0.5, "waiting")
        release.wait(30)
        return {"ok": True}

    job = jobs.start(con, "live", work)
    second = connect(settings)                  # e.g. a page opening its own connection
    try:
        assert job_store.get(second, job.id).status in ("queued", "running")
        assert staging.is_dir()
        release.set()
        assert jobs.wait(con, job.id, timeout=30).status == "done"
    finally:
        release.set()
        for thread in threading.enumerate():     # its last read may still run: let it end first
            if thread.name == f"endolite-job-{job.id}":
                thread.join(timeout=30)
        second.close()
        con.close()


def test_frames_and_masks_written_by_a_killed_run_are_the_only_orphans(base, tmp_path):
    """What repair removes after a kill mid-extraction: files no row refers to, nothing else."""
    data = fresh_copy(base, tmp_path)
    folder = data / "frames" / f"video_{base['video_id']}"
    stored_before = {p.name for p in folder.iterdir()}
    assert kill_when(["--data", str(data), "extract", base["video_id"], "--count", "40", "--method",
                      "random", "--seed", "11"], files_appear(folder, "frame_*.jpg", count=5))
    new = {p.name for p in folder.iterdir()} - stored_before
    assert len(new) >= 5
    r = cli(data, "check")
    assert r.returncode == 1
    listed = {line.split()[1].rsplit("/", 1)[-1] for line in r.stdout.splitlines()
              if line.startswith("orphan_file")}
    assert listed == new
    assert cli(data, "check", "--repair").returncode == 0
    assert {p.name for p in folder.iterdir()} == stored_before
    con = connect(Settings.resolve(data))
    try:
        assert len(media_store.frames_of(con, video_id=base["video_id"])) == len(stored_before)
    finally:
        con.close()
