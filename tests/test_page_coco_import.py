"""Upload page, COCO section (AppTest): a lead uploads a Label Studio COCO file and picks the
annotator; the masks are stored as that annotator's and the page says what came in; a bad file
shows the annotation and the reason and stores nothing; annotators do not see the section."""

from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image

from endolite.records import Role, ShapeKind
from endolite.storage import annotations, connect, media
from tests.support import make_user, page

H, W = 48, 64


def _png(seed: int) -> bytes:
    rgb = np.random.default_rng(seed).integers(0, 255, size=(H, W, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="png")
    return out.getvalue()


def _coco(file_name: str, category_id: int = 0) -> bytes:
    return json.dumps({
        "images": [{"id": 0, "file_name": f"images/0badcafe-{file_name}", "width": W, "height": H}],
        "categories": [{"id": 0, "name": "Polyp"}],
        "annotations": [
            {"id": 7, "image_id": 0, "category_id": category_id, "segmentation": [],
             "bbox": [4, 4, 20, 10], "iscrowd": 0},
            {"id": 8, "image_id": 0, "category_id": 0,
             "segmentation": [[30, 5, 60, 10, 45, 40]], "bbox": [30, 5, 30, 35], "iscrowd": 0}],
    }).encode()


def _import(at, data: bytes, annotator: str):
    at.file_uploader(key="coco_file").set_value([("ls-export.json", data, "application/json")])
    at.selectbox(key="coco_annotator").set_value(annotator)
    at.button(key="coco_go").click().run()
    assert not at.exception, at.exception
    return at


def test_lead_imports_a_coco_file_as_an_annotator(app_env):
    con = connect(app_env)
    lead = make_user(con, "lena", Role.LEAD)
    make_user(con, "ann", Role.ANNOTATOR)
    at = page("views/upload.py", lead).run()
    at.file_uploader(key="upload_files").set_value([("still.png", _png(1), "image/png")])
    at.button(key="upload_go").click().run()
    [group] = media.list_groups(con)
    [frame] = media.frames_of(con, group_id=group.id)

    _import(at, _coco("still.png", category_id=5), "ann")
    errors = " | ".join(e.value for e in at.error)
    assert "annotation 7" in errors and "unknown category" in errors, errors
    assert annotations.masks_of(con, frame_ids=[frame.id]) == []

    _import(at, _coco("still.png"), "ann")
    assert not at.error, [e.value for e in at.error]
    success = " | ".join(s.value for s in at.success)
    assert "imported 2 annotations" in success and "Polyp" in success, success
    stored = annotations.masks_of(con, frame_ids=[frame.id])
    assert sorted(m.kind for m in stored) == [ShapeKind.BOX, ShapeKind.POLYGON]
    assert {m.annotator for m in stored} == {"ann"}


def test_annotators_do_not_see_the_coco_section(app_env):
    con = connect(app_env)
    ann = make_user(con, "ann", Role.ANNOTATOR)
    at = page("views/upload.py", ann).run()
    assert not at.exception, at.exception
    assert not [b for b in at.button if b.key == "coco_go"]
