"""Appearance agreement: normalised cross-correlation between the motion-compensated source
frame and the target frame around (or inside) the warped object, at working resolution."""

from __future__ import annotations

import math

import numpy as np

from endolite.propagate.flow import _Hypothesis
from endolite.propagate.prepare import _grid, _Prepared, _remap


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float32) - float(a.mean())
    b = b.astype(np.float32) - float(b.mean())
    denom = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / denom) if denom > 1e-6 else 0.0


def _score(mx: np.ndarray, my: np.ndarray, src: _Prepared, dst: _Prepared, small_mask: np.ndarray
           ) -> tuple[float, np.ndarray]:
    """NCC between the motion-compensated source and the target around the warped object, and
    the warped small soft mask.  NCC is -1 when the object vanished or left no valid pixels."""
    import cv2

    h, w = src.grey.shape
    warped = _remap(small_mask, mx, my)
    inside = warped >= 0.5
    count = int(inside.sum())
    if count == 0:
        return -1.0, warped
    ring = max(3, int(round(0.25 * math.sqrt(count))))
    region = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 3) <= ring
    compensated = _remap(src.grey, mx, my)
    valid = region & (mx >= 0) & (my >= 0) & (mx <= w - 1) & (my <= h - 1)
    if int(valid.sum()) < 16:
        return -1.0, warped
    return _ncc(compensated[valid], dst.grey[valid]), warped


def _interior_ncc(mx: np.ndarray, my: np.ndarray, src: _Prepared, dst: _Prepared,
                  small_mask: np.ndarray, box: tuple[slice, slice] | None = None
                  ) -> tuple[float, np.ndarray]:
    """Like :func:`_score` but over the warped object's interior only (2 px in from its edge),
    for maps whose values outside the object follow the object rather than the background.
    With ``box`` (working-res row/column slices known to hold the whole warped object) the work
    is done there only; the returned warped soft mask is then 0 outside it."""
    import cv2

    h, w = src.grey.shape
    box = box or (slice(0, dst.grey.shape[0]), slice(0, dst.grey.shape[1]))
    mx, my = mx[box], my[box]
    warped = np.zeros(dst.grey.shape, dtype=np.float32)
    warped[box] = _remap(small_mask, mx, my)
    inside = warped[box] >= 0.5
    if not inside.any():
        return -1.0, warped
    depth = cv2.distanceTransform(np.pad(inside, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    region = depth > min(2.0, 0.5 * float(depth.max()))
    valid = region & (mx >= 0) & (my >= 0) & (mx <= w - 1) & (my <= h - 1)
    if int(valid.sum()) < 16:
        return -1.0, warped
    return _ncc(_remap(src.grey, mx, my)[valid], dst.grey[box][valid]), warped


def _evaluate(hyp: _Hypothesis, src: _Prepared, dst: _Prepared, small_mask: np.ndarray
              ) -> tuple[float, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """NCC score, warped small soft mask, and the full working-res source maps of ``hyp``."""
    mx, my = hyp.source_of(*_grid(dst.grey.shape))
    ncc, warped = _score(mx, my, src, dst, small_mask)
    return ncc, warped, (mx, my)
