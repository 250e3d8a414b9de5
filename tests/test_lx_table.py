"""The lx-annotate frame-annotation table (endolite.export.lx_table) on a small synthetic project."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from types import SimpleNamespace

import pytest

from endolite.errors import InvalidInput
from endolite.export import lx_table
from endolite.export.lx_table import COLUMNS, table_rows, to_csv, to_json
from endolite.extract import extract_frames
from endolite.frame_labels import add_segment, materialize_segments, set_frame_labels
from endolite.ingest import ingest_paths
from endolite.records import Presence
from endolite.storage import annotations, labels, media
from endolite.synthetic import write_disc_video

EXPECTED_COLUMNS = ["annotation_id", "video_id", "video_hash", "frame_id", "frame_number",
                    "frame_relative_path", "frame_timestamp", "label_id", "label_name", "value",
                    "float_value", "annotator", "information_source_id", "information_source_name",
                    "model_meta_id", "date_created", "date_modified"]


def _ingest(con, settings, path) -> int:
    result = ingest_paths(con, settings, [path], user="t")[0]
    assert result.id is not None, result.reason
    return result.id


@pytest.fixture
def project(con, settings, tmp_path):
    """Two videos; frames of video 1 stored as PNG; frame labels, a segment for export
    (materialised) and one not for export."""
    v1 = _ingest(con, settings, write_disc_video(tmp_path / "one.mp4", 20, seed=0))
    v2 = _ingest(con, settings, write_disc_video(tmp_path / "two.mp4", 12, seed=1))
    f = extract_frames(con, settings, v1, method="uniform", count=4, context=0, fmt="png").picked
    g = extract_frames(con, settings, v2, method="uniform", count=2, context=0).picked
    assert len(f) == 4 and len(g) == 2
    polyp = labels.add(con, "polyp")
    blood = labels.add(con, "blood")
    # f[1] first, so the later-made f[0] row has a higher annotation id but sorts first.
    polyp_f1, blood_f1 = set_frame_labels(con, f[1].id, [("polyp", Presence.PRESENT, 0.75),
                                                         ("blood", Presence.ABSENT, None)],
                                          annotator="ann")
    (polyp_f0,) = set_frame_labels(con, f[0].id, [("polyp", Presence.ABSENT, None)], annotator="ann")
    (unknown_f2,) = set_frame_labels(con, f[2].id, [("polyp", Presence.UNKNOWN, None)], annotator="ann")
    (blood_f3,) = set_frame_labels(con, f[3].id, [("blood", Presence.PRESENT, None)], annotator="ann")
    (polyp_g0,) = set_frame_labels(con, g[0].id, [("polyp", Presence.PRESENT, None)], annotator="ann")
    numbers = {fr.frame_number for fr in f}
    assert f[1].frame_number + 1 not in numbers           # the segment's second frame has no row
    # segments are [start, end): polyp covers f[1] and the unextracted frame after it
    polyp_seg = add_segment(con, v1, label="polyp", start=f[1].frame_number,
                            end=f[1].frame_number + 2, annotator="seg")
    blood_seg = add_segment(con, v1, label="blood", start=f[0].frame_number,
                            end=f[3].frame_number + 1, annotator="seg", for_export=False)
    assert materialize_segments(con, v1) == 1             # only frames with a frame row
    # a segment row without a frame row, as materialising wrote them before it followed
    # lx-annotate (older databases still hold such rows)
    annotations.insert_frame_label_rows(con, [{
        "frame_id": None, "video_id": v1, "frame_number": f[1].frame_number + 1,
        "label_id": polyp.id, "annotator": "seg", "segment_id": polyp_seg.id}])
    seg_rows = annotations.frame_labels_where(con, "f.source = 'segment'", [])
    return SimpleNamespace(con=con, settings=settings, v1=v1, v2=v2, f=f, g=g, polyp=polyp,
                           blood=blood, polyp_f1=polyp_f1, blood_f1=blood_f1, polyp_f0=polyp_f0,
                           unknown_f2=unknown_f2, blood_f3=blood_f3, polyp_g0=polyp_g0,
                           polyp_seg=polyp_seg, blood_seg=blood_seg,
                           seg_f1=next(r for r in seg_rows if r.frame_id == f[1].id),
                           seg_orphan=next(r for r in seg_rows if r.frame_id is None))


def _ids(rows) -> list[int]:
    return [r["annotation_id"] for r in rows]


def test_columns_are_the_lx_annotate_columns_in_order():
    assert list(COLUMNS) == EXPECTED_COLUMNS


def test_known_row_field_by_field(project):
    p = project
    rows = table_rows(p.con, video_ids=[p.v1])
    row = next(r for r in rows if r["annotation_id"] == p.polyp_f1.id)
    assert list(row) == EXPECTED_COLUMNS
    video = media.get_video(p.con, p.v1)
    frame = p.f[1]
    created, updated = p.con.execute("SELECT created_at, updated_at FROM frame_labels WHERE id = ?",
                                     [p.polyp_f1.id]).fetchone()
    expected = {
        "annotation_id": p.polyp_f1.id, "video_id": p.v1, "video_hash": video.sha256,
        "frame_id": frame.id, "frame_number": frame.frame_number,
        "frame_relative_path": f"frame_{frame.id}.png", "frame_timestamp": frame.timestamp,
        "label_id": p.polyp.id, "label_name": "polyp", "value": True, "float_value": 0.75,
        "annotator": "ann", "information_source_id": 1, "information_source_name": "manual",
        "model_meta_id": None,
        "date_created": created.isoformat() + "+00:00",
        "date_modified": updated.isoformat() + "+00:00",
    }
    assert row == expected
    types = {"annotation_id": int, "video_id": int, "video_hash": str, "frame_id": int,
             "frame_number": int, "frame_relative_path": str, "frame_timestamp": float,
             "label_id": int, "label_name": str, "value": bool, "float_value": float,
             "annotator": str, "information_source_id": int, "information_source_name": str,
             "model_meta_id": type(None), "date_created": str, "date_modified": str}
    assert {k: type(v) for k, v in row.items()} == types
    assert abs(row["frame_timestamp"] - frame.frame_number / 25) < 1e-6
    for key in ("date_created", "date_modified"):
        stamp = datetime.fromisoformat(row[key])
        assert stamp.utcoffset() == timedelta(0)
    # The file lives at frames/video_<video_id>/<frame_relative_path>.
    assert (p.settings.video_frames_dir(p.v1) / row["frame_relative_path"]).is_file()
    assert frame.path == f"frames/video_{p.v1}/{row['frame_relative_path']}"
    # An absent value is False, never empty.
    blood = next(r for r in rows if r["annotation_id"] == p.blood_f1.id)
    assert blood["value"] is False and blood["float_value"] is None


def test_unknown_values_and_rows_without_a_frame_are_left_out(project):
    p = project
    ids = _ids(table_rows(p.con, video_ids=[p.v1]))
    assert p.unknown_f2.id not in ids
    assert p.seg_orphan.id not in ids
    assert sorted(ids) == sorted([p.polyp_f0.id, p.polyp_f1.id, p.blood_f1.id, p.blood_f3.id,
                                  p.seg_f1.id])


def test_only_true_and_only_false(project):
    p = project
    every = table_rows(p.con, video_ids=[p.v1, p.v2])
    true = table_rows(p.con, video_ids=[p.v1, p.v2], only="true")
    false = table_rows(p.con, video_ids=[p.v1, p.v2], only="false")
    assert true and all(r["value"] is True for r in true)
    assert false and all(r["value"] is False for r in false)
    assert sorted(_ids(true) + _ids(false)) == sorted(_ids(every))
    assert sorted(_ids(false)) == sorted([p.polyp_f0.id, p.blood_f1.id])
    with pytest.raises(InvalidInput, match="only"):
        table_rows(p.con, video_ids=[p.v1], only="yes")


def test_video_selection(project):
    p = project
    assert _ids(table_rows(p.con, video_ids=[p.v2])) == [p.polyp_g0.id]
    assert table_rows(p.con, video_ids=[]) == []
    assert table_rows(p.con, video_ids=[p.v2 + 100]) == []


def test_information_sources(project):
    p = project
    p.con.execute("UPDATE frame_labels SET source = 'model' WHERE id = ?", [p.blood_f3.id])
    p.con.execute("UPDATE frame_labels SET source = 'import' WHERE id = ?", [p.polyp_f0.id])
    by_id = {r["annotation_id"]: r for r in table_rows(p.con, video_ids=[p.v1])}
    got = {i: (by_id[i]["information_source_name"], by_id[i]["information_source_id"])
           for i in (p.polyp_f1.id, p.seg_f1.id, p.blood_f3.id, p.polyp_f0.id)}
    assert got == {p.polyp_f1.id: ("manual", 1), p.seg_f1.id: ("segment", 2),
                   p.blood_f3.id: ("model", 3), p.polyp_f0.id: ("import", 4)}
    assert lx_table.SOURCE_IDS == {"manual": 1, "segment": 2, "model": 3, "import": 4}
    assert all(r["model_meta_id"] is None for r in by_id.values())


def test_export_flags(project):
    p = project
    # Only the polyp segment is for export: the polyp rows on its frame (manual and segment).
    rows = table_rows(p.con, video_ids=[p.v1, p.v2], use_export_flags=True)
    assert _ids(rows) == sorted([p.polyp_f1.id, p.seg_f1.id])
    annotations.set_segment_export(p.con, p.blood_seg.id, True)
    rows = table_rows(p.con, video_ids=[p.v1], use_export_flags=True)
    # The blood segment spans f[0]..f[3], but only blood rows count (not polyp on f[0]).
    assert sorted(_ids(rows)) == sorted([p.polyp_f1.id, p.seg_f1.id, p.blood_f1.id, p.blood_f3.id])
    annotations.set_segment_export(p.con, p.polyp_seg.id, False)
    rows = table_rows(p.con, video_ids=[p.v1], use_export_flags=True, only="true")
    assert _ids(rows) == [p.blood_f3.id]


def test_explicit_segment_lists(project):
    p = project
    rows = table_rows(p.con, video_ids=[p.v1], segment_ids=[p.blood_seg.id])
    assert _ids(rows) == [p.blood_f1.id, p.blood_f3.id]       # for_export does not matter here
    rows = table_rows(p.con, video_ids=[p.v1], segment_ids=[p.polyp_seg.id, p.blood_seg.id])
    assert sorted(_ids(rows)) == sorted([p.polyp_f1.id, p.seg_f1.id, p.blood_f1.id, p.blood_f3.id])
    assert table_rows(p.con, video_ids=[p.v1], segment_ids=[]) == []
    # Both filters: inside the listed segments and inside a segment marked for export.
    assert table_rows(p.con, video_ids=[p.v1], segment_ids=[p.blood_seg.id],
                      use_export_flags=True) == []
    # A segment of another video selects nothing of it; a deleted segment selects nothing.
    assert table_rows(p.con, video_ids=[p.v2], segment_ids=[p.polyp_seg.id]) == []
    annotations.delete_segment(p.con, p.blood_seg.id)
    assert table_rows(p.con, video_ids=[p.v1], segment_ids=[p.blood_seg.id]) == []


def test_frame_id_paths(project):
    p = project
    plain = table_rows(p.con, video_ids=[p.v1, p.v2])
    by_id = table_rows(p.con, video_ids=[p.v1, p.v2], frame_id_paths=True)
    assert [r["frame_relative_path"] for r in by_id] == [f"frame_{r['frame_id']}.jpg" for r in plain]
    stored = {fr.id: PurePosixPath(fr.path).name for fr in (*p.f, *p.g)}
    assert [r["frame_relative_path"] for r in plain] == [stored[r["frame_id"]] for r in plain]
    assert any(r["frame_relative_path"].endswith(".png") for r in plain)
    assert [{k: v for k, v in r.items() if k != "frame_relative_path"} for r in by_id] == \
        [{k: v for k, v in r.items() if k != "frame_relative_path"} for r in plain]


def test_sort_order(project):
    p = project
    rows = table_rows(p.con, video_ids=[p.v2, p.v1])
    keys = [(r["video_id"], r["frame_number"], r["label_id"], r["annotation_id"]) for r in rows]
    assert keys == sorted(keys)
    assert _ids(rows) == [p.polyp_f0.id, p.polyp_f1.id, p.seg_f1.id, p.blood_f1.id, p.blood_f3.id,
                          p.polyp_g0.id]
    assert p.polyp_f0.id > p.polyp_f1.id                  # not simply annotation-id order


def test_csv(project):
    p = project
    rows = table_rows(p.con, video_ids=[p.v1, p.v2])
    data = to_csv(rows)
    assert isinstance(data, bytes)
    text = data.decode("utf-8")
    assert text.startswith(",".join(EXPECTED_COLUMNS) + "\r\n")
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == EXPECTED_COLUMNS
    assert len(parsed) == len(rows) + 1

    def cell(value):
        if value is None:
            return ""
        if isinstance(value, bool):
            return "True" if value else "False"
        return str(value)

    assert parsed[1:] == [[cell(r[c]) for c in EXPECTED_COLUMNS] for r in rows]
    value_col = EXPECTED_COLUMNS.index("value")
    assert {line[value_col] for line in parsed[1:]} == {"True", "False"}
    known = next(line for line in parsed[1:] if line[0] == str(p.blood_f1.id))
    assert known[value_col] == "False"
    assert known[EXPECTED_COLUMNS.index("float_value")] == ""
    assert known[EXPECTED_COLUMNS.index("model_meta_id")] == ""
    assert float(parsed[1][EXPECTED_COLUMNS.index("frame_timestamp")]) == rows[0]["frame_timestamp"]
    assert to_csv([]).decode("utf-8") == ",".join(EXPECTED_COLUMNS) + "\r\n"


def test_json(project):
    p = project
    rows = table_rows(p.con, video_ids=[p.v1, p.v2])
    data = to_json(rows)
    assert isinstance(data, bytes)
    loaded = json.loads(data.decode("utf-8"))
    assert isinstance(loaded, list) and len(loaded) == len(rows)
    assert all(list(obj) == EXPECTED_COLUMNS for obj in loaded)
    assert loaded == rows
    assert all(isinstance(obj["value"], bool) for obj in loaded)
    assert b'"model_meta_id": null' in data
    assert b'"value": false' in data and b'"value": true' in data
    assert json.loads(to_json([])) == []


def test_segment_filters_treat_the_end_as_exclusive(project):
    p = project
    # a blood segment [f0, f3): f3's blood row lies outside it
    seg = add_segment(p.con, p.v1, label="blood", start=p.f[0].frame_number,
                      end=p.f[3].frame_number, annotator="seg")
    rows = table_rows(p.con, video_ids=[p.v1], segment_ids=[seg.id])
    assert p.blood_f3.id not in _ids(rows)
    assert p.blood_f1.id in _ids(rows)
