"""COCO RLE masks: round trips (H != W), IoU/area/bbox/merge on RLE, files, drawing, overlays."""

from __future__ import annotations

import io

import numpy as np
import pytest

from endolite import masks
from endolite.errors import InvalidInput

H, W = 37, 53  # H != W catches transposes


def _random_masks(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        yy, xx = np.mgrid[0:H, 0:W]
        cx, cy, r = rng.uniform(0, W), rng.uniform(0, H), rng.uniform(3, 20)
        out.append((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r)
    return out


def test_round_trip_non_square_is_column_major():
    mask = np.zeros((H, W), dtype=bool)
    mask[1, 3] = True            # row 1, column 3
    mask[10:20, 30:50] = True
    rle = masks.encode(mask)
    assert rle["size"] == [H, W]
    assert isinstance(rle["counts"], str)
    decoded = masks.decode(rle)
    assert decoded.shape == (H, W) and decoded.dtype == bool
    assert np.array_equal(decoded, mask)
    # the first run counts zeros down column 0, then column 1, ... (Fortran order)
    from pycocotools import mask as coco

    expected = coco.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()
    assert rle["counts"] == expected


@pytest.mark.parametrize("fill", [False, True])
def test_empty_and_full_masks_round_trip(fill):
    mask = np.full((H, W), fill, dtype=bool)
    rle = masks.encode(mask)
    assert np.array_equal(masks.decode(rle), mask)
    assert masks.area(rle) == (H * W if fill else 0)
    assert masks.bbox(rle) == ((0, 0, W, H) if fill else (0, 0, 0, 0))


def test_area_and_bbox_are_x_y_w_h():
    mask = np.zeros((H, W), dtype=bool)
    mask[2:6, 10:21] = True      # rows 2..5, columns 10..20
    rle = masks.encode(mask)
    assert masks.area(rle) == 4 * 11
    assert masks.bbox(rle) == (10, 2, 11, 4)


def test_iou_matrix_matches_numpy():
    a, b = _random_masks(4, seed=1), _random_masks(3, seed=2)
    got = masks.iou([masks.encode(m) for m in a], [masks.encode(m) for m in b])
    assert got.shape == (4, 3)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            union = (x | y).sum()
            expected = (x & y).sum() / union if union else 1.0
            assert got[i, j] == pytest.approx(expected, abs=1e-9)
            assert masks.array_iou(x, y) == pytest.approx(expected, abs=1e-9)


def test_empty_mask_iou_policy():
    empty = masks.encode(np.zeros((H, W), bool))
    some = masks.encode(_random_masks(1)[0])
    assert masks.iou(empty, empty)[0, 0] == 1.0
    assert masks.iou([empty], [empty], empty_iou=0.0)[0, 0] == 0.0
    assert masks.iou(empty, some)[0, 0] == 0.0
    assert masks.iou(some, empty)[0, 0] == 0.0
    assert masks.array_iou(np.zeros((2, 3)), np.zeros((2, 3))) == 1.0
    assert masks.iou([], [some]).shape == (0, 1)


def test_iou_of_different_sizes_is_refused():
    with pytest.raises(InvalidInput, match="different sizes"):
        masks.iou(masks.encode(np.ones((3, 4), bool)), masks.encode(np.ones((4, 3), bool)))


def test_merge_union_and_intersection_match_numpy():
    a, b = _random_masks(2, seed=3)
    rles = [masks.encode(a), masks.encode(b)]
    assert np.array_equal(masks.decode(masks.merge(rles)), a | b)
    assert np.array_equal(masks.decode(masks.merge(rles, intersect=True)), a & b)
    assert masks.area(masks.merge([], height=H, width=W)) == 0
    with pytest.raises(InvalidInput):
        masks.merge([])


def test_uncompressed_rle_counts_are_accepted():
    mask = _random_masks(1, seed=4)[0]
    flat = mask.flatten(order="F").astype(np.uint8)
    runs, current, count = [], 0, 0
    for value in flat:
        if value == current:
            count += 1
        else:
            runs.append(count)
            current, count = value, 1
    runs.append(count)
    assert np.array_equal(masks.decode({"size": [H, W], "counts": runs}), mask)


def test_png_round_trip_and_bytes(tmp_path):
    mask = _random_masks(1, seed=5)[0]
    data = masks.to_png(masks.encode(mask))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(masks.from_image_file(data), mask)
    path = tmp_path / "m.png"
    path.write_bytes(data)
    assert np.array_equal(masks.from_image_file(path), mask)


def test_jpeg_masks_are_thresholded_at_128(tmp_path):
    from PIL import Image

    mask = _random_masks(1, seed=6)[0]
    rgb = np.repeat((mask * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    path = tmp_path / "m.jpg"
    Image.fromarray(rgb).save(path, quality=70)
    grey = np.asarray(Image.open(path))
    assert len(np.unique(grey)) > 2, "JPEG ringing should add grey values"
    assert masks.array_iou(masks.from_image_file(path), mask) > 0.95


def test_tiff_and_label_images(tmp_path):
    import tifffile

    mask = _random_masks(1, seed=7)[0]
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, mask.astype(np.uint8) * 255)
    assert np.array_equal(masks.from_image_file(path), mask)
    assert np.array_equal(masks.from_image(mask.astype(np.uint8)), mask)  # 0/1 labels
    assert np.array_equal(masks.from_image(mask.astype(np.uint16) * 65535), mask)
    with pytest.raises(InvalidInput, match="cannot decode"):
        masks.from_image_file(io.BytesIO(b"not an image").getvalue())


def test_real_masks_read_as_bool(real):
    kvasir = sorted((real / "masks").glob("cju*.jpg"))[0]
    mask = masks.from_image_file(kvasir)
    from endolite.media import read_image

    image = read_image(real / "images" / kvasir.name)
    assert mask.shape == image.shape[:2] and mask.dtype == bool and 0 < mask.mean() < 1
    cvc = masks.from_image_file(real / "masks" / "13.tif")
    assert cvc.shape == (288, 384) and cvc.any()


def test_polygon_and_box_helpers_use_x_y():
    # a polygon in the left part of the image (x < 20) covering rows 5..30
    poly = masks.polygon_to_mask([(2, 5), (20, 5), (20, 30), (2, 30)], H, W)
    assert poly.shape == (H, W)
    cols = np.nonzero(poly.any(axis=0))[0]
    rows = np.nonzero(poly.any(axis=1))[0]
    assert cols.max() <= 20 and rows.max() <= 30 and rows.min() >= 4
    assert abs(int(poly.sum()) - 18 * 25) < 60
    assert not masks.polygon_to_mask([(1, 1), (2, 2)], H, W).any()
    box = masks.box_to_mask((2, 3, 5, 7), H, W)
    assert np.array_equal(np.nonzero(box.any(axis=0))[0], [2, 3, 4])
    assert np.array_equal(np.nonzero(box.any(axis=1))[0], [3, 4, 5, 6])
    assert masks.box_to_mask((5, 7, 2, 3), H, W).sum() == box.sum()   # any corner order
    assert masks.box_to_mask((-10, -10, 1000, 1000), H, W).all()      # clipped


def test_overlay_blends_only_inside_masks():
    rgb = np.full((H, W, 3), 100, np.uint8)
    a, b = _random_masks(2, seed=8)
    out = masks.overlay(rgb, [a, masks.encode(b)], ["#ff0000", (0, 0, 255)], alpha=0.5, outline_px=0)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert (out[~(a | b)] == 100).all()
    only_a = a & ~b
    if only_a.any():
        assert (out[only_a][:, 0] > 150).all() and (out[only_a][:, 2] < 100).all()
    outlined = masks.overlay(rgb, [a], ["#00ff00"], alpha=0.0, outline_px=1)
    assert (outlined[masks.outline(a)] == (0, 255, 0)).all()
    assert (rgb == 100).all(), "the input image is not modified"
    with pytest.raises(InvalidInput):
        masks.overlay(rgb, [np.zeros((W, H), bool)])
    with pytest.raises(InvalidInput):
        masks.overlay(rgb, [a], ["red"])
