"""Carry a mask through a sequence of frames (forward or backward) with dense optical flow.

Frames are ``(H, W, 3) uint8`` RGB arrays, masks ``(H, W) bool``; flows are ``(h, w, 2)
float32`` holding ``(dx, dy)`` in pixels (x = column, y = row).  Each step takes the mask of
frame ``i`` to frame ``j = i ± 1``:

1. Both frames are reduced to grey at a working resolution (long side ``flow_long_side``,
   384 px by default; never upscaled) and OpenCV DIS flow (medium preset, 8 px patches; finest
   level half the working resolution, or full when that is <= 256 px) runs from ``j`` to ``i``.
2. When the plain flow explains the object's neighbourhood poorly (NCC < 0.9) and
   ``global_motion`` is on, a second hypothesis is tried: a homography from ORB matches
   pre-aligns ``i`` to ``j`` before DIS, which catches large camera moves DIS alone misses.
   The hypothesis whose warped image agrees best with ``j`` around the mask wins.
3. Boundary-aware flow: DIS patches straddling the object's edge mix object and background
   motion, so a chained mask lags and smears.  Within ``boundary_band`` px of the edge (and up
   to ``3 * boundary_sigma`` outside it) the flow is replaced by the object's own interior flow
   (normalised convolution), in two passes.
4. The mask of ``i`` is *backward-warped*: every pixel of ``j`` looks up the mask value at the
   position the flow sends it to in ``i`` (bilinear on the full-resolution mask, threshold 0.5,
   evaluated only around the object, so cost hardly grows with frame size).
5. Drift correction (``anchor``, in :func:`propagate`): the backward maps are composed back to
   the frame the mask came from; a residual DIS flow on the object's neighbourhood between
   ``j`` and that anchor frame (warped by the composed map) corrects accumulated error, and the
   anchor's own mask is warped when the anchor still explains ``j`` (interior NCC no worse
   than the plain step's); otherwise ``j`` becomes the new anchor.
6. Confidence in [0, 1] = appearance agreement (normalised cross-correlation between the
   motion-compensated frame ``i`` and frame ``j`` in a ring-dilated mask region) × an area-change
   term × the fraction of the object that stays in view.  Measured on CVC-ClinicDB this
   separates tracked from lost steps far better than forward-backward flow consistency.
   A step below ``min_confidence`` is ``flagged`` (scene change, object left the view, the
   tracker lost it); by default propagation stops after the first flagged frame.
   Limitation: an object lost over a static, textured background can leave the mask sitting on
   the background with high confidence (that background matches itself perfectly).
7. Optionally a ``refine`` hook (e.g. :class:`SegmenterRefiner` around SAM) re-segments the
   frame prompted by the warped box and an interior point.

Measured (bench/propagation.py, CVC-ClinicDB, ground truth of frame i carried to i+1, mean IoU):
seq01 0.72 (copy 0.56, plain DIS 0.715), seq03 0.49 (copy 0.14, plain DIS 0.41); unflagged steps
0.78 / 0.82, flagged ones 0.31 / 0.05.  Frame 0's mask carried through seq01 as the page does it
(stopping after the first flagged frame): 9 frames at 0.81 (copy 0.71); carried on regardless
through all 24: 0.55 (copy 0.48; after the lost step any overlap is largely luck).
On seq01 dense flow itself is the ceiling: the best of nine OpenCV flows per step (DIS presets
and scales, Farneback, DeepFlow, TV-L1, PCAFlow, RLOF, sparse-to-dense) averages 0.74; the
misses are steps whose ground truth changes shape between the far-apart frames (refinement with
SAM is the way past it).  Boundary-aware flow is kept away from the endoscope's black surround
(``view_border``): there the mask's edge is the view's, not the object's, and the object's own
motion used to pull the mask off it (seq01 one-step 0.70 before).  Synthetic textured disc:
IoU >= 0.97 after 25 frames.
Speed (medians of 5): 720x576 about 26 frames/s on a large object (seq01) when the machine is
quiet, 21-23 when it is shared (about half of plain DIS warping's rate in the same run), 38-45
on a small one (seq03); 1280x1024 19-22 / 21-28.  The next frame's decoding and
plain flow run in a worker thread while the current mask is finished.

Empty-mask policy: an empty start mask raises ``InvalidInput``; a step whose warped mask is
empty is flagged with confidence 0 and ends the propagation.
"""

from endolite.propagate.border import _view_border
from endolite.propagate.flow import dense_flow, make_flow
from endolite.propagate.loop import FrameSource, Progress, PropagatedMask, iter_propagate, propagate
from endolite.propagate.options import Direction, PropagationOptions
from endolite.propagate.prepare import _prepare
from endolite.propagate.refine import Refiner, SegmenterRefiner
from endolite.propagate.step import StepResult, warp_step

# Modules: ``options`` (Direction, PropagationOptions), ``prepare`` (frames at working
# resolution, grid sampling), ``flow`` (DIS, mappings, boundary-aware flow), ``motion`` (ORB
# homography), ``border`` (field-of-view border), ``score`` (NCC), ``step`` (warp_step),
# ``anchor`` (drift correction), ``loop`` (iter_propagate / propagate), ``refine`` (hooks).
# ``_prepare`` and ``_view_border`` are re-exported for the tests that probe the border.

__all__ = [
    "Direction", "FrameSource", "Progress", "PropagatedMask", "PropagationOptions", "Refiner",
    "SegmenterRefiner", "StepResult", "dense_flow", "iter_propagate", "make_flow", "propagate",
    "warp_step",
]
