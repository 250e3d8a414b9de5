"""The AI-dataset, YOLO and Visual Layer formats through formats.contents and the zip writer:
every path a document names is in the zip, the frames are the plan's files, no secret leaks."""

from __future__ import annotations

import json
import zipfile

import pytest
import yaml

from endolite.errors import ExportRefused, InvalidInput
from endolite.export.bundle import write_zip
from endolite.export.formats import ExportOptions, contents
from tests.format_project import assert_no_secret, build


@pytest.fixture
def project(con, settings, tmp_path):
    return build(con, settings, tmp_path)


def _zip(p, fmt, **options):
    body = contents(p.con, p.settings, p.plan, fmt, ExportOptions(**options), exported_by="lena")
    written = write_zip(p.settings, body, name=f"test-{fmt}")
    return body, zipfile.ZipFile(written.path)


def test_ai_dataset_zip(project):
    p = project
    body, zf = _zip(p, "ai-dataset", frames=True, name="ds")
    doc = json.loads(zf.read("ai_dataset.json"))
    paths = {a["relative_path"] for a in doc["frame_annotations"]}
    assert paths and paths <= set(zf.namelist())
    for a in doc["frame_annotations"]:
        assert zf.read(a["relative_path"]) == p.plan.frame(a["frame_id"]).source.read_bytes()
    assert body.annotation_count == 4 + 2                 # frame annotations + segments
    for name in zf.namelist():
        assert_no_secret(name.encode())
        if name.endswith(".json"):
            assert_no_secret(zf.read(name))


def test_yolo_zip(project):
    p = project
    body, zf = _zip(p, "yolo", extra={"task": "segment", "seed": 3, "fractions": [1, 1, 1]})
    names = set(zf.namelist())
    data = yaml.safe_load(zf.read("data.yaml"))
    assert data["names"] == {0: "polyp", 1: "blood"}
    images = [n for n in names if n.startswith("images/")]
    assert len(images) == len(p.plan.frames)
    for image in images:
        split, file = image.split("/")[1:]
        assert f"labels/{split}/{file.rsplit('.', 1)[0]}.txt" in names
    assert body.annotation_count == 3                     # three masks, largest contour each


def test_visual_layer_zip(project):
    p = project
    body, zf = _zip(p, "visual-layer", name="endo", description="d",
                    extra={"cluster_count": 2})
    doc = json.loads(zf.read("visual_layer.json"))
    assert doc["info"]["exported_by"] == "lena" and doc["info"]["dataset"] == "endo"
    assert {i["file_path"] for i in doc["media_items"]} <= set(zf.namelist())
    assert_no_secret(zf.read("visual_layer.json"))
    # 3 image labels (f1 polyp, g0 polyp, still a blood) + 3 object labels + 2 tags
    assert body.annotation_count == 8


def test_unknown_extra_option_and_mismatched_types(project):
    p = project
    with pytest.raises(InvalidInput, match="colour"):
        contents(p.con, p.settings, p.plan, "yolo", ExportOptions(extra={"colour": 1}),
                 exported_by="x")
    with pytest.raises(ExportRefused, match="ai_model_type"):
        contents(p.con, p.settings, p.plan, "ai-dataset",
                 ExportOptions(dataset_type="video"), exported_by="x")
