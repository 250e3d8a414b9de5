"""endolite.benchmark on real polyp masks (Kvasir-SEG JPEG masks, CVC-ClinicDB TIFF masks).

Gold = the dataset mask.  Simulated annotators: eroded, dilated, slightly shifted, far shifted,
split into two objects, wrong label, the box of the mask, a loose box, and a label outside the
scope.  Every
IoU the module reports is checked against pycocotools' own ``mask.iou`` computed here and
against numpy on decoded arrays; match counts against hand-worked expectations.  The real data
is read in place (never copied).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from endolite.benchmark import BenchObject, FrameInput, build_report
from endolite.errors import InvalidInput

ndimage = pytest.importorskip("scipy.ndimage")

KVASIR = ("cju0qkwl35piu0993l0dewei2", "cju0roawvklrq0799vmjorwfv", "cju0tl3uz8blh0993wxvn7ly3",
          "cju1brhsj3rls0855a1vgdlen", "cju0sr5ghl0nd08789uzf1raf", "cju0rx1idathl0835detmsp84")
CVC = ("13", "115", "139", "165")
LABELS = ("polyp", "adenoma")


def load_mask(path: Path) -> np.ndarray:
    """``(H, W) bool``: threshold 128 on one channel (JPEG masks are 3-channel with ringing)."""
    if path.suffix == ".tif":
        tifffile = pytest.importorskip("tifffile")
        arr = tifffile.imread(path)
    else:
        from PIL import Image
        with Image.open(path) as im:
            arr = np.asarray(im)
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr >= 128


def encode(arr: np.ndarray) -> dict:
    return mask_utils.encode(np.asfortranarray(arr.astype(np.uint8)))


def shift(arr: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(arr)
    h, w = arr.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        arr[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def np_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 0.0


def bbox(arr: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(arr)
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def box_array(box, shape) -> np.ndarray:
    x, y, w, h = box
    out = np.zeros(shape, bool)
    out[y:y + h, x:x + w] = True
    return out


def simulate(name: str, gold: np.ndarray):
    """Annotator name -> list of (object id, label, kind, array or box)."""
    x, y, w, h = bbox(gold)
    height, width = gold.shape
    lx, ly = max(x - 6, 0), max(y - 4, 0)                                 # a loose box, clipped
    loose = (lx, ly, min(x + w + 6, width) - lx, min(y + h + 4, height) - ly)
    dx = int(0.6 * w) + 1
    far = shift(gold, 0, dx if x + w + dx <= width else -dx)
    area_by_col = np.cumsum(gold.sum(axis=0))
    cut = int(np.searchsorted(area_by_col, 0.7 * area_by_col[-1])) + 1   # ~70% of the area left
    left, right = gold.copy(), gold.copy()
    left[:, cut:] = False
    right[:, :cut] = False
    return {
        "eroded": [("e", "polyp", "mask", ndimage.binary_erosion(gold, iterations=2))],
        "dilated": [("d", "polyp", "mask", ndimage.binary_dilation(gold, iterations=3))],
        "shifted": [("s", "polyp", "mask", shift(gold, 3, 4))],
        "far_shift": [("f", "polyp", "mask", far)],
        "split": [("left", "polyp", "mask", left), ("right", "polyp", "mask", right)],
        "wrong_label": [("w", "adenoma", "mask", gold.copy())],
        "box": [("b", "polyp", "box", bbox(gold))],
        "loose_box": [("lb", "polyp", "box", loose)],
        "out_of_scope": [("o", "instrument", "mask", gold.copy())],
    }


@pytest.fixture(scope="module")
def case(real: Path):
    frames, arrays = [], {}
    names = [*(f"{k}.jpg" for k in KVASIR), *(f"{c}.tif" for c in CVC)]
    for fid, fname in enumerate(names):
        path = real / "masks" / fname
        if not path.is_file():
            pytest.skip(f"real mask {fname} not found")
        gold = load_mask(path)
        arrays[fid, "gold"] = gold
        annotations = {}
        for annotator, objs in simulate(fname, gold).items():
            built = []
            for oid, label, kind, value in objs:
                if kind == "box":
                    built.append(BenchObject(oid, label, "box", box=value))
                    arrays[fid, oid] = box_array(value, gold.shape)
                else:
                    built.append(BenchObject(oid, label, "mask", rle=encode(value)))
                    arrays[fid, oid] = value
            annotations[annotator] = built
        frames.append(FrameInput(fid, fname, [BenchObject("gold", "polyp", "mask", rle=encode(gold))],
                                 annotations))
    report = build_report(frames, labels=LABELS)
    return frames, arrays, report


def test_preconditions_of_the_hand_worked_expectations(case):
    frames, arrays, _ = case
    for f in frames:
        gold = arrays[f.frame_id, "gold"]
        for oid, lo, hi in (("e", 0.5, 1), ("d", 0.5, 1), ("s", 0.5, 1), ("left", 0.5, 1),
                            ("f", 0, 0.5), ("right", 0, 0.5)):
            value = np_iou(arrays[f.frame_id, oid], gold)
            assert lo <= value < hi or value == hi == 1, (f.data_unit_name, oid, value)


def test_counts_match_hand_worked_expectations(case):
    frames, _, report = case
    n = len(frames)
    expected = {   # matched, mismatched, missing, extra (summed over frames)
        "eroded": (n, 0, 0, 0), "dilated": (n, 0, 0, 0), "shifted": (n, 0, 0, 0),
        "far_shift": (0, 0, n, n), "split": (n, 0, 0, n), "wrong_label": (0, n, 0, 0),
        "box": (n, 0, 0, 0), "loose_box": (n, 0, 0, 0), "out_of_scope": (0, 0, n, 0),
    }
    got = {s.annotator: (s.matched, s.mismatched, s.missing, s.extra) for s in report.annotators}
    assert got == expected
    assert report.ignored_labels == ("instrument",)
    by = {s.annotator: s for s in report.annotators}
    assert all(by[a].frames == n and by[a].tasks == n for a in expected)
    assert by["wrong_label"].class_score == 0.0 and by["wrong_label"].mean_iou == 1.0
    assert by["split"].precision == 0.5 and by["split"].recall == 1.0
    assert by["box"].mean_matched_iou == 1.0
    assert 0.5 < by["loose_box"].mean_matched_iou < 1.0
    assert by["out_of_scope"].n_annotator == 0 and by["out_of_scope"].recall == 0.0
    cm = report.confusion["wrong_label"]
    assert cm.labels == ("polyp", "adenoma", "unmatched")
    assert cm.counts == ((0, n, 0), (0, 0, 0), (0, 0, 0))
    assert report.confusion["split"].counts == ((n, 0, 0), (0, 0, 0), (n, 0, 0))


def test_every_reported_iou_matches_pycocotools_and_numpy(case):
    frames, arrays, report = case
    by_frame = {f.frame_id: f for f in frames}
    gold_rle = {fid: f.gold[0].rle for fid, f in by_frame.items()}
    objects = {(f.frame_id, o.id): o for f in frames for objs in f.annotations.values() for o in objs}
    checked = 0
    for row in report.iou_rows:
        obj = objects[row.frame_id, row.object_id]
        gold = arrays[row.frame_id, "gold"]
        if obj.kind == "box":
            x, y, w, h = bbox(gold)
            direct = mask_utils.iou(np.array([obj.box]), np.array([[x, y, w, h]], dtype=float), [0])[0, 0]
            numpy_value = np_iou(arrays[row.frame_id, obj.id], box_array((x, y, w, h), gold.shape))
        else:
            direct = mask_utils.iou([obj.rle], [gold_rle[row.frame_id]], [0])[0, 0]
            numpy_value = np_iou(arrays[row.frame_id, obj.id], gold)
        assert row.iou_score == pytest.approx(direct, abs=1e-12), row
        assert row.iou_score == pytest.approx(numpy_value, abs=1e-9), row
        assert row.dice == pytest.approx(2 * numpy_value / (1 + numpy_value), abs=1e-9)
        checked += 1
    for row in report.matches:
        if row.iou is None:
            continue
        a = arrays[row.frame_id, row.annotator_object]
        gold = arrays[row.frame_id, "gold"]
        obj = objects[row.frame_id, row.annotator_object]
        if obj.kind == "box":
            assert row.iou == pytest.approx(np_iou(a, box_array(bbox(gold), gold.shape)), abs=1e-9)
        else:
            assert row.iou == pytest.approx(mask_utils.iou([obj.rle], [gold_rle[row.frame_id]], [0])[0, 0],
                                            abs=1e-12)
            assert row.iou == pytest.approx(np_iou(a, gold), abs=1e-9)
            inter = (a & gold).sum()
            assert row.dice == pytest.approx(2 * inter / (a.sum() + gold.sum()), abs=1e-9)
        checked += 1
    assert checked == len(report.iou_rows) + sum(r.iou is not None for r in report.matches) > 100


def test_real_masks_of_different_sizes_raise(real: Path):
    kvasir = load_mask(real / "masks" / f"{KVASIR[0]}.jpg")
    cvc = load_mask(real / "masks" / f"{CVC[0]}.tif")
    frame = FrameInput(99, f"{KVASIR[0]}.jpg", [BenchObject("g", "polyp", "mask", rle=encode(kvasir))],
                       {"ann": [BenchObject("a", "polyp", "mask", rle=encode(cvc))]})
    with pytest.raises(InvalidInput, match=rf"frame 99 \('{KVASIR[0]}.jpg'\).*529x622.*288x384"):
        build_report([frame], labels=LABELS)
