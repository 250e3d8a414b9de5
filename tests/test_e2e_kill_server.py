"""SIGKILL of the real dashboard process mid-work, in Chromium, then restarts.

1. An annotator starts a propagation over a long video (1500 frames) and the SAM embedding
   precompute (a random-weight vit_b dropped into ``data/models/sam/``) on the Annotate page;
   when the page shows both jobs running with progress (and an embedding is cached), the
   Streamlit process is killed with SIGKILL.
2. After a restart, a ~25 MB video is uploaded through the Upload page and the server is
   killed as soon as the import's file shows up in ``data/videos/`` (its staging folder in
   ``data/tmp/`` exists then; if the import wins the race, either outcome is accepted).

After each kill ``endolite check`` runs on a copy of the data dir (exit 0 or 1; the real dir is
left for the restart to recover), the server starts again and the annotator logs in.  Asserted:
the restart marked both jobs failed ("interrupted ... (at N%)", recorded in the audit log by
the restart itself) and emptied ``tmp/``; the Annotate page offers the precompute again and
counts only whole embeddings; ``check --repair`` then ``check`` exit 0; every file under a
real name in frames/, masks/, videos/ and cache/sam/ decodes; everything stored before the
first kill is unchanged, file for file and row for row.  (No page lists jobs, so after a
restart the failure is read from the database; the Annotate page only shows its consequences.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from endolite import annotate
from endolite.config import Settings
from endolite.extract import extract_frames
from endolite.ingest import ingest_paths
from endolite.records import Role
from endolite.segment import ENV_CHECKPOINT, ENV_MODEL, ENV_PRECISION
from endolite.storage import connect, labels
from endolite.synthetic import disc_center, disc_mask, write_disc_video, write_video
from tests.e2e_support import (ANNOTATOR, ANNOTATOR_PASSWORD, browser_page, dashboard_process, log_in,
                                wait_idle)
from tests.support import make_user
from tests.test_crash_safety import assert_whole_files, cli, snapshot
from tests.test_e2e_sam import _checkpoint

pytestmark = pytest.mark.e2e
H, W = 144, 192
PICKS = 8
INTERRUPTED = re.compile(r"interrupted: the server stopped while this job was running "
                         r"\(at (\d+)%\); start it again")


def _project(tmp_path: Path) -> Settings:
    """A data dir (closed) with ann, the label polyp, a 1500-frame video with 8 picks and a
    disc mask by ann on the first pick, and a random SAM vit_b in models/sam/."""
    settings = Settings.resolve(tmp_path / "data")
    video = write_disc_video(tmp_path / "long.mp4", 1500, gop=50)
    con = connect(settings)
    try:
        make_user(con, ANNOTATOR, Role.ANNOTATOR, ANNOTATOR_PASSWORD)
        labels.add(con, "polyp", color="#ff0000")
        [v] = ingest_paths(con, settings, [video], user=ANNOTATOR)
        first = extract_frames(con, settings, v.id, method="uniform", count=PICKS, context=0).picked[0]
        cx, cy = disc_center(first.frame_number, height=H, width=W, radius=H / 6)
        annotate.save_mask(con, settings, annotate.NewMask(first.id, disc_mask(H, W, cx, cy, H / 6)),
                           label="polyp", annotator=ANNOTATOR)
    finally:
        con.close()
    _checkpoint(settings.models_dir / "sam")
    return settings


def _open(page, name: str) -> None:
    """Go to page ``name`` through the sidebar once the current run is over (a click while a
    script runs is sometimes lost)."""
    wait_idle(page)
    page.get_by_role("link", name=name).click()
    page.get_by_role("heading", name=name).wait_for()


def _settle_canvas(page) -> None:
    """The Annotate page's canvas is mounted and the rerun it asks for is over."""
    page.locator("canvas.upper-canvas").first.wait_for()
    wait_idle(page)


def _kill(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _check_copy(data: Path, copy: Path) -> list[str]:
    """``endolite check`` on a copy of the killed server's data dir (exit 0 or 1); its lines."""
    shutil.copytree(data, copy, ignore=shutil.ignore_patterns("models"))
    r = cli(copy, "check")
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr, r.stdout + r.stderr
    return r.stdout.splitlines()


def _video_rows(data: Path) -> list[Path]:
    con = connect(Settings.resolve(data), read_only=True)
    try:
        return [Path(p) for (p,) in con.execute("SELECT path FROM videos").fetchall()]
    finally:
        con.close()


def _embeddings(settings: Settings) -> list[Path]:
    """The embeddings under their real names; each loads as (256, 64, 64) float16."""
    folder = settings.cache_dir / "sam" / "vit_b"
    whole = sorted(p for p in folder.glob("*.npy") if not p.name.startswith(".tmp-"))
    for path in whole:
        features = np.load(path, allow_pickle=False)
        assert features.dtype == np.float16 and features.shape == (256, 64, 64), path
        assert json.loads(path.with_suffix(".json").read_text())["shape"] == [256, 64, 64]
    return whole


def test_sigkill_of_the_dashboard_mid_jobs_and_mid_upload(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_CHECKPOINT, raising=False)   # the data folder is how SAM is found
    monkeypatch.delenv(ENV_MODEL, raising=False)
    # not about precision: skip the one-off fp32 / bf16 measurement of the first embedding
    monkeypatch.setenv(ENV_PRECISION, "fp32")
    settings = _project(tmp_path)
    data = settings.data_dir
    before = snapshot(data)
    rng = np.random.default_rng(0)                       # noise: ~25 MB of lossless H.264
    upload = write_video(tmp_path / "big.mp4", [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
                                                for _ in range(45)], options={"crf": "0"})
    assert upload.stat().st_size > 20e6

    with browser_page(tmp_path) as page:
        # --- kill 1: propagation + SAM precompute running ------------------------------------
        with dashboard_process(data, tmp_path / "server1.log") as (url, proc):
            log_in(page, url, ANNOTATOR, ANNOTATOR_PASSWORD)
            _open(page, "Annotate")
            page.get_by_text(f"Embeddings ready for 0 of {PICKS} frames").wait_for()
            _settle_canvas(page)
            page.get_by_role("button", name="Propagate", exact=True).click()
            page.get_by_role("button", name="Start propagation").wait_for()
            wait_idle(page)
            page.get_by_role("button", name="Start propagation").click()
            page.get_by_text(re.compile(r"Propagating: forward: frame \d+")).wait_for()
            wait_idle(page)
            page.get_by_role("button", name="Precompute embeddings").click()
            page.get_by_text(re.compile(rf"Embedding frames \(running\): [1-9]\d* / {PICKS} frames")
                             ).wait_for(timeout=120_000)
            page.get_by_text(re.compile(r"Propagating: forward: frame \d+")).wait_for()
            _kill(proc)
        cached = _embeddings(settings)
        assert 1 <= len(cached) < PICKS
        lines = _check_copy(data, tmp_path / "copy1")
        recovered = {m.group(2): m.group(3) for m in map(
            re.compile(r"on opening: marked job (\d+) \((\w+)\) failed: (.*)").match, lines) if m}
        assert set(recovered) == {"propagate", "embed"}, lines
        assert all(INTERRUPTED.fullmatch(message) for message in recovered.values()), lines

        with dashboard_process(data, tmp_path / "server2.log") as (url, proc):
            assert not any(settings.tmp_dir.iterdir())
            log_in(page, url, ANNOTATOR, ANNOTATOR_PASSWORD)
            _open(page, "Annotate")
            page.get_by_text(f"Embeddings ready for {len(cached)} of {PICKS} frames").wait_for()
            page.get_by_role("button", name="Precompute embeddings").wait_for()
            page.get_by_text("Masks on this frame (1)").wait_for()       # nothing propagated
            _settle_canvas(page)

            # --- kill 2: a browser upload mid-import --------------------------------------------
            _open(page, "Upload")
            page.locator(".st-key-upload_files input[type=file]").set_input_files(str(upload))
            page.get_by_text("big.mp4").first.wait_for()
            wait_idle(page)                            # the upload's rerun: it reached the server
            videos_before = set(settings.videos_dir.iterdir())
            page.get_by_role("button", name="Import").click()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and set(settings.videos_dir.iterdir()) == videos_before:
                time.sleep(0.001)
            staged = [p.name for p in settings.tmp_dir.iterdir()]
            _kill(proc)
        caught = [p.name for p in set(settings.videos_dir.iterdir()) - videos_before]
        print(f"upload killed with tmp/ {staged}, new in videos/ {caught}")
        lines = _check_copy(data, tmp_path / "copy2")
        assert not staged or "on opening: removed 1 leftover(s) from tmp/" in lines, lines
        for name in caught:                  # a copy cut short, or a video whose row never came
            assert name in {v.name for v in _video_rows(tmp_path / "copy2")} or any(
                line.startswith("orphan_file") and line.split()[1] == f"videos/{name}"
                for line in lines), (name, lines)

        with dashboard_process(data, tmp_path / "server3.log") as (url, proc):
            assert not any(settings.tmp_dir.iterdir()), "the restart empties tmp/"
            log_in(page, url, ANNOTATOR, ANNOTATOR_PASSWORD)

    # the server is stopped: read what the restarts recorded
    con = connect(settings, read_only=True)
    try:
        jobs = con.execute("SELECT id, kind, status, message FROM jobs ORDER BY id").fetchall()
        recoveries = [json.loads(d) for (d,) in con.execute(
            "SELECT details FROM audit_log WHERE action = 'recover' ORDER BY id").fetchall()]
    finally:
        con.close()
    assert {kind for _, kind, _, _ in jobs} == {"propagate", "embed"}, jobs
    for _, kind, status, message in jobs:
        match = INTERRUPTED.fullmatch(message)
        assert status == "failed" and match and int(match.group(1)) > 0, (kind, message)
        if kind == "embed":
            assert int(match.group(1)) >= 100 // PICKS, message   # the page showed 1 frame done
    assert recoveries[0]["interrupted_jobs"] == [j[0] for j in jobs], "the first restart did it"

    fixed = cli(data, "check", "--repair")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    final = cli(data, "check")
    assert final.returncode == 0 and final.stdout.startswith("ok: the database and data/ agree"), \
        final.stdout + final.stderr
    assert_whole_files(data)
    assert _embeddings(settings) == cached
    files, rows = snapshot(data)
    old_files, old_rows = before
    assert {k: files.get(k) for k in old_files} == old_files
    for table, old in old_rows.items():
        by_id = {r[0]: r for r in rows[table]}
        assert [by_id.get(r[0]) for r in old] == old, table
