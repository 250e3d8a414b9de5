"""Frames at the working resolution of the flow, and bilinear sampling on that grid.

A frame ``(H, W, 3) uint8`` RGB becomes a ``_Prepared``: its grey picture ``(h, w) uint8`` at
the working resolution (long side ``flow_long_side``, never upscaled) and the scale between the
two grids.  Maps and flows are ``(h, w) float32`` in working-res pixels, (x, y) = (column, row).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from endolite.errors import InvalidInput


@dataclass(frozen=True, eq=False)
class _Prepared:
    grey: np.ndarray                    # (h, w) uint8 at working resolution
    scale: tuple[float, float]          # (sx, sy): small = (full + 0.5) * s - 0.5
    full_shape: tuple[int, int]         # (H, W)
    features: list = field(default_factory=list)  # lazily filled [(keypoints (N, 2), descriptors)]
    borders: dict = field(default_factory=dict)   # lazily filled {reach: (h, w) float32 | None}


def _prepare(frame: np.ndarray, long_side: int) -> _Prepared:
    import cv2

    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise InvalidInput(f"frames must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
    height, width = frame.shape[:2]
    factor = min(1.0, long_side / max(height, width))
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)       # grey first: one channel to resize
    if factor < 1.0:
        w, h = max(8, round(width * factor)), max(8, round(height * factor))
        grey = cv2.resize(grey, (w, h), interpolation=cv2.INTER_AREA)
    else:
        h, w = height, width
    return _Prepared(grey, (w / width, h / height), (height, width))


@functools.lru_cache(maxsize=4)
def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(gx, gy)`` float32 pixel coordinates of an ``(h, w)`` grid (cached, read-only)."""
    gx = np.broadcast_to(np.arange(shape[1], dtype=np.float32), shape).copy()
    gy = np.broadcast_to(np.arange(shape[0], dtype=np.float32)[:, None], shape).copy()
    gx.flags.writeable = gy.flags.writeable = False
    return gx, gy


def _remap(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, *,
           replicate: bool = False) -> np.ndarray:
    """Bilinear lookup ``image[map_y, map_x]``; outside is 0 (or the nearest edge value)."""
    import cv2

    border = cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT
    return cv2.remap(image, map_x.astype(np.float32, copy=False), map_y.astype(np.float32, copy=False),
                     cv2.INTER_LINEAR, borderMode=border, borderValue=0)


def _lookup2(a: np.ndarray, b: np.ndarray, px: np.ndarray, py: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """``(a[py, px], b[py, px])`` bilinear with edge replication, as one 2-channel lookup."""
    both = _remap(np.dstack((a, b)), px, py, replicate=True)
    return both[..., 0], both[..., 1]


def _roi(inside: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """Row/column slices of the bounding box of ``inside`` grown by ``margin`` (clipped)."""
    rows = np.flatnonzero(inside.any(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(inside.any(axis=0))
    h, w = inside.shape
    return (slice(max(0, rows[0] - margin), min(h, rows[-1] + 1 + margin)),
            slice(max(0, cols[0] - margin), min(w, cols[-1] + 1 + margin)))
