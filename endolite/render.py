"""What the annotation canvas shows: a frame (or the part a zoomed viewport shows, at canvas
size) with its masks in their label colours, an unsaved preview, mask ids, and the JPEG the
canvas component is sent.  Pure reads of the frame file and the mask RLEs; the last few images,
resized views, fitted masks and encoded pictures are kept in small per-process caches keyed by
everything that changes the picture (file path + mtime, crop, size, mask id + version + colour,
the preview's pixels, display options), so the reruns a click causes redo nothing."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from endolite import masks as rle
from endolite.config import Settings
from endolite.records import Frame, Mask

_LOCK = threading.Lock()          # the caches below are shared by every session's reruns


def _remember(cache: dict, key: Any, value: Any, limit: int) -> None:
    """``cache[key] = value``, dropping the oldest entries beyond ``limit``."""
    with _LOCK:
        while len(cache) >= limit:
            cache.pop(next(iter(cache)))
        cache[key] = value


def render_frame(settings: Settings, frame: Frame, shown: Sequence[Mask], *,
                 preview: np.ndarray | None = None, preview_color: str = "#ffffff") -> np.ndarray:
    """The frame ``(H, W, 3) uint8`` RGB with ``shown`` masks overlaid in their label colours and
    an optional unsaved ``preview`` mask ``(H, W) bool`` on top."""
    from endolite.media import read_image

    image = read_image(settings.absolute(frame.path))
    items: list[Any] = [m.coco_rle for m in shown]
    colors = [m.color for m in shown]
    if preview is not None and np.asarray(preview).any():
        items.append(np.asarray(preview, dtype=bool))
        colors.append(preview_color)
    return rle.overlay(image, items, colors) if items else image


def render_view(settings: Settings, frame: Frame, shown: Sequence[Mask], view: Any, *,
                preview: np.ndarray | None = None, preview_color: str = "#ffffff",
                opacity: float = 0.45, outline_only: bool = False,
                show_ids: bool = True) -> np.ndarray:
    """What the annotation canvas shows: the region ``view.crop()`` of the frame (``view`` an
    ``endolite.zoom.Viewport``) resized to ``(view.canvas_h, view.canvas_w, 3) uint8`` RGB, with
    ``shown`` masks in their label colours at ``opacity`` (``outline_only``: outlines alone), the
    unsaved ``preview`` ``(H, W) bool`` on top and each mask's id at its bbox's top-left corner
    (or the view's edge, when zoomed past it).

    Only masks whose bbox meets the crop are decoded; they are blended at canvas size, so the
    cost follows the canvas, not the frame."""
    import cv2

    from endolite.media import read_image

    path = settings.absolute(frame.path)
    x0, y0, x1, y1 = view.crop()
    size = (view.canvas_w, view.canvas_h)
    nearest = view.zoom >= 2                  # zoomed in: show the frame's pixels as blocks
    key = (str(path), path.stat().st_mtime, (x0, y0, x1, y1), size, nearest)
    base = _VIEWS.get(key)
    if base is None:                          # reruns of one view (a click's preview) reuse it
        image = _read_cached(read_image, path)
        base = cv2.resize(np.ascontiguousarray(image[y0:y1, x0:x1]), size,
                          interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)
        base.setflags(write=False)
        _remember(_VIEWS, key, base, 8)
    out = base.copy()
    items: list[Any] = []
    colors: list[str] = []

    def fitted(mask: np.ndarray) -> np.ndarray:   # the crop of a (H, W) mask at canvas size
        part = np.ascontiguousarray(mask[y0:y1, x0:x1], dtype=np.uint8)
        return cv2.resize(part, size, interpolation=cv2.INTER_NEAREST).astype(bool)

    for m in shown:
        bx, by, bw, bh = m.bbox
        if bx >= x1 or by >= y1 or bx + bw <= x0 or by + bh <= y0:
            continue                        # outside the view: not decoded
        items.append(_fitted_mask(m, (x0, y0, x1, y1), size))
        colors.append(m.color)
    if preview is not None and np.asarray(preview).any():
        items.append(fitted(np.asarray(preview, dtype=bool)))
        colors.append(preview_color)
    if items:                               # blended at canvas size: cost follows the canvas
        out = rle.overlay(out, items, colors, alpha=0.0 if outline_only else float(opacity),
                          outline_px=2 if outline_only else 1)
    if show_ids:
        for m in shown:
            bx, by, bw, bh = m.bbox
            if bx >= x1 or by >= y1 or bx + bw <= x0 or by + bh <= y0:
                continue                    # corner kept inside the view when zoomed past it
            corner = np.array([[max(bx, view.x0), max(by, view.y0)]])
            cx, cy = view.to_canvas(corner)[0]
            text, org = f"#{m.id}", (int(cx) + 2, max(int(cy) - 3, 11))
            cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


_FITTED: dict[tuple, np.ndarray] = {}


def _fitted_mask(m: Mask, crop: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """Mask ``m``'s part inside ``crop`` ``(x0, y0, x1, y1)`` resized to ``size`` ``(w, h)``:
    ``(h, w) bool``.  Decoded in the RLE's own column order (no full-frame copy) and kept for the
    last few hundred (mask, version, crop, size), so the reruns of one frame (a click's preview,
    a visibility toggle) decode nothing."""
    import cv2

    key = (m.id, m.version, crop, size)
    hit = _FITTED.get(key)
    if hit is not None:
        return hit
    x0, y0, x1, y1 = crop
    columns = rle.decode_columns(m.coco_rle)           # (W, H) uint8 view, C-contiguous
    part = np.ascontiguousarray(columns[x0:x1, y0:y1])
    out = cv2.resize(part, (size[1], size[0]), interpolation=cv2.INTER_NEAREST).T.astype(bool)
    _remember(_FITTED, key, out, 512)
    return out


_IMAGES: dict[str, tuple[float, np.ndarray]] = {}
_VIEWS: dict[tuple, np.ndarray] = {}      # the frame's view resized to the canvas, last few


def _read_cached(read: Callable[[Path], np.ndarray], path: Path) -> np.ndarray:
    """The frame image, kept for the last few frames (by path and mtime): reruns on one frame
    (a click's preview, a zoom) read the file once."""
    key = str(path)
    mtime = path.stat().st_mtime
    hit = _IMAGES.get(key)
    if hit is not None and hit[0] == mtime:
        return hit[1]
    image = read(path)
    image.setflags(write=False)
    _remember(_IMAGES, key, (mtime, image), 8)
    return image


_JPEGS: dict[tuple, bytes] = {}


def preview_mark(preview: np.ndarray | None) -> tuple | None:
    """A short fingerprint of an ``(H, W) bool`` preview mask (its shape and a 128-bit hash of
    its packed bits; ~1 ms for 1280 x 1024), or None without one (an empty mask draws nothing,
    like None)."""
    if preview is None:
        return None
    array = np.asarray(preview, dtype=bool)
    if not array.any():
        return None
    digest = hashlib.blake2b(np.packbits(array).tobytes(), digest_size=16).digest()
    return array.shape, digest


def render_view_jpeg(settings: Settings, frame: Frame, shown: Sequence[Mask], view: Any, *,
                     preview: np.ndarray | None = None, preview_color: str = "#ffffff",
                     opacity: float = 0.45, outline_only: bool = False, show_ids: bool = True,
                     quality: int = 92) -> bytes:
    """:func:`render_view` encoded as JPEG bytes (what the Annotate page hands the canvas
    component), kept for the last few distinct pictures: the run a canvas event causes (a click)
    draws the same picture as the run before it, so it neither renders nor encodes again.

    The key is everything the picture depends on: the frame file (path, mtime), the viewport
    (crop, canvas size, zoom), each shown mask's id, version and colour, the preview's pixels
    (:func:`preview_mark`), the preview colour, opacity, outline and id options, the quality."""
    from endolite.media import encode_image

    path = settings.absolute(frame.path)
    key = (str(path), path.stat().st_mtime_ns, view.crop(), view.canvas_w, view.canvas_h,
           view.state(), tuple((m.id, m.version, m.color) for m in shown), preview_mark(preview),
           preview_color, round(float(opacity), 4), bool(outline_only), bool(show_ids), quality)
    hit = _JPEGS.get(key)
    if hit is not None:
        return hit
    picture = render_view(settings, frame, shown, view, preview=preview, preview_color=preview_color,
                          opacity=opacity, outline_only=outline_only, show_ids=show_ids)
    data = encode_image(picture, fmt="jpg", quality=quality)
    _remember(_JPEGS, key, data, 16)
    return data
