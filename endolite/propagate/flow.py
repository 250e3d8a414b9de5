"""Dense optical flow (OpenCV DIS), backward mappings built on it, and boundary-aware flow.

Flows are ``(h, w, 2) float32`` holding ``(dx, dy)`` in working-res pixels; a mapping sends a
target pixel (x, y) to the source position its value is looked up at.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from endolite.errors import InvalidInput
from endolite.propagate.options import PropagationOptions
from endolite.propagate.prepare import _grid, _lookup2, _remap, _roi

_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}


def make_flow(options: PropagationOptions = PropagationOptions(), *, long_side: int = 384) -> Any:
    """An OpenCV DIS optical-flow object configured from ``options`` for working images whose
    long side is ``long_side`` px."""
    import cv2

    if options.dis_preset not in _PRESETS:
        raise InvalidInput(f"dis_preset {options.dis_preset!r}: use one of {sorted(_PRESETS)}")
    dis = cv2.DISOpticalFlow_create(_PRESETS[options.dis_preset])
    if options.dis_preset == "medium":
        dis.setPatchSize(options.patch_size)
        dis.setPatchStride(options.patch_stride)
    finest = options.finest_scale
    if finest is None:
        finest = 0 if long_side <= 256 else 1
    dis.setFinestScale(int(finest))
    if options.dis_preset == "medium":
        dis.setVariationalRefinementIterations(options.refinement_iterations)
    return dis


def dense_flow(dis: Any, source_grey: np.ndarray, target_grey: np.ndarray) -> np.ndarray:
    """DIS flow ``(h, w, 2) float32``: pixel (x, y) of ``source_grey`` moves to (x+dx, y+dy)."""
    return dis.calc(source_grey, target_grey, None)


class _DenseMap:
    """A backward mapping given as dense maps ``(h, w) float32`` over the target working grid."""

    def __init__(self, name: str, map_x: np.ndarray, map_y: np.ndarray):
        self.name, self.map_x, self.map_y = name, map_x, map_y

    def source_of(self, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if px.shape == self.map_x.shape and px is _grid(px.shape)[0] and py is _grid(px.shape)[1]:
            return self.map_x, self.map_y
        return _lookup2(self.map_x, self.map_y, px, py)


class _Hypothesis:
    """A backward mapping target (working-res x, y) -> source (working-res x, y)."""

    def __init__(self, name: str, flow: np.ndarray, homography_inv: np.ndarray | None = None):
        self.name, self.flow, self.hinv = name, flow, homography_inv

    def source_of(self, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if px.shape == self.flow.shape[:2] and px is _grid(px.shape)[0] and py is _grid(px.shape)[1]:
            qx, qy = px + self.flow[..., 0], py + self.flow[..., 1]      # on the grid: no lookup
        else:
            both = _remap(self.flow, px, py, replicate=True)            # (h, w, 2): one lookup
            qx, qy = px + both[..., 0], py + both[..., 1]
        if self.hinv is None:
            return qx, qy
        h = self.hinv
        den = h[2, 0] * qx + h[2, 1] * qy + h[2, 2]
        den = np.where(np.abs(den) < 1e-6, 1e-6, den)
        sx = (h[0, 0] * qx + h[0, 1] * qy + h[0, 2]) / den
        sy = (h[1, 0] * qx + h[1, 1] * qy + h[1, 2]) / den
        return sx.astype(np.float32), sy.astype(np.float32)


def _extrapolate(flow: np.ndarray, weight: np.ndarray, sigma: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Normalised convolution: the Gaussian-weighted mean of ``flow`` ``(h, w, 2) float32`` over
    the pixels where ``weight`` ``(h, w) float32`` is 1, at every pixel, and ``(h, w) uint8``
    1 where some weight reaches (the mean is 0 elsewhere).  Done at half resolution when the
    blur is wide (the result is smooth anyway, at a quarter of the cost)."""
    import cv2

    h, w = weight.shape
    half = sigma >= 3 and min(h, w) >= 32
    if half:
        size = ((w + 1) // 2, (h + 1) // 2)
        weight = cv2.resize(weight, size, interpolation=cv2.INTER_AREA)
        flow = cv2.resize(flow, size, interpolation=cv2.INTER_AREA)
        sigma = sigma / 2
    den = cv2.GaussianBlur(weight, (0, 0), sigma)
    num = cv2.GaussianBlur(cv2.multiply(flow, cv2.merge((weight, weight))), (0, 0), sigma)
    reached = den > 1e-3
    mean = np.divide(num, den[..., None], out=np.zeros_like(num), where=reached[..., None])
    reached = reached.view(np.uint8)
    if half:
        return (cv2.resize(mean, (w, h), interpolation=cv2.INTER_LINEAR),
                cv2.resize(reached, (w, h), interpolation=cv2.INTER_NEAREST))
    return mean, reached


def _object_flow(hyp: _Hypothesis, inside: np.ndarray, *, band: float, sigma: float,
                 keep: np.ndarray | None = None) -> _Hypothesis:
    """Boundary-aware flow: near the object's boundary DIS mixes object and background motion
    (its patches straddle both), which makes a chained mask lag and smear.  Replace the flow
    there by a normalised convolution of the flow over the object's interior (pixels deeper
    than ``band`` inside the first-pass warped mask), i.e. the object's own motion carried out
    to its edge (up to ``3 * sigma`` outside).  Flow elsewhere is kept, and so is the share
    ``keep`` ``(h, w) float32`` in [0, 1] of it near the edge of the view (where the mask's edge
    is not the object's: the object's motion would pull the mask off the edge of the view)."""
    import cv2

    box = _roi(inside, int(math.ceil(4 * sigma)) + 2)
    if box is None:
        return hyp
    sub = inside[box].astype(np.uint8)
    depth = cv2.distanceTransform(np.pad(sub, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    core_band = min(band, 0.5 * float(depth.max()))
    weight = (depth > core_band).astype(np.float32)
    if not cv2.countNonZero(weight):
        return hyp
    roi_flow = np.ascontiguousarray(hyp.flow[box])                      # a copy
    object_motion, reached = _extrapolate(roi_flow, weight, sigma)
    # keep the raw (sharper) flow deep inside, use the object's flow in the boundary zone
    outside_depth = cv2.distanceTransform(1 - sub, cv2.DIST_L2, 3)
    zone = (depth <= core_band) & (outside_depth <= 3 * sigma)
    if keep is not None:                       # object + share * (raw - object), per pixel
        share = keep[box]
        blend = cv2.multiply(cv2.subtract(roi_flow, object_motion), cv2.merge((share, share)))
        object_motion = cv2.add(object_motion, blend)
    cv2.copyTo(object_motion, zone.view(np.uint8) & reached, roi_flow)
    flow = hyp.flow.copy()
    flow[box] = roi_flow
    return _Hypothesis(hyp.name, flow, hyp.hinv)
