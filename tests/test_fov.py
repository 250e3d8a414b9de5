"""Field-of-view detection (endolite/anonymize/fov.py): synthetic shapes with text, and real frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from endolite.anonymize.fov import FieldOfView, detect_fov, detect_fov_video
from endolite.errors import InvalidInput


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum()) / float(np.logical_or(a, b).sum())


def _texture(height: int, width: int, seed: int) -> np.ndarray:
    """(H, W, 3) uint8 tissue-like texture: reddish, with dark blobs (a lumen) and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = 120 + 50 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    img = np.stack([base + 40, base * 0.6, base * 0.5], axis=-1) + rng.normal(0, 12, (height, width, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    cv2.circle(img, (width // 2, height // 2), min(height, width) // 10, (8, 4, 4), -1)  # dark lumen
    return img


def _with_text(img: np.ndarray, spots: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Draw white patient-like text at each (x, y) baseline; returns (image, text mask (H, W) bool)."""
    text = np.zeros(img.shape[:2], np.uint8)
    for i, (x, y) in enumerate(spots):
        label = ["DOE^JOHN", "ID 123456", "12/03/2024", "M 45Y"][i % 4]
        cv2.putText(text, label, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1, cv2.LINE_AA)
    out = img.copy()
    out[text > 0] = 255
    return out, text > 0


def _disc_frame(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """240x360 frame: textured disc (centre (200, 120), radius 105) on black, text left of it."""
    height, width = 240, 360
    shape = np.zeros((height, width), np.uint8)
    cv2.circle(shape, (200, 120), 105, 1, -1)
    img = _texture(height, width, seed) * shape[..., None]
    img, text = _with_text(img, [(2, 20), (2, 60), (2, 225), (310, 230)])
    return img, shape.astype(bool), text


def _octagon_frame() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """300x420 frame: textured octagon on black, with a text panel left of it."""
    height, width = 300, 420
    octagon = np.array([[160, 10], [350, 10], [410, 70], [410, 230], [350, 290], [160, 290],
                        [100, 230], [100, 70]], np.int32)
    shape = np.zeros((height, width), np.uint8)
    cv2.fillPoly(shape, [octagon], 1)
    img = _texture(height, width, 1) * shape[..., None]
    img, text = _with_text(img, [(2, 30), (2, 60), (2, 90), (2, 280)])
    return img, shape.astype(bool), text


@pytest.mark.parametrize("make", [_disc_frame, _octagon_frame])
def test_synthetic_shape_found_and_text_excluded(make):
    img, truth, text = make()
    assert text.sum() > 200 and not (text & truth).any()  # the test draws real text, outside the shape
    fov = detect_fov(img)
    assert isinstance(fov, FieldOfView)
    assert fov.mask.shape == img.shape[:2] and fov.mask.dtype == bool
    iou = _iou(fov.mask, truth)
    print(f"{make.__name__}: IoU {iou:.4f}")
    assert iou >= 0.97
    assert not (fov.mask & text).any()
    ys, xs = np.nonzero(truth)
    x0, y0, x1, y1 = fov.bbox
    assert abs(x0 - xs.min()) <= 2 and abs(y0 - ys.min()) <= 2
    assert abs(x1 - (xs.max() + 1)) <= 2 and abs(y1 - (ys.max() + 1)) <= 2
    assert fov.polygon.ndim == 2 and fov.polygon.shape[1] == 2 and len(fov.polygon) >= 8
    assert abs(fov.area_fraction - truth.mean()) < 0.01


def test_dark_frame_gives_empty_fov():
    fov = detect_fov(np.zeros((120, 160, 3), np.uint8))
    assert not fov.mask.any() and fov.area_fraction == 0.0 and fov.bbox == (0, 0, 0, 0)
    assert fov.polygon.shape == (0, 2)


def test_bad_input_rejected():
    with pytest.raises(InvalidInput):
        detect_fov(np.zeros((120, 160), np.uint8))
    with pytest.raises(InvalidInput):
        detect_fov(np.zeros((120, 160, 3), np.float32))
    with pytest.raises(InvalidInput):
        detect_fov_video([])
    with pytest.raises(InvalidInput):
        detect_fov_video([np.zeros((120, 160, 3), np.uint8), np.zeros((100, 160, 3), np.uint8)])


def test_video_ignores_dark_and_half_dark_frames():
    frames = []
    for seed in range(5):
        img, truth, text = _disc_frame(seed)
        frames.append(img)
    dark = np.zeros_like(frames[0])
    half = frames[0].copy()
    half[:, :200] //= 12  # a frame whose left half is nearly black: alone it shrinks the FOV
    assert _iou(detect_fov(half).mask, truth) < 0.8
    fov = detect_fov_video(iter([dark, half, *frames]))
    iou = _iou(fov.mask, truth)
    print(f"video (dark + half-dark + 5 frames): IoU {iou:.4f}")
    assert iou >= 0.97 and not (fov.mask & text).any()
    assert not detect_fov_video([dark, dark]).mask.any()


# Hand-checked FOV regions of real frames, as (x, y) polygons (filled with cv2.fillPoly).  Each
# vertex was read off the brightness edges (first/last pixel above the black surround on the
# border rows/columns) and the outline was drawn on the image and checked by eye.
REAL_FOV = {
    # Kvasir-SEG: octagons touching the frame border.
    "cju0qkwl35piu0993l0dewei2.jpg": [(120, 0), (494, 0), (621, 127), (621, 406), (499, 528),
                                      (116, 528), (0, 409), (0, 120)],
    # Asymmetric: the lower-right cut is long (crisp edge from (1213, 590) to (790, 1012));
    # the last 6 rows are black.
    "cju0sr5ghl0nd08789uzf1raf.jpg": [(222, 0), (1006, 0), (1213, 226), (1213, 590), (790, 1012),
                                      (236, 1012), (0, 758), (0, 247)],
    "cju8dn0c3u2v50801k8rvq02f.jpg": [(243, 0), (1105, 0), (1347, 248), (1347, 831), (1113, 1069),
                                      (235, 1069), (0, 828), (0, 248)],
    # CVC-ClinicDB (384x288): an octagon inside a black surround (surround values up to 12).
    "13.tif": [(43, 55), (89, 14), (313, 14), (358, 57), (358, 238), (313, 279), (87, 279), (43, 238)],
    "115.tif": [(43, 56), (86, 15), (313, 15), (357, 54), (357, 238), (313, 279), (89, 279), (43, 240)],
    "202.tif": [(43, 57), (87, 14), (310, 14), (355, 53), (357, 234), (313, 279), (89, 279), (43, 239)],
}


@pytest.mark.parametrize("name", sorted(REAL_FOV))
def test_real_frames_match_hand_checked_region(real, name):
    path = real / "images" / name
    if path.suffix == ".tif":
        # CVC TIFFs: Pillow cannot open them and cv2 (4.x) returns only the first channel as grey.
        import tifffile

        img = np.asarray(tifffile.imread(path))
    else:
        img = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert img.shape == (*img.shape[:2], 3) and img.dtype == np.uint8, name
    truth = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(truth, [np.array(REAL_FOV[name], np.int32)], 1)
    fov = detect_fov(img)
    iou = _iou(fov.mask, truth.astype(bool))
    print(f"{name}: IoU {iou:.4f}")
    assert iou >= 0.9
