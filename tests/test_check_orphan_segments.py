"""``endolite check`` lists orphan time-segment rows: segments whose video / label is NULL or
gone, and frame-label rows materialised from a segment whose frame is NULL or whose frame /
video / segment is gone.  No API makes such rows, so the tests write them with SQL into the
real DuckDB file, then run the real CLI on it; ``--repair`` only reports them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from endolite import frame_labels
from endolite.extract import extract_frames
from endolite.ingest import ingest_paths
from endolite.maintenance import ProblemKind, check
from endolite.storage import annotations as store
from endolite.storage import labels
from endolite.synthetic import write_disc_video


def cli(data: Path, *args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("ENDOLITE_DATA", "ENDOLITE_USER")}
    return subprocess.run([sys.executable, "-m", "endolite.cli", "--data", str(data), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def project(con, settings, tmp_path) -> dict:
    """A video with extracted frames, two segments materialised into frame-label rows, one of the
    segments soft-deleted afterwards (its rows stay: not an orphan)."""
    [v] = ingest_paths(con, settings, [write_disc_video(tmp_path / "disc.mp4", 30, gop=10)], user="alice")
    extract_frames(con, settings, v.id, method="uniform", count=6, context=0)
    labels.add(con, "bleeding")
    kept = frame_labels.add_segment(con, v.id, label="bleeding", start=0, end=15, annotator="alice")
    dropped = frame_labels.add_segment(con, v.id, label="bleeding", start=15, end=30, annotator="bob")
    assert frame_labels.materialize_segments(con, v.id) > 0
    store.delete_segment(con, dropped.id)
    return {"video_id": v.id, "segment_id": kept.id, "label_id": kept.label_id}


def insert_orphans(con, project) -> dict[str, int]:
    """Four orphan rows the way hand-written SQL or an old schema leaves them."""
    vid, seg, lab = project["video_id"], project["segment_id"], project["label_id"]

    def one(sql, params):
        return con.execute(sql + " RETURNING id", params).fetchone()[0]

    ids = {
        "seg_no_video": one("INSERT INTO segments (video_id, label_id, start_frame, end_frame, annotator) "
                            "VALUES (?, ?, 0, 5, 'alice')", [vid + 900, lab]),
        "seg_no_label_deleted": one("INSERT INTO segments (video_id, label_id, start_frame, end_frame, "
                                    "annotator, deleted_at) VALUES (?, ?, 0, 5, 'alice', "
                                    "current_localtimestamp())", [vid, lab + 800]),
        # what materialising wrote before schema 8 for a frame number that was not extracted
        "fl_null_frame": one("INSERT INTO frame_labels (frame_id, video_id, frame_number, label_id, "
                             "annotator, value, source, segment_id) "
                             "VALUES (NULL, ?, 3, ?, 'alice', 'present', 'segment', ?)", [vid, lab, seg]),
        "fl_gone_frame_and_segment": one("INSERT INTO frame_labels (frame_id, video_id, frame_number, "
                                         "label_id, annotator, value, source, segment_id) "
                                         "VALUES (7777, ?, 4, ?, 'alice', 'present', 'segment', 5555)",
                                         [vid, lab]),
    }
    return ids


def test_a_clean_project_with_segments_reports_nothing(con, settings, project):
    report = check(con, settings, grace_s=0)
    assert report.ok, report.problems
    assert report.counts == {}
    assert report.checked["segments"] == 2 and report.checked["segment_frame_labels"] > 0
    con.close()

    r = cli(settings.data_dir, "check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "orphan" not in r.stdout
    assert r.stdout.rstrip().splitlines()[-1].startswith("ok: the database and data/ agree")
    assert "2 segments" in r.stdout
    r = cli(settings.data_dir, "check", "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["ok"] is True
    assert doc["problems"] == [] and doc["counts"] == {} and doc["checked"]["segments"] == 2


def test_check_names_orphan_segment_rows_and_repair_leaves_them(con, settings, project):
    ids = insert_orphans(con, project)
    vid = project["video_id"]

    report = check(con, settings, grace_s=0)
    segs = report.of_kind(ProblemKind.ORPHAN_SEGMENT)
    made = report.of_kind(ProblemKind.ORPHAN_SEGMENT_FRAME_LABEL)
    assert [p.record_id for p in segs] == [ids["seg_no_video"], ids["seg_no_label_deleted"]]
    assert [p.record_id for p in made] == [ids["fl_null_frame"], ids["fl_gone_frame_and_segment"]]
    assert report.counts == {"orphan_segment": 2, "orphan_segment_frame_label": 2}
    assert not report.repairable and len(report.problems) == 4
    assert f"its video {vid + 900} does not exist" in segs[0].detail
    assert "(deleted)" in segs[1].detail
    assert f"its label {project['label_id'] + 800} does not exist" in segs[1].detail
    assert "its frame is NULL (frame number 3)" in made[0].detail
    assert f"endolite segment materialize {vid}" in made[0].detail
    assert "its frame 7777 does not exist" in made[1].detail
    assert "its segment 5555 does not exist" in made[1].detail
    con.close()

    r = cli(settings.data_dir, "check")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    lines = r.stdout.splitlines()
    for key in ("seg_no_video", "seg_no_label_deleted"):
        assert any(line.startswith("orphan_segment ") and f"segment {ids[key]} " in line
                   for line in lines), r.stdout
    for key in ("fl_null_frame", "fl_gone_frame_and_segment"):
        assert any(line.startswith("orphan_segment_frame_label") and f"frame_label {ids[key]} " in line
                   for line in lines), r.stdout
    assert lines[-1].startswith("4 problem(s): 2 orphan_segment, 2 orphan_segment_frame_label (")
    assert "--repair" not in lines[-1]                  # nothing here is repairable

    r = cli(settings.data_dir, "--json", "check")
    doc = json.loads(r.stdout)
    assert r.returncode == 1 and doc["ok"] is False
    assert doc["counts"] == {"orphan_segment": 2, "orphan_segment_frame_label": 2}
    got = {(p["kind"], p["record_id"]) for p in doc["problems"]}
    assert got == {("orphan_segment", ids["seg_no_video"]), ("orphan_segment", ids["seg_no_label_deleted"]),
                   ("orphan_segment_frame_label", ids["fl_null_frame"]),
                   ("orphan_segment_frame_label", ids["fl_gone_frame_and_segment"])}
    assert all(p["repairable"] is False and p["detail"] for p in doc["problems"])

    r = cli(settings.data_dir, "check", "--repair", "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 1 and doc["repaired"] == []
    assert len(doc["remaining"]) == 4
    # the rows are all still there

    with duckdb.connect(str(settings.db_path), read_only=True) as ro:
        assert ro.execute("SELECT count(*) FROM segments WHERE list_contains(?, id)",
                          [[ids["seg_no_video"], ids["seg_no_label_deleted"]]]).fetchone()[0] == 2
        assert ro.execute("SELECT count(*) FROM frame_labels WHERE list_contains(?, id)",
                          [[ids["fl_null_frame"], ids["fl_gone_frame_and_segment"]]]).fetchone()[0] == 2


def test_repair_help_says_orphan_segment_rows_are_only_reported():
    r = subprocess.run([sys.executable, "-m", "endolite.cli", "check", "--help"],
                       capture_output=True, text=True, timeout=60)
    text = " ".join(r.stdout.split())                  # argparse wraps the help
    assert r.returncode == 0
    assert "orphan segment rows" in text and "only reported" in text
