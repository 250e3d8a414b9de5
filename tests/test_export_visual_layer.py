"""Visual Layer JSON (endolite.export.visual_layer) on a small synthetic project."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import datetime, timezone

import jsonschema
import pytest

from endolite import similarity
from endolite.errors import ExportRefused
from endolite.export.validation import load_schema, validate
from endolite.export.visual_layer import file_size_text, visual_layer_document, visual_layer_json
from tests.format_project import assert_no_secret, build

WHEN = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
ITEM_KEYS = ["media_id", "media_type", "file_name", "file_path", "file_size", "height", "width",
             "cluster_id", "metadata_items"]


@pytest.fixture
def project(con, settings, tmp_path):
    return build(con, settings, tmp_path)


def _doc(p, **options):
    options.setdefault("dataset", "endo polyps")
    options.setdefault("exported_by", "lena")
    return visual_layer_document(p.con, p.plan, export_time=WHEN, **options)


def _meta(item, kind):
    return [m["properties"] for m in item["metadata_items"] if m["type"] == kind]


def test_info_and_items(project):
    p = project
    doc = _doc(p, description="first look")
    assert doc["info"] == {"schema_version": "1.1", "dataset": "endo polyps",
                           "dataset_creation_time": "2026-03-04T05:06:07",
                           "export_time": "2026-03-04T05:06:07", "description": "first look",
                           "exported_by": "lena", "total_media_items": len(p.plan.frames)}
    items = doc["media_items"]
    assert [i["file_path"] for i in items] == [f.arcname for f in sorted(p.plan.frames, key=lambda f: f.frame_id)]
    jsonschema.Draft202012Validator(load_schema("visual_layer")).validate(doc)
    for item in items:
        assert list(item) == ITEM_KEYS
        fr = next(f for f in p.plan.frames if f.arcname == item["file_path"])
        assert item["file_name"] == fr.file_name and item["file_path"].endswith(item["file_name"])
        assert (item["height"], item["width"]) == (fr.height, fr.width)
        assert item["file_size"] == file_size_text(fr.source.stat().st_size)
        assert item["media_type"] == ("video_frame" if fr.video_id else "image")
        uuid.UUID(item["media_id"]), uuid.UUID(item["cluster_id"])
    assert len({i["media_id"] for i in items}) == len(items)
    assert [i["media_id"] for i in _doc(p)["media_items"]] == [i["media_id"] for i in items]


def test_video_info_labels_objects_tags(project):
    p = project
    items = {i["file_path"]: i for i in _doc(p)["media_items"]}
    f0 = items[p.plan.frame(p.f[0].id).arcname]
    f1 = items[p.plan.frame(p.f[1].id).arcname]
    g0 = items[p.plan.frame(p.g[0].id).arcname]
    sa = items[p.plan.frame(p.stills["a"].id).arcname]
    sc = items[p.plan.frame(p.stills["c"].id).arcname]
    assert _meta(f1, "video_info") == [{"video_name": f"video_{p.v1}",
                                         "frame_timestamp": pytest.approx(p.f[1].timestamp)}]
    assert _meta(g0, "video_info")[0]["video_name"] == f"video_{p.v2}"
    assert _meta(sa, "video_info") == []                                   # a still image
    # image labels: present rows only (f1 polyp present, blood absent; f0 polyp absent)
    assert _meta(f1, "image_label") == [{"original_id": p.polyp.id, "category_name": "polyp",
                                          "source": "endolite/manual"}]
    assert _meta(f0, "image_label") == []
    assert _meta(sa, "image_label") == [{"original_id": p.blood.id, "category_name": "blood",
                                          "source": "endolite/manual"}]
    # object labels: one per live mask, bbox [x, y, w, h] = the stored pixel box
    objs = _meta(sc, "object_label")
    assert [o["original_id"] for o in objs] == [p.masks["still_blobs"].id, p.masks["still_disc"].id]
    assert objs[0]["category_name"] == "blood" and objs[1]["category_name"] == "polyp"
    for o, key in zip(objs, ("still_blobs", "still_disc")):
        assert o["bbox"] == [round(v) for v in p.masks[key].bbox]
        assert o["source"] == "endolite/manual" and o["metadata_items"] == []
    assert _meta(f0, "object_label")[0]["bbox"] == [round(v) for v in p.masks["video_disc"].bbox]
    # user tags: tag, who, when
    [tag] = _meta(sa, "user_tag")
    assert tag["tag_name"] == "reviewed" and tag["assigned_by"] == "lena"
    datetime.fromisoformat(tag["assigned_date"])
    assert [t["tag_name"] for t in _meta(f0, "user_tag")] == ["needs-second-look"]
    assert _meta(f1, "user_tag") == []


def test_near_duplicates_flagged_distinct_not(project):
    p = project
    items = {i["file_path"]: i for i in _doc(p)["media_items"]}
    a, b, c = (items[p.plan.frame(p.stills[k].id).arcname] for k in "abc")
    [ia], [ib] = _meta(a, "issue"), _meta(b, "issue")
    assert ia["issue_type"] == ib["issue_type"] == "duplicates"
    assert ia["duplicate_group_id"] == ib["duplicate_group_id"]
    assert ia["duplicate_threshold"] == pytest.approx(1 - 6 / 64)
    ha, hb = (similarity.file_phash(p.plan.frame(p.stills[k].id).source) for k in "ab")
    assert ia["confidence"] == pytest.approx(1 - similarity.hamming(ha, hb) / 64)
    assert 1 - 6 / 64 <= ia["confidence"] <= 1
    assert _meta(c, "issue") == []                                   # the distinct picture
    # with hashes given (e.g. the cached ones) nothing is recomputed
    hashes = similarity.frame_hashes(p.con, p.settings, p.plan.frame_ids)
    again = _doc(p, hashes=hashes, max_distance=0)
    flagged = [i for i in again["media_items"] if _meta(i, "issue")]
    assert all(_meta(i, "issue")[0]["confidence"] == 1.0 for i in flagged)


def test_clusters_seeded_and_counted(project):
    p = project
    doc = _doc(p, cluster_count=2)
    ids = [i["cluster_id"] for i in doc["media_items"]]
    assert len(set(ids)) == 2
    assert [i["cluster_id"] for i in _doc(p, cluster_count=2)["media_items"]] == ids
    assert len({i["cluster_id"] for i in _doc(p, cluster_count=1)["media_items"]}) == 1


def test_bytes_and_no_patient_identifiers(project):
    p = project
    data = visual_layer_json(p.con, p.plan, dataset="ds", exported_by="lena", export_time=WHEN)
    assert json.loads(data) == _doc(p, dataset="ds")
    assert_no_secret(data)
    for f in p.stills.values():
        assert f.original_name.encode() not in data


def test_schema_refusal_names_the_field(project):
    doc = _doc(project)
    bad = copy.deepcopy(doc)
    bad["media_items"][2]["file_path"] = "/srv/data/frames/jane.png"
    with pytest.raises(ExportRefused, match=r"media_items\[2\]\.file_path"):
        validate(bad, "visual_layer")
    bad = copy.deepcopy(doc)
    bad["media_items"][0]["metadata_items"][0]["properties"]["video_name"] = "Jane Doe.mp4"
    with pytest.raises(ExportRefused, match=r"media_items\[0\]\.metadata_items\[0\]"):
        validate(bad, "visual_layer")
    bad = copy.deepcopy(doc)
    del bad["info"]["total_media_items"]
    with pytest.raises(ExportRefused, match=r"info"):
        validate(bad, "visual_layer")


def test_file_size_text():
    assert file_size_text(0) == "0B" and file_size_text(1023) == "1023B"
    assert file_size_text(1024) == "1.00KB" and file_size_text(49428) == "48.27KB"
    assert file_size_text(3 * 1024 ** 2 + 400_000) == "3.38MB"
    assert file_size_text(5 * 1024 ** 4) == "5120.00GB"


def test_empty_plan(con):
    from endolite.export.plan import ExportPlan

    doc = visual_layer_document(con, ExportPlan(videos=(), group_ids=(), frames=()),
                                dataset="x", exported_by="y", export_time=WHEN)
    assert doc["media_items"] == [] and doc["info"]["total_media_items"] == 0


def test_mislabels_issue_schema(project):
    """A ``mislabels`` issue (tests/test_uncertainty.py exports real ones) needs its labels."""
    doc = _doc(project)
    assert not [m for i in doc["media_items"] for m in _meta(i, "issue")
                if m["issue_type"] == "mislabels"], "no run: no mislabels issue"
    good = copy.deepcopy(doc)
    good["media_items"][0]["metadata_items"].append({"type": "issue", "properties": {
        "issue_type": "mislabels", "confidence": 0.9, "actual_label": "polyp",
        "suggested_label": "not polyp"}})
    validate(good, "visual_layer")
    bad = copy.deepcopy(good)
    del bad["media_items"][0]["metadata_items"][-1]["properties"]["suggested_label"]
    with pytest.raises(ExportRefused, match=r"media_items\[0\]\.metadata_items"):
        validate(bad, "visual_layer")
