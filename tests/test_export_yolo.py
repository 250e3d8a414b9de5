"""Ultralytics YOLO layout (endolite.export.yolo): label files parsed back and checked against
the stored masks within 1 px, data.yaml read with yaml.safe_load, splits by media."""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np
import pytest
import yaml

from endolite import masks as mask_ops
from endolite.annotate import NewMask, save_mask
from endolite.errors import InvalidInput
from endolite.export.yolo import split_media, yolo_dataset
from endolite.records import ShapeKind
from tests.format_project import GH, GW, assert_no_secret, build

POLYGON = [[10.0, 60.0], [40.0, 62.0], [30.0, 90.0]]


@pytest.fixture
def project(con, settings, tmp_path):
    p = build(con, settings, tmp_path)
    # a drawn polygon on still "b": written as drawn
    p.masks["still_polygon"] = save_mask(
        con, settings, NewMask(frame_id=p.stills["b"].id,
                               mask=mask_ops.polygon_to_mask(POLYGON, GH, GW),
                               kind=ShapeKind.POLYGON, prompt={"polygon": POLYGON}),
        label=p.polyp, annotator="ann")
    return p


def _pixels(mask) -> np.ndarray:
    return mask_ops.decode({"size": [mask.height, mask.width], "counts": mask.rle})


def _extent(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) pixel edges of the foreground."""
    ys, xs = np.nonzero(pixels)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _lines(files: dict[str, bytes], frame_id: int) -> list[list[float]]:
    [name] = [n for n in files if n.endswith(f"/frame_{frame_id}.txt")]
    return [[float(v) for v in line.split()] for line in files[name].decode().splitlines()]


def test_layout_splits_and_data_yaml(project):
    p = project
    out = yolo_dataset(p.con, p.plan, task="detect", seed=0)
    files = dict(out.files)
    assert out.files[-1][0] == "data.yaml"
    # every plan frame: one image path and one label file in the same split
    assert set(out.images) == set(p.plan.frame_ids)
    for fr in p.plan.frames:
        image = out.images[fr.frame_id]
        split = out.splits[fr.folder]
        assert image == f"images/{split}/frame_{fr.frame_id}{fr.source.suffix.lower()}"
        assert f"labels/{split}/frame_{fr.frame_id}.txt" in files
    assert len(files) == len(p.plan.frames) + 1
    # whole media go to one split; three media with 0.7/0.2/0.1 -> 2 train... at least 1 each
    assert set(out.splits) == {f"video_{p.v1}", f"video_{p.v2}", f"group_{p.group_id}"}
    counts = Counter(out.splits.values())
    assert counts["train"] >= 1 and counts["val"] >= 1
    doc = yaml.safe_load(files["data.yaml"])
    assert doc["path"] == "endolite_yolo" and doc["train"] == "images/train"
    assert doc["val"] == "images/val"
    assert ("test" in doc) == ("test" in counts)
    assert doc["names"] == {0: "polyp", 1: "blood"} and doc["nc"] == 2     # by label id
    assert yolo_dataset(p.con, p.plan, seed=0).splits == out.splits            # seeded
    for name, data in out.files:
        assert_no_secret(name.encode())
        assert_no_secret(data)


def test_detection_boxes_match_masks(project):
    p = project
    out = yolo_dataset(p.con, p.plan, task="detect")
    files = dict(out.files)
    checked = 0
    for key, mask in p.masks.items():
        fr = p.plan.frame(mask.frame_id)
        lines = _lines(files, mask.frame_id)
        cls = 0 if mask.label_id == p.polyp.id else 1
        mine = [l for l in lines if int(l[0]) == cls]
        x0, y0, x1, y1 = _extent(_pixels(mask))
        boxes = []
        for _, cx, cy, w, h in mine:
            boxes.append(((cx - w / 2) * fr.width, (cy - h / 2) * fr.height,
                          (cx + w / 2) * fr.width, (cy + h / 2) * fr.height))
        assert any(np.allclose(b, (x0, y0, x1, y1), atol=1.0) for b in boxes), key
        checked += 1
    assert checked == 4
    # frames without masks get empty label files (background images)
    assert files[f"labels/{out.splits[f'video_{p.v2}']}/frame_{p.g[0].id}.txt"] == b""
    assert out.annotation_count == 4


@pytest.mark.parametrize("contours", ["largest", "all"])
def test_segmentation_polygons_match_masks(project, contours):
    p = project
    out = yolo_dataset(p.con, p.plan, task="segment", contours=contours)
    files = dict(out.files)
    for key, mask in p.masks.items():
        fr = p.plan.frame(mask.frame_id)
        cls = 0 if mask.label_id == p.polyp.id else 1
        polys = []
        for line in _lines(files, mask.frame_id):
            if int(line[0]) != cls:
                continue
            assert len(line) >= 7 and (len(line) - 1) % 2 == 0          # >= 3 (x, y) points
            pts = np.asarray(line[1:]).reshape(-1, 2) * [fr.width, fr.height]
            polys.append(pts)
        pixels = _pixels(mask)
        if key == "still_polygon":
            assert len(polys) == 1 and np.allclose(polys[0], POLYGON, atol=1e-4)
            continue
        expected = 2 if (key == "still_blobs" and contours == "all") else 1
        own = [q for q in polys if pixels[int(round(q[0, 1])), int(round(q[0, 0]))]]
        assert len(own) == expected, key
        filled = np.zeros_like(pixels, dtype=np.uint8)
        for pts in own:
            # every vertex within 1 px of a foreground pixel, and on the mask's outline
            for x, y in pts:
                ys, xs = np.nonzero(pixels)
                assert np.min(np.hypot(xs - x, ys - y)) <= 1.0
            cv2.fillPoly(filled, [np.round(pts).astype(np.int32)], 1)
        if contours == "largest" and key == "still_blobs":
            # the larger blob (the disc) only
            assert filled.sum() < pixels.sum()
            continue
        x0, y0, x1, y1 = _extent(pixels)
        fx0, fy0, fx1, fy1 = _extent(filled)
        assert max(abs(x0 - fx0), abs(y0 - fy0), abs(x1 - fx1), abs(y1 - fy1)) <= 1, key
        iou = mask_ops.array_iou(filled.astype(bool), pixels)
        assert iou > 0.97, (key, iou)


def test_split_media_rules():
    keys = [f"video_{i}" for i in range(10)]
    s = split_media(keys, seed=1)
    assert Counter(s.values()) == {"train": 7, "val": 2, "test": 1}
    assert split_media(list(reversed(keys)), seed=1) == s                 # order-free, seeded
    assert split_media(keys, seed=2) != s
    assert split_media(["a"]) == {"a": "train"}
    assert Counter(split_media(["a", "b"]).values()) == {"train": 1, "val": 1}
    assert Counter(split_media(["a", "b"], fractions=(0, 0, 1)).values()) == {"train": 1, "test": 1}
    assert split_media([]) == {}
    with pytest.raises(InvalidInput):
        split_media(keys, fractions=(0.5, 0.5))
    with pytest.raises(InvalidInput):
        split_media(keys, fractions=(1, -1, 0.5))


def test_single_media_val_falls_back_to_train(project):
    from dataclasses import replace

    p = project
    only_group = replace(p.plan, videos=(), frames=tuple(f for f in p.plan.frames if f.group_id))
    out = yolo_dataset(p.con, only_group)
    doc = yaml.safe_load(dict(out.files)["data.yaml"])
    assert out.splits == {f"group_{p.group_id}": "train"}
    assert doc["val"] == "images/train" and "test" not in doc


def test_bad_options(project):
    with pytest.raises(InvalidInput, match="task"):
        yolo_dataset(project.con, project.plan, task="pose")
    with pytest.raises(InvalidInput, match="contours"):
        yolo_dataset(project.con, project.plan, task="segment", contours="some")
