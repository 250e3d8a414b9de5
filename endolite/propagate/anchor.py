"""Drift correction against the frame the mask came from (step 5 of :mod:`endolite.propagate`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from endolite.propagate.border import _view_border
from endolite.propagate.flow import _DenseMap, _Hypothesis, _object_flow, dense_flow
from endolite.propagate.options import PropagationOptions
from endolite.propagate.prepare import _grid, _lookup2, _Prepared, _remap, _roi
from endolite.propagate.score import _interior_ncc
from endolite.propagate.step import StepResult, _warp_full

_RESIDUAL_MARGIN = 24     # px (working res) around the object for the anchor's residual flow
_RESIDUAL_FULL_RES = 128  # px: residual DIS at full working resolution for neighbourhoods up to
                          # this size, at half above (finest scale 0 costs 3x as much; a larger
                          # object is tracked as well at half resolution)


class _Anchor:
    """Drift correction: keep the frame the mask came from (the anchor) and the composed
    backward map from the current frame to it.  Each step composes the step's map, then a
    residual DIS flow between the current frame and the anchor warped by that map corrects the
    accumulated error; the anchor's mask warped by the corrected map replaces the chained mask
    when it explains the current frame at least about as well (NCC).  Otherwise the current
    frame becomes the new anchor."""

    TOLERANCE = 0.03

    def __init__(self, prepared: _Prepared, mask: np.ndarray):
        self.prep, self.mask = prepared, mask
        self.small_mask = None
        self.map: tuple[np.ndarray, np.ndarray] | None = None   # current working -> anchor working

    def advance(self, result: StepResult, previous: _Prepared, previous_mask: np.ndarray,
                target: _Prepared, *, dis: tuple[Any, Any], options: PropagationOptions
                ) -> np.ndarray:
        """Anchor-corrected mask for ``target``; ``dis`` holds DIS objects at finest scale 0
        and 1 (the residual runs on the object's neighbourhood at full working resolution
        when that is at most ``_RESIDUAL_FULL_RES`` px, else at half)."""
        import cv2

        def chained() -> np.ndarray:
            """The plain step's mask (computed only when the anchor is not used)."""
            mask = result.mask if result.mask is not None else _warp_full(
                previous_mask, result.mapping, previous, target, result.target_small)
            self.__init__(target, mask)
            return mask

        if result.mapping is None or result.confidence == 0.0 and result.reason == "empty":
            return chained()
        gx, gy = _grid(target.grey.shape)
        step_x, step_y = result.mapping.source_of(gx, gy)
        if self.map is None:
            comp_x, comp_y = step_x, step_y
        else:
            comp_x, comp_y = _lookup2(self.map[0], self.map[1], step_x, step_y)
        if self.small_mask is None:
            h, w = self.prep.grey.shape
            self.small_mask = cv2.resize(self.mask.astype(np.float32), (w, h),
                                         interpolation=cv2.INTER_AREA)
        anchored = _remap(self.prep.grey, comp_x, comp_y)
        warped_small = _remap(self.small_mask, comp_x, comp_y)
        box = _roi(warped_small >= 0.5, _RESIDUAL_MARGIN)
        if box is None:
            return chained()
        # the residual is small: full-resolution DIS on the object's neighbourhood only
        flow = np.zeros(target.grey.shape + (2,), dtype=np.float32)
        roi_dis = dis[0] if max(box[0].stop - box[0].start, box[1].stop - box[1].start) <= _RESIDUAL_FULL_RES else dis[1]
        flow[box] = dense_flow(roi_dis, np.ascontiguousarray(target.grey[box]),
                               np.ascontiguousarray(anchored[box]))
        residual = _Hypothesis("residual", flow)
        if options.boundary_sigma > 0:
            residual = _object_flow(residual, warped_small >= 0.5, band=options.boundary_band,
                                    sigma=options.boundary_sigma,
                                    keep=_view_border(target, options.view_border))
        rx, ry = residual.source_of(gx, gy)
        corr_x, corr_y = _lookup2(comp_x, comp_y, rx, ry)
        ncc, warped_small = _interior_ncc(corr_x, corr_y, self.prep, target, self.small_mask, box)
        step_box = _roi(result.target_small >= 0.5, 1)
        step_ncc = (_interior_ncc(step_x, step_y, previous, target, result.source_small, step_box)[0]
                    if step_box is not None else -1.0)
        if ncc < step_ncc - self.TOLERANCE or not (warped_small >= 0.5).any():
            # the anchor no longer explains this frame: continue from the chained mask
            return chained()
        self.map = (corr_x, corr_y)
        return _warp_full(self.mask, _DenseMap("anchor", corr_x, corr_y), self.prep, target,
                          warped_small)
