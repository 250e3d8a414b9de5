"""lx-dtypes' AI-dataset payload (endolite.export.ai_dataset) on a small synthetic project."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import datetime, timezone

import jsonschema
import pytest

from endolite.errors import ExportRefused
from endolite.export import ai_dataset
from endolite.export.ai_dataset import ai_dataset_document, ai_dataset_json, check_model_type, video_uuid
from endolite.export.validation import load_schema, validate
from tests.format_project import assert_no_secret, build

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

TOP = ["schema_version", "dataset_id", "name", "description", "dataset_type", "ai_model_type",
       "is_active", "created_at", "updated_at", "summary", "patient_videos", "frame_annotations"]
ANNOTATION = ["annotation_id", "frame_id", "frame_number", "timestamp", "relative_path",
              "file_path", "patient_video_file_uuid", "video_id", "video_uuid", "video_hash",
              "original_file_name", "label", "value", "confidence", "annotator",
              "information_source_name", "model_meta_id", "external_annotation_id",
              "date_created", "date_modified"]


@pytest.fixture
def project(con, settings, tmp_path):
    return build(con, settings, tmp_path)


def _doc(p, **options):
    options.setdefault("name", "polyps v1")
    return ai_dataset_document(p.con, p.plan, created_at=WHEN, **options)


def test_top_level_and_summary(project):
    p = project
    doc = _doc(p, description="first cut", dataset_id=7)
    assert list(doc) == TOP
    assert doc["schema_version"] == "1.0" and doc["dataset_id"] == 7
    assert (doc["name"], doc["description"]) == ("polyps v1", "first cut")
    assert (doc["dataset_type"], doc["ai_model_type"]) == ("image", "image_multilabel_classification")
    assert doc["is_active"] is True
    assert doc["created_at"] == doc["updated_at"] == "2026-01-02T03:04:05+00:00"
    # present/absent rows of video frames only: polyp_f1, blood_f1, polyp_f0, polyp_g0
    # (unknown_f2 left out; the still's label belongs to an image group)
    assert doc["summary"] == {"image_annotation_count": 4, "video_annotation_count": 2,
                              "frame_count": 3, "video_count": 2, "label_count": 2}
    jsonschema.Draft202012Validator(load_schema("ai_dataset")).validate(doc)


def test_frame_annotations_field_by_field(project):
    p = project
    doc = _doc(p)
    rows = doc["frame_annotations"]
    assert [r["annotation_id"] for r in rows] == [p.fl["polyp_f0"].id, p.fl["polyp_f1"].id,
                                                   p.fl["blood_f1"].id, p.fl["polyp_g0"].id]
    for r in rows:
        assert list(r) == ANNOTATION
    by_id = {r["annotation_id"]: r for r in rows}
    r = by_id[p.fl["polyp_f1"].id]
    frame = p.plan.frame(p.f[1].id)
    v1 = next(v for v in p.plan.videos if v.video_id == p.v1)
    assert r["frame_id"] == p.f[1].id and r["frame_number"] == p.f[1].frame_number
    assert r["timestamp"] == pytest.approx(p.f[1].timestamp)
    assert r["relative_path"] == frame.arcname == f"frames/video_{p.v1}/frame_{p.f[1].id}.png"
    assert r["file_path"] is None and r["original_file_name"] is None
    assert r["video_id"] == p.v1 and r["video_hash"] == v1.sha256
    assert r["video_uuid"] == r["patient_video_file_uuid"] == video_uuid(v1)
    assert uuid.UUID(r["video_uuid"]).version == 5
    assert r["label"] == {"id": p.polyp.id, "name": "polyp", "labelset_name": "endolite"}
    assert r["value"] is True and r["confidence"] == 0.75
    assert r["annotator"] == "ann" and r["information_source_name"] == "manual"
    assert r["model_meta_id"] is None and r["external_annotation_id"] is None
    assert r["date_created"].endswith("+00:00") and r["date_modified"].endswith("+00:00")
    assert by_id[p.fl["blood_f1"].id]["value"] is False
    assert by_id[p.fl["blood_f1"].id]["confidence"] is None
    g0 = by_id[p.fl["polyp_g0"].id]
    assert g0["video_id"] == p.v2 and g0["relative_path"].endswith(".jpg") and g0["annotator"] == "bob"
    # only: present rows
    assert [r["annotation_id"] for r in _doc(p, only="true")["frame_annotations"]] == [
        p.fl["polyp_f1"].id, p.fl["polyp_g0"].id]


def test_frames_outside_the_plan_are_left_out(project):
    p = project
    from dataclasses import replace

    smaller = replace(p.plan, frames=tuple(f for f in p.plan.frames if f.frame_id != p.f[1].id))
    doc = ai_dataset_document(p.con, smaller, name=None, created_at=WHEN)
    assert p.f[1].id not in {r["frame_id"] for r in doc["frame_annotations"]}
    assert doc["summary"]["image_annotation_count"] == 2


def test_patient_videos_and_segments(project):
    p = project
    doc = _doc(p)
    v1, v2 = sorted(p.plan.videos, key=lambda v: v.video_id)
    assert list(doc["patient_videos"]) == [video_uuid(v1), video_uuid(v2)]
    pv = doc["patient_videos"][video_uuid(v1)]
    assert pv["uuid"] == video_uuid(v1) and pv["external_ids"] == {"endolite_video_id": str(p.v1)}
    assert pv["patient"] is None and pv["patient_examination"] is None
    assert pv["sensitive_meta"] is None and pv["anonymization_state"] == "validated"
    assert pv["fnd"] == {"created_at": "2026-01-02T03:04:05+00:00", "file": v1.arcname,
                         "dir": None, "files": [], "dirs": []}
    segs = list(pv["patient_video_segments"].values())
    assert [s["external_ids"]["endolite_segment_id"] for s in segs] == [
        str(p.seg_hidden.id), str(p.seg_export.id)]                        # by start frame
    hidden, shown = segs
    assert (shown["start_frame_number"], shown["end_frame_number"]) == (
        p.seg_export.start_frame, p.seg_export.end_frame)                   # end exclusive as lx
    assert shown["end_frame_number"] > shown["start_frame_number"]
    assert shown["label"] == "polyp" and shown["labelset"] == "endolite"
    assert shown["patient_video_file"] == video_uuid(v1) and shown["export_segment"] is True
    assert hidden["export_segment"] is False and hidden["label"] == "blood"
    state = shown["patient_video_segment_state"]
    assert state["patient_video_segment"] == shown["uuid"]
    assert state["annotation"] is True and state["prediction"] is False
    assert state["frames_extracted"] is True                              # f[1] lies inside
    assert doc["patient_videos"][video_uuid(v2)]["patient_video_segments"] == {}
    flagged = _doc(p, use_export_flags=True)
    assert [s["label"] for s in flagged["patient_videos"][video_uuid(v1)]
            ["patient_video_segments"].values()] == ["polyp"]
    assert flagged["summary"]["video_annotation_count"] == 1
    # uuids depend on content only: a second export has the same ones
    assert list(_doc(p)["patient_videos"]) == list(doc["patient_videos"])


def test_bytes_and_no_patient_identifiers(project):
    p = project
    data = ai_dataset_json(p.con, p.plan, name="ds", created_at=WHEN)
    assert json.loads(data) == _doc(p, name="ds")
    assert_no_secret(data)
    v1 = p.videos[p.v1]
    assert "Jane" in v1.title or "jane" in v1.title.lower()              # the secret is there...
    assert v1.original_name.encode() not in data                          # ...but not exported


@pytest.mark.parametrize(("dataset_type", "model_type"), [
    ("image", "image_multilabel_classification"), ("image", "phi_region_detector"),
    ("video", "video_segment_classification")])
def test_model_type_pairs_accepted(dataset_type, model_type):
    check_model_type(dataset_type, model_type)


@pytest.mark.parametrize(("dataset_type", "model_type", "field"), [
    ("image", "video_segment_classification", "ai_model_type"),
    ("video", "image_multilabel_classification", "ai_model_type"),
    ("image", "unsupported_image_model", "ai_model_type"),
    ("text", "image_multilabel_classification", "dataset_type")])
def test_model_type_pairs_refused(project, dataset_type, model_type, field):
    with pytest.raises(ExportRefused, match=field):
        check_model_type(dataset_type, model_type)
    with pytest.raises(ExportRefused, match=field):
        _doc(project, dataset_type=dataset_type, ai_model_type=model_type)


def test_schema_refusal_names_the_field(project):
    doc = _doc(project)
    bad = copy.deepcopy(doc)
    bad["frame_annotations"][1]["label"]["name"] = 5
    with pytest.raises(ExportRefused, match=r"frame_annotations\[1\]\.label\.name"):
        validate(bad, "ai_dataset")
    bad = copy.deepcopy(doc)
    bad["frame_annotations"][0]["original_file_name"] = "jane.mp4"
    with pytest.raises(ExportRefused, match=r"original_file_name"):
        validate(bad, "ai_dataset")
    bad = copy.deepcopy(doc)
    bad["summary"]["extra"] = 1
    with pytest.raises(ExportRefused, match="summary"):
        validate(bad, "ai_dataset")


def test_empty_plan(con):
    from endolite.export.plan import ExportPlan

    doc = ai_dataset_document(con, ExportPlan(videos=(), group_ids=(), frames=()), name=None)
    assert doc["frame_annotations"] == [] and doc["patient_videos"] == {}
    assert doc["summary"] == dict.fromkeys(doc["summary"], 0)
    assert ai_dataset.SCHEMA_VERSION == doc["schema_version"]
