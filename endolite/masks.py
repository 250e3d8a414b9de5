"""Binary masks as COCO run-length encoding (RLE), plus PNG io, overlays and drawing helpers.

Format (the spec is pycocotools' ``mask.py`` header): an RLE is the dict
``{"size": [H, W], "counts": str}`` where ``counts`` is the compressed string of alternating
0/1 run lengths over the mask read in **column-major (Fortran) order**, starting with a run of
zeros.  Masks as arrays are ``(H, W) bool``; points and boxes are in pixel coordinates
``(x, y)`` with x to the right (column) and y down (row); boxes for drawing are
``(x0, y0, x1, y1)`` and COCO boxes returned by :func:`bbox` are ``(x, y, w, h)``.

Empty-mask policy (an RLE with no foreground pixel is valid and round-trips):

- ``area`` is 0 and ``bbox`` is ``(0, 0, 0, 0)``.
- ``iou(empty, empty)`` is ``empty_iou`` (default **1.0**: two masks that agree that nothing
  is there are identical); ``iou(empty, non-empty)`` is 0.0.
- ``merge([])`` needs ``height``/``width`` and returns the empty mask of that size.

Everything here except the drawing/overlay helpers works on RLE without decoding.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from endolite.errors import InvalidInput

RLE = dict[str, Any]
MaskLike = Union[np.ndarray, RLE]


def _coco():
    from pycocotools import mask as coco_mask

    return coco_mask


def _check_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InvalidInput(f"mask must be 2-D (H, W), got shape {mask.shape}")
    if mask.shape[0] == 0 or mask.shape[1] == 0:
        raise InvalidInput(f"mask must not be empty-sized, got shape {mask.shape}")
    return mask


def _native(rle: RLE) -> RLE:
    """The form pycocotools wants: counts as bytes, size as a list of two ints."""
    try:
        size = [int(rle["size"][0]), int(rle["size"][1])]
        counts = rle["counts"]
    except (KeyError, TypeError, IndexError) as exc:
        raise InvalidInput(f"not an RLE dict with 'size' and 'counts': {exc}") from exc
    if isinstance(counts, list):  # uncompressed COCO RLE (iscrowd=1 style): compress it
        return _coco().frPyObjects({"size": size, "counts": counts}, size[0], size[1])
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return {"size": size, "counts": counts}


def _public(rle: RLE) -> RLE:
    counts = rle["counts"]
    return {"size": [int(rle["size"][0]), int(rle["size"][1])],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


# --- RLE core ---------------------------------------------------------------------------------

def encode(mask: np.ndarray) -> RLE:
    """``(H, W)`` mask (bool, or any dtype: non-zero is foreground) -> ``{"size": [H, W], "counts": str}``."""
    mask = _check_mask(mask)
    fortran = np.asfortranarray(mask != 0, dtype=np.uint8)
    return _public(_coco().encode(fortran))


def decode(rle: RLE) -> np.ndarray:
    """RLE -> ``(H, W) bool`` array (C-contiguous)."""
    return np.ascontiguousarray(_coco().decode(_native(rle)).astype(bool))


def decode_columns(rle: RLE) -> np.ndarray:
    """RLE -> the mask transposed, ``(W, H) uint8`` 0/1 (C-contiguous): COCO's own column order,
    with no copy into row order (``decode(rle) == decode_columns(rle).T.astype(bool)``)."""
    return _coco().decode(_native(rle)).T


def size(rle: RLE) -> tuple[int, int]:
    """``(H, W)`` of an RLE."""
    return int(rle["size"][0]), int(rle["size"][1])


def area(rle: RLE) -> int:
    """Foreground pixel count (0 for an empty mask)."""
    return int(_coco().area(_native(rle)))


def bbox(rle: RLE) -> tuple[int, int, int, int]:
    """Tight COCO box ``(x, y, w, h)`` in pixels; ``(0, 0, 0, 0)`` for an empty mask."""
    x, y, w, h = _coco().toBbox(_native(rle)).tolist()
    return int(round(x)), int(round(y)), int(round(w)), int(round(h))


def iou(a: Sequence[RLE] | RLE, b: Sequence[RLE] | RLE, *, empty_iou: float = 1.0) -> np.ndarray:
    """IoU matrix ``(len(a), len(b)) float64`` computed on RLE (no decoding).

    A single RLE dict counts as a list of one.  All masks must share one ``(H, W)``.  Two empty
    masks score ``empty_iou`` (default 1.0); an empty and a non-empty mask score 0.0.
    """
    a_list = [a] if isinstance(a, dict) else list(a)
    b_list = [b] if isinstance(b, dict) else list(b)
    out = np.zeros((len(a_list), len(b_list)), dtype=np.float64)
    if not a_list or not b_list:
        return out
    a_native = [_native(r) for r in a_list]
    b_native = [_native(r) for r in b_list]
    sizes = {tuple(r["size"]) for r in a_native + b_native}
    if len(sizes) != 1:
        raise InvalidInput(f"masks of different sizes cannot be compared: {sorted(sizes)}")
    coco = _coco()
    out[:] = np.asarray(coco.iou(a_native, b_native, [0] * len(b_native)), dtype=np.float64)
    a_empty = np.asarray(coco.area(a_native)) == 0
    b_empty = np.asarray(coco.area(b_native)) == 0
    out[np.ix_(a_empty, b_empty)] = empty_iou
    return out


def merge(rles: Sequence[RLE], *, intersect: bool = False, height: int | None = None,
          width: int | None = None) -> RLE:
    """Union (or intersection with ``intersect=True``) of same-sized RLEs, as one RLE.

    ``merge([])`` returns the empty mask of ``(height, width)`` (both required then).
    """
    items = [_native(r) for r in rles]
    if not items:
        if height is None or width is None:
            raise InvalidInput("merge of no masks needs height and width")
        return encode(np.zeros((height, width), dtype=bool))
    sizes = {tuple(r["size"]) for r in items}
    if len(sizes) != 1:
        raise InvalidInput(f"masks of different sizes cannot be merged: {sorted(sizes)}")
    return _public(_coco().merge(items, intersect=bool(intersect)))


def as_array(mask: MaskLike) -> np.ndarray:
    """An RLE dict or an array -> ``(H, W) bool`` array."""
    if isinstance(mask, dict):
        return decode(mask)
    return _check_mask(mask) != 0


def array_iou(a: np.ndarray, b: np.ndarray, *, empty_iou: float = 1.0) -> float:
    """IoU of two ``(H, W)`` arrays (same empty-mask policy as :func:`iou`)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise InvalidInput(f"masks of different sizes cannot be compared: {a.shape} vs {b.shape}")
    union = int(np.count_nonzero(a | b))
    if union == 0:
        return float(empty_iou)
    return int(np.count_nonzero(a & b)) / union


# --- files ------------------------------------------------------------------------------------

def to_png(mask: MaskLike) -> bytes:
    """PNG bytes of a mask: 8-bit grey, foreground 255, background 0."""
    from PIL import Image

    array = as_array(mask).astype(np.uint8) * 255
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def from_image(image: np.ndarray, *, threshold: int = 128) -> np.ndarray:
    """A decoded mask image (``(H, W)`` or ``(H, W, C)``, any integer/bool dtype) -> ``(H, W) bool``.

    Colour images use the brightest channel.  Values ``>= threshold`` are foreground, except
    that an image whose maximum is 1 (0/1 label PNGs) counts every non-zero pixel.
    """
    array = np.asarray(image)
    if array.ndim == 3:
        if array.shape[2] in (2, 4):  # drop alpha
            array = array[:, :, : array.shape[2] - 1]
        array = array.max(axis=2)
    array = _check_mask(array)
    if array.dtype == bool:
        return array.copy()
    top = array.max()
    if np.issubdtype(array.dtype, np.floating):
        return array >= (0.5 if top <= 1.0 else threshold)
    if top <= 1:
        return array > 0
    if array.dtype != np.uint8:  # e.g. 16-bit masks: scale to 0..255 before thresholding
        array = array.astype(np.float64) * (255.0 / float(np.iinfo(array.dtype).max))
    return array >= threshold


def from_image_file(source: str | os.PathLike[str] | bytes, *, threshold: int = 128) -> np.ndarray:
    """Read a mask from a PNG / JPEG / TIFF file (or its bytes) -> ``(H, W) bool``.

    JPEG masks (Kvasir-SEG) carry ringing: grey values are thresholded at ``threshold`` (128).
    TIFFs Pillow cannot open (CVC-ClinicDB) are read with tifffile.
    """
    from PIL import Image

    if isinstance(source, (bytes, bytearray)):
        try:
            with Image.open(io.BytesIO(source)) as im:
                return from_image(np.asarray(im), threshold=threshold)
        except InvalidInput:
            raise
        except Exception as exc:  # noqa: BLE001
            raise InvalidInput(f"mask bytes: cannot decode image ({exc})") from exc
    path = Path(source)
    try:
        with Image.open(path) as im:
            im.load()
            return from_image(np.asarray(im), threshold=threshold)
    except InvalidInput:
        raise
    except Exception as exc:  # noqa: BLE001 - TIFFs Pillow cannot read
        if path.suffix.lower() not in (".tif", ".tiff"):
            raise InvalidInput(f"{path.name}: cannot decode mask image ({exc})") from exc
        try:
            import tifffile

            return from_image(np.asarray(tifffile.imread(path)), threshold=threshold)
        except Exception as exc2:  # noqa: BLE001
            raise InvalidInput(f"{path.name}: cannot decode mask image ({exc}; tifffile: {exc2})") from exc2


# --- drawing ----------------------------------------------------------------------------------

def polygon_to_mask(points: np.ndarray | Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Fill a polygon given as ``(N, 2)`` float ``(x, y)`` vertices -> ``(H, W) bool``.

    Rasterised with pycocotools (the COCO polygon convention), so a polygon exported to COCO
    and read back gives the same pixels.  Fewer than 3 vertices give an empty mask.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) < 3:
        return np.zeros((height, width), dtype=bool)
    rles = _coco().frPyObjects([pts.ravel().tolist()], int(height), int(width))
    return np.ascontiguousarray(_coco().decode(_coco().merge(rles)).astype(bool))


def box_to_mask(box: Sequence[float], height: int, width: int) -> np.ndarray:
    """Fill a box ``(x0, y0, x1, y1)`` (pixel-edge coordinates, any corner order) -> ``(H, W) bool``.

    Pixel ``(x, y)`` (column, row) is inside when ``x0 <= x + 0.5 < x1`` and likewise for y,
    i.e. pixels whose centre lies in the box; the box is clipped to the image.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    c0, c1 = int(np.clip(np.ceil(x0 - 0.5), 0, width)), int(np.clip(np.ceil(x1 - 0.5), 0, width))
    r0, r1 = int(np.clip(np.ceil(y0 - 0.5), 0, height)), int(np.clip(np.ceil(y1 - 0.5), 0, height))
    mask = np.zeros((height, width), dtype=bool)
    mask[r0:r1, c0:c1] = True
    return mask


def _rgb_color(color: str | Sequence[int]) -> np.ndarray:
    if isinstance(color, str):
        text = color.lstrip("#")
        if len(text) != 6:
            raise InvalidInput(f"colour {color!r}: use '#RRGGBB'")
        return np.array([int(text[i:i + 2], 16) for i in (0, 2, 4)], dtype=np.float32)
    values = np.asarray(color, dtype=np.float32).reshape(-1)[:3]
    if values.size != 3:
        raise InvalidInput(f"colour {color!r}: use '#RRGGBB' or (r, g, b)")
    return values


DEFAULT_COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
                  "#bfef45")


def outline(mask: np.ndarray, *, thickness: int = 1) -> np.ndarray:
    """``(H, W) bool`` boundary pixels of a mask (foreground with a background 4-neighbour)."""
    mask = np.asarray(mask, dtype=bool)
    edge = np.zeros_like(mask)
    current = mask
    for _ in range(max(1, thickness)):
        padded = np.pad(current, 1, mode="constant", constant_values=False)
        eroded = (padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1]
                  & padded[1:-1, :-2] & padded[1:-1, 2:])
        edge |= current & ~eroded
        current = eroded
    return edge


def overlay(rgb: np.ndarray, masks: Sequence[MaskLike], colors: Sequence[str | Sequence[int]] | None = None,
            *, alpha: float = 0.45, outline_px: int = 2) -> np.ndarray:
    """Blend masks onto an ``(H, W, 3) uint8`` RGB image for display -> new ``(H, W, 3) uint8``.

    Each mask (array or RLE, same ``(H, W)`` as the image) is filled with its colour
    (``'#RRGGBB'`` or ``(r, g, b)``; default palette when ``colors`` is None) at opacity
    ``alpha`` and outlined ``outline_px`` pixels wide at full opacity (0 = no outline).
    Later masks are drawn over earlier ones.
    """
    image = np.asarray(rgb)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInput(f"overlay needs an (H, W, 3) RGB image, got shape {image.shape}")
    import cv2

    out = np.array(image, dtype=np.uint8, copy=True)
    for i, mask in enumerate(masks):
        array = as_array(mask)
        if array.shape != image.shape[:2]:
            raise InvalidInput(f"mask {i} is {array.shape}, image is {image.shape[:2]}")
        color = _rgb_color(colors[i] if colors is not None else DEFAULT_COLORS[i % len(DEFAULT_COLORS)])
        rows, cols = np.flatnonzero(array.any(axis=1)), np.flatnonzero(array.any(axis=0))
        if len(rows) == 0:
            continue
        # work inside the mask's box (plus the outline margin): cost follows the object, not the frame
        y0, y1 = max(rows[0] - 1, 0), min(rows[-1] + 2, array.shape[0])
        x0, x1 = max(cols[0] - 1, 0), min(cols[-1] + 2, array.shape[1])
        crop, part = array[y0:y1, x0:x1], out[y0:y1, x0:x1]
        fill = np.empty_like(part)
        fill[:] = np.asarray(color, dtype=np.uint8)
        blended = cv2.addWeighted(part, 1.0 - alpha, fill, alpha, 0.0)   # rounds to nearest
        np.copyto(part, blended, where=crop[..., None])
        if outline_px > 0:
            part[outline(crop, thickness=outline_px)] = color
    return out
