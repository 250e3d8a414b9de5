"""Maintenance on real DuckDB files and real files in tmp: ``check`` finds every kind of
disagreement between the database and data/, ``repair`` fixes the safe ones and nothing else,
``backup`` / ``restore`` round-trip a data directory (also while another thread saves masks).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from endolite import annotate
from endolite.annotate import NewMask
from endolite.config import Settings
from endolite.errors import InvalidInput
from endolite.extract import extract_frames
from endolite.ingest import ingest_paths
from endolite.maintenance import ProblemKind, backup, check, repair, restore
from endolite.maintenance.check import _mask_relative
from endolite.media import encode_image
from endolite.storage import connect, labels
from endolite.storage import jobs as job_store
from endolite.synthetic import disc_mask, write_disc_video

TABLES = ("videos", "frames", "image_groups", "masks", "extractions", "labels", "jobs")


def counts(con) -> dict[str, int]:
    return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def files_of(data: Path, tops=("videos", "frames", "masks", "models")) -> dict[str, bytes]:
    out = {}
    for top in tops:
        for p in sorted((data / top).rglob("*")):
            if p.is_file():
                out[p.relative_to(data).as_posix()] = p.read_bytes()
    return out


def populate(con, settings: Settings, tmp: Path) -> dict:
    """A video with 10 extracted frames, an image group (PNG + BMP), 3 masks (one deleted)."""
    video = write_disc_video(tmp / "disc.mp4", 50, gop=25)
    [v] = ingest_paths(con, settings, [video], user="alice")
    extracted = extract_frames(con, settings, v.id, method="uniform", count=4, context=1)
    folder = tmp / "stills"
    folder.mkdir()
    rng = np.random.default_rng(1)
    (folder / "a.png").write_bytes(encode_image(rng.integers(0, 255, (60, 80, 3), np.uint8), fmt="png"))
    Image.fromarray(rng.integers(0, 255, (60, 80, 3), np.uint8)).save(folder / "b.bmp")
    [g] = ingest_paths(con, settings, [folder], user="alice")
    assert g.status == "imported", g.reason
    labels.add(con, "polyp")
    f0, f1 = extracted.picked[0], extracted.picked[1]
    made = [annotate.save_mask(con, settings, NewMask(frame_id=f.id, mask=disc_mask(f.height, f.width, 60, 50, r)),
                               label="polyp", annotator="alice") for f, r in ((f0, 20), (f1, 25), (f1, 10))]
    annotate.delete_masks(con, [made[2].id], by="alice")
    return {"video_id": v.id, "group_id": g.id, "frames": extracted.picked, "masks": made}


@pytest.fixture
def filled(con, settings, tmp_path):
    return populate(con, settings, tmp_path)


def kinds(report) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in report.problems:
        out.setdefault(str(p.kind), []).append(p.path_or_id)
    return out


def test_mask_png_name_is_annotates():
    settings = Settings.resolve("/x")
    assert (settings.data_dir / _mask_relative(3, 7)) == annotate.mask_png_path(settings, 3, 7)


def test_a_consistent_data_dir_checks_clean(con, settings, filled):
    report = check(con, settings, grace_s=0)
    assert report.ok, report.problems
    assert report.checked["frames"] >= 10 and report.checked["masks"] == 3
    assert report.checked["videos"] == 1 and report.checked["files"] > 10
    bmp_view = [p for p in settings.group_frames_dir(filled["group_id"]).iterdir() if p.suffix == ".png"]
    assert len(bmp_view) == 2                     # a.png and the browser copy of b.bmp


def test_check_finds_each_problem_and_repair_fixes_only_the_safe_ones(con, settings, filled):
    frames, masks = filled["frames"], filled["masks"]
    # what a kill -9 leaves: orphans under real names and temporary names, tmp leftovers, a job
    orphan_frame = settings.video_frames_dir(filled["video_id"]) / "frame_9999.jpg"
    orphan_frame.write_bytes(b"not a committed frame")
    orphan_dir = settings.frames_dir / "group_77"
    orphan_dir.mkdir()
    (orphan_dir / "x.png").write_bytes(b"png")
    orphan_mask = settings.masks_dir / "frame_4242" / "mask_999.png"
    orphan_mask.parent.mkdir()
    orphan_mask.write_bytes(b"png")
    half = settings.videos_dir / ".tmp-abc123.mp4"
    half.write_bytes(b"half a video")
    half_embedding = settings.cache_dir / "sam" / "vit_b" / ".tmp-9f.npy"     # killed mid-write
    half_embedding.parent.mkdir(parents=True)
    half_embedding.write_bytes(b"half an embedding")
    kept_embedding = half_embedding.parent / "9f.npy"
    kept_embedding.write_bytes(b"a whole one (no row refers to cache files)")
    (settings.tmp_dir / "ingest-0001").mkdir()
    (settings.tmp_dir / "ingest-0001" / "member.png").write_bytes(b"staged")
    (settings.tmp_dir / "upload.part").write_bytes(b"partial")
    job = job_store.create(con, "extract")
    job_store.update(con, job.id, status="running", progress=0.37)
    con.execute("UPDATE jobs SET owner = 'otherhost:1:dead' WHERE id = ?", [job.id])
    before_rows = counts(con)
    # mask mirrors: one gone, one with other pixels; the deleted mask's PNG stays valid
    gone = annotate.mask_png_path(settings, masks[0].frame_id, masks[0].id)
    gone.unlink()
    wrong = annotate.mask_png_path(settings, masks[1].frame_id, masks[1].id)
    from endolite import masks as rle

    wrong.write_bytes(rle.to_png(np.ones((masks[1].height, masks[1].width), bool)))
    deleted_png = annotate.mask_png_path(settings, masks[2].frame_id, masks[2].id)
    # what a person must fix: a frame file gone, one edited, a video truncated
    missing_frame = settings.absolute(frames[2].path)
    missing_frame.unlink()
    edited_frame = settings.absolute(frames[3].path)
    edited_frame.write_bytes(edited_frame.read_bytes() + b"\0")
    video_path = next(settings.videos_dir.glob("*.mp4"))
    video_path.write_bytes(video_path.read_bytes()[:-100])

    report = check(con, settings, grace_s=0)
    found = kinds(report)
    rel = lambda p: p.relative_to(settings.data_dir).as_posix()  # noqa: E731
    assert found["orphan_file"] == sorted([rel(orphan_frame), rel(orphan_dir / "x.png"),
                                          rel(orphan_mask), rel(half), rel(half_embedding)])
    assert found["tmp_leftover"] == ["tmp/ingest-0001", "tmp/upload.part"]
    assert found["stale_job"] == [f"job {job.id}"]
    assert found["mask_png_missing"] == [rel(gone)]
    assert found["mask_png_differs"] == [rel(wrong)]
    assert found["frame_missing"] == [frames[2].path]
    assert found["frame_changed"] == [frames[3].path]
    assert found["video_changed"] == [rel(video_path)]
    assert not report.ok and len(report.repairable) == 10

    done = repair(con, settings, report)
    assert any(f"removed orphaned file {rel(orphan_frame)}" in line for line in done)
    assert f"removed empty folder {rel(orphan_dir)}" in done
    assert f"wrote {rel(gone)} from mask {masks[0].id} in the database" in done
    assert any(line.startswith(f"marked job {job.id} (extract) failed: interrupted") for line in done)
    assert len(done) == 12                            # 5 orphans, 2 folders, 2 tmp, 2 PNGs, 1 job
    assert kept_embedding.is_file() and not half_embedding.exists()
    after = check(con, settings, grace_s=0)
    assert sorted(kinds(after)) == ["frame_changed", "frame_missing", "video_changed"]
    assert all(not p.repairable for p in after.problems)
    # repaired: the PNGs hold the database's masks again; the deleted mask's PNG was kept
    for m in masks[:2]:
        png = rle.from_image_file(annotate.mask_png_path(settings, m.frame_id, m.id))
        assert np.array_equal(png, annotate.load_mask(m))
    assert deleted_png.is_file()
    assert not any(settings.tmp_dir.iterdir())
    got = job_store.get(con, job.id)
    assert got.status == "failed" and "(at 37%)" in got.message
    # nothing a row refers to was deleted, and no row was deleted
    assert edited_frame.is_file() and video_path.is_file()
    assert counts(con) == before_rows


def test_recent_files_are_not_judged_within_the_grace_period(con, settings, filled):
    orphan = settings.video_frames_dir(filled["video_id"]) / "frame_9999.jpg"
    orphan.write_bytes(b"written just now by a write still in flight")
    (settings.tmp_dir / "upload-1").mkdir()
    report = check(con, settings)                 # default grace: an hour
    assert report.ok and report.recent == 2
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    # ctime cannot be set back: the grace period looks at both, so it is still recent
    assert check(con, settings, grace_s=3600).recent == 2
    assert [p.path_or_id for p in check(con, settings, grace_s=0).problems] == [
        orphan.relative_to(settings.data_dir).as_posix(), "tmp/upload-1"]


def test_jobs_of_this_process_are_not_stale(con, settings):
    job = job_store.create(con, "embed")
    job_store.update(con, job.id, status="running")
    assert check(con, settings, grace_s=0).ok


def test_backup_and_restore_round_trip(con, settings, filled, tmp_path):
    (settings.models_dir / "sam").mkdir()
    (settings.models_dir / "sam" / "tiny.pth").write_bytes(os.urandom(4096))
    (settings.cache_dir / "sam" / "vit_b").mkdir(parents=True)
    (settings.cache_dir / "sam" / "vit_b" / "abc.npy").write_bytes(b"embedding")
    (settings.exports_dir / "old.zip").write_bytes(b"zip")
    result = backup(con, settings, tmp_path / "backup")
    rows = counts(con)
    assert result.tables["masks"] == 3 and result.tables["frames"] == rows["frames"]
    assert not result.missing
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert manifest["tables"] == result.tables and manifest["files"] == result.files
    assert manifest["bytes"] == result.bytes == sum(len(b) for b in files_of(tmp_path / "backup").values())
    assert not (tmp_path / "backup" / "cache" / "sam").exists()
    assert not (tmp_path / "backup" / "exports").exists()

    restored = restore(tmp_path / "backup", tmp_path / "restored")
    assert restored.report.ok, restored.report.problems
    assert restored.tables == result.tables
    assert files_of(tmp_path / "restored") == files_of(settings.data_dir)
    again = connect(Settings.resolve(tmp_path / "restored"))
    try:
        assert counts(again) == rows
        # sequences carried over: a new mask gets a fresh id in the restored copy
        f = filled["frames"][0]
        m = annotate.save_mask(again, Settings.resolve(tmp_path / "restored"),
                               NewMask(frame_id=f.id, mask=disc_mask(f.height, f.width, 40, 40, 9)),
                               label="polyp", annotator="bob")
        assert m.id > max(x.id for x in filled["masks"])
    finally:
        again.close()


def test_backup_and_restore_refuse_unsafe_places(con, settings, filled, tmp_path):
    with pytest.raises(InvalidInput, match="outside the data directory"):
        backup(con, settings, settings.data_dir / "backup")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="not empty"):
        backup(con, settings, busy)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]

    backup(con, settings, tmp_path / "backup")
    with pytest.raises(InvalidInput, match="is not empty"):
        restore(tmp_path / "backup", busy)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    (tmp_path / "backup" / "manifest.json").unlink()   # as if the backup had stopped midway
    with pytest.raises(InvalidInput, match="not a finished endolite backup"):
        restore(tmp_path / "backup", tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_backup_while_another_thread_saves_masks(con, settings, filled, tmp_path):
    frames = filled["frames"]
    stop = threading.Event()
    saved: list[int] = []
    errors: list[BaseException] = []

    def keep_saving():
        cur = con.cursor()
        i = 0
        try:
            while not stop.is_set():
                f = frames[i % len(frames)]
                m = annotate.save_mask(cur, settings, NewMask(
                    frame_id=f.id, mask=disc_mask(f.height, f.width, 30 + i % 50, 40, 8 + i % 10)),
                    label="polyp", annotator="writer")
                saved.append(m.id)
                i += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    writer = threading.Thread(target=keep_saving)
    writer.start()
    try:
        while len(saved) < 5:
            time.sleep(0.01)
        result = backup(con, settings, tmp_path / "backup")
        during = len(saved)
        time.sleep(0.1)
    finally:
        stop.set()
        writer.join()
    assert not errors, errors
    assert 3 + 5 <= result.tables["masks"] <= 3 + during < 3 + len(saved)   # it kept writing
    restored = restore(tmp_path / "backup", tmp_path / "restored")
    assert restored.report.ok, restored.report.problems
    assert restored.tables["masks"] == result.tables["masks"]
    pngs = list((tmp_path / "restored" / "masks").rglob("*.png"))
    assert len(pngs) == result.tables["masks"]


# --- the CLI ----------------------------------------------------------------------------------

def cli(data: Path, *args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("ENDOLITE_DATA", "ENDOLITE_USER")}
    return subprocess.run([sys.executable, "-m", "endolite.cli", "--data", str(data), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)


def test_cli_check_repair_backup_restore(con, settings, filled, tmp_path):
    orphan = settings.frames_dir / "video_1" / "frame_5555.jpg"
    orphan.write_bytes(b"x")
    con.close()
    r = cli(settings.data_dir, "check")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "orphan_file       frames/video_1/frame_5555.jpg" in r.stdout
    assert "1 problem(s)" in r.stdout and "endolite check --repair" in r.stdout
    for argv in (["--json", "check"], ["check", "--json"]):      # --json before or after
        r = subprocess.run([sys.executable, "-m", "endolite.cli", "--data", str(settings.data_dir),
                            *argv], capture_output=True, text=True, timeout=120)
        doc = json.loads(r.stdout)
        assert r.returncode == 1 and doc["ok"] is False
        assert [p["path_or_id"] for p in doc["problems"]] == ["frames/video_1/frame_5555.jpg"]
    r = cli(settings.data_dir, "check", "--repair")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "repaired: removed orphaned file frames/video_1/frame_5555.jpg" in r.stdout
    assert r.stdout.rstrip().splitlines()[-1].startswith("ok: the database and data/ agree")
    assert not orphan.exists()

    r = cli(settings.data_dir, "backup", tmp_path / "bk")
    assert r.returncode == 0 and r.stdout.startswith(f"backup in {tmp_path / 'bk'}"), r.stderr
    r = cli(settings.data_dir, "backup", tmp_path / "bk")
    assert r.returncode == 2 and r.stderr.startswith("error: backup destination") and "not empty" in r.stderr
    r = cli(tmp_path / "restored", "restore", tmp_path / "bk")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok: the database and data/ agree" in r.stdout
    assert files_of(tmp_path / "restored") == files_of(settings.data_dir)
    r = cli(tmp_path / "restored", "restore", tmp_path / "bk")
    assert r.returncode == 2 and "is not empty" in r.stderr and "Traceback" not in r.stderr
