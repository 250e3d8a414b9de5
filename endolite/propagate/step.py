"""One propagation step: the mask of frame i carried to frame j (steps 1-4 and 6 of
:mod:`endolite.propagate`), and the full-resolution backward warp of a mask."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from endolite.errors import InvalidInput
from endolite.propagate.border import _view_border
from endolite.propagate.flow import _Hypothesis, _object_flow, dense_flow, make_flow
from endolite.propagate.motion import _homography
from endolite.propagate.options import PropagationOptions
from endolite.propagate.prepare import _grid, _prepare, _Prepared, _remap
from endolite.propagate.score import _evaluate

_GLOBAL_BELOW_NCC = 0.9   # try the global-motion hypothesis only when plain flow scores below


@dataclass(frozen=True, eq=False)
class StepResult:
    """One warp step: ``mask`` ``(H, W) bool`` in the target frame and its confidence terms."""

    mask: np.ndarray | None
    confidence: float
    reason: str
    hypothesis: str
    details: dict[str, float]
    mapping: Any = field(default=None, repr=False)   # internal: the chosen backward mapping
    source_small: Any = field(default=None, repr=False)  # internal: source mask, working res
    target_small: Any = field(default=None, repr=False)  # internal: warped mask, working res


def _warp_full(mask: np.ndarray, hyp: _Hypothesis, src: _Prepared, dst: _Prepared,
               small_warped: np.ndarray) -> np.ndarray:
    """Backward-warp the full-resolution mask, evaluated only around the object."""
    import cv2

    height, width = dst.full_shape
    sx, sy = dst.scale
    ys, xs = np.nonzero(small_warped > 0.02)
    out = np.zeros((height, width), dtype=bool)
    if len(ys) == 0:
        return out
    margin = 3
    x0 = max(0, int(math.floor((xs.min() - margin + 0.5) / sx - 0.5)))
    x1 = min(width, int(math.ceil((xs.max() + margin + 0.5) / sx + 0.5)))
    y0 = max(0, int(math.floor((ys.min() - margin + 0.5) / sy - 0.5)))
    y1 = min(height, int(math.ceil((ys.max() + margin + 0.5) / sy + 0.5)))
    if x1 <= x0 or y1 <= y0:
        return out
    # The working-res backward map, resampled onto the full-res box in one affine lookup:
    # full-res pixel (x, y) sits at working-res ((x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5).
    # Its values go from source working res to source full res, minus the origin of the part
    # of the source mask the lookups can reach, on the small grid (cheaper than on the box).
    mx, my = hyp.source_of(*_grid(dst.grey.shape))
    ssx, ssy = src.scale
    reach = (slice(max(0, int(ys.min()) - margin - 1), int(ys.max()) + margin + 2),
             slice(max(0, int(xs.min()) - margin - 1), int(xs.max()) + margin + 2))
    fh, fw = mask.shape
    lo_x, hi_x = (float(mx[reach].min()) + 0.5) / ssx - 0.5, (float(mx[reach].max()) + 0.5) / ssx - 0.5
    lo_y, hi_y = (float(my[reach].min()) + 0.5) / ssy - 0.5, (float(my[reach].max()) + 0.5) / ssy - 0.5
    cx0, cy0 = max(0, int(math.floor(lo_x))), max(0, int(math.floor(lo_y)))
    cx1, cy1 = min(fw, int(math.ceil(hi_x)) + 2), min(fh, int(math.ceil(hi_y)) + 2)
    if cx1 <= cx0 or cy1 <= cy0:
        return out                                                 # every lookup falls outside
    source_xy = np.dstack(((mx + 0.5) * (1 / ssx) - (0.5 + cx0), (my + 0.5) * (1 / ssy) - (0.5 + cy0)))
    to_working = np.float32([[sx, 0, (x0 + 0.5) * sx - 0.5], [0, sy, (y0 + 0.5) * sy - 0.5]])
    lookup = cv2.warpAffine(source_xy.astype(np.float32, copy=False), to_working, (x1 - x0, y1 - y0),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REPLICATE)
    # bilinear on the 0/1 mask (uint8): the result rounds to 1 exactly where the value >= 0.5
    crop = np.ascontiguousarray(mask[cy0:cy1, cx0:cx1]).view(np.uint8)
    soft = cv2.remap(crop, lookup, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out[y0:y1, x0:x1] = soft.view(bool)
    return out


def warp_step(source: np.ndarray | _Prepared, target: np.ndarray | _Prepared, mask: np.ndarray, *,
              options: PropagationOptions = PropagationOptions(), dis: Any = None,
              full: bool = True, flow: np.ndarray | None = None) -> StepResult:
    """Carry ``mask`` ``(H, W) bool`` of frame ``source`` to frame ``target`` (both RGB uint8,
    same size).  Returns the warped mask and its confidence (see :mod:`endolite.propagate`).
    ``full=False`` skips the full-resolution warp (``mask`` is then None; the loop does it
    only when it needs it); ``flow`` is the plain DIS flow target -> source when the caller
    computed it already (it does not depend on the mask)."""
    import cv2

    src = source if isinstance(source, _Prepared) else _prepare(source, options.flow_long_side)
    dst = target if isinstance(target, _Prepared) else _prepare(target, options.flow_long_side)
    if src.full_shape != dst.full_shape:
        raise InvalidInput(f"frames differ in size: {src.full_shape} vs {dst.full_shape}")
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != src.full_shape:
        raise InvalidInput(f"mask is {mask.shape}, frames are {src.full_shape}")
    if not mask.any():
        raise InvalidInput("cannot propagate an empty mask")
    h, w = src.grey.shape
    dis = dis if dis is not None else make_flow(options, long_side=max(h, w))
    small_mask = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)

    flow_only = _Hypothesis("flow", flow if flow is not None else dense_flow(dis, dst.grey, src.grey))
    scored = [(_evaluate(flow_only, src, dst, small_mask), flow_only)]
    if options.global_motion and scored[0][0][0] < _GLOBAL_BELOW_NCC:
        # the plain flow explains the object's neighbourhood poorly: try pre-alignment too
        matrix = _homography(src, dst)
        if matrix is not None:
            aligned = cv2.warpPerspective(src.grey, matrix, (w, h))
            hyp = _Hypothesis("global+flow", dense_flow(dis, dst.grey, aligned), np.linalg.inv(matrix))
            scored.append((_evaluate(hyp, src, dst, small_mask), hyp))
    (ncc, small_warped, (mx, my)), best = max(scored, key=lambda item: item[0][0])
    if options.boundary_sigma > 0:
        raw = best
        keep = _view_border(dst, options.view_border)
        for _ in range(2):   # the second pass takes the interior from a less smeared mask
            best = _object_flow(raw, small_warped >= 0.5, band=options.boundary_band,
                                sigma=options.boundary_sigma, keep=keep)
            small_warped = _remap(small_mask, *best.source_of(*_grid(dst.grey.shape)))

    warped = _warp_full(mask, best, src, dst, small_warped) if full else None
    # areas at working resolution (soft sums), so the confidence does not depend on ``full``
    area_ratio = float(small_warped.sum()) / max(float(small_mask.sum()), 1e-6)
    details = {"ncc": round(ncc, 4), "area_ratio": round(area_ratio, 4)}
    extras = dict(mapping=best, source_small=small_mask, target_small=small_warped)
    if (warped is not None and not warped.any()) or not (small_warped >= 0.5).any():
        return StepResult(warped, 0.0, "empty", best.name, details, **extras)
    # appearance: NCC 0.5 -> 0, 0.9 -> 1
    appearance = float(np.clip((ncc - 0.5) / 0.4, 0.0, 1.0))
    # area change: a 2x zoom costs a third, 8x costs everything
    area_term = float(np.clip(1.0 - abs(math.log2(max(area_ratio, 1e-6))) / 3.0, 0.0, 1.0))
    # leaving the view: share of the source object whose mean motion keeps it in the frame
    inside_small = small_warped >= 0.5
    if inside_small.any():
        ys, xs = np.nonzero(small_mask >= 0.5)
        gy, gx = np.nonzero(inside_small)
        shift_x = float(gx.mean() - mx[inside_small].mean())
        shift_y = float(gy.mean() - my[inside_small].mean())
        moved_x, moved_y = xs + shift_x, ys + shift_y
        stay = (moved_x >= 0) & (moved_x <= w - 1) & (moved_y >= 0) & (moved_y <= h - 1)
        view_term = float(stay.mean()) if len(xs) else 1.0
    else:
        view_term = 0.0
    confidence = appearance * area_term * view_term
    details.update(appearance=round(appearance, 4), area=round(area_term, 4),
                   view=round(view_term, 4))
    terms = {"appearance": appearance, "area": area_term, "left view": view_term}
    reason = min(terms, key=terms.get) if confidence < options.min_confidence else ""
    return StepResult(warped, round(confidence, 4), reason, best.name, details, **extras)
