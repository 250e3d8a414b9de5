"""Options of mask propagation: the walk's direction and the tuning knobs (see :mod:`endolite.propagate`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Direction(StrEnum):
    FORWARD = "forward"
    BACKWARD = "backward"


@dataclass(frozen=True)
class PropagationOptions:
    """Tuning knobs (defaults measured on CVC-ClinicDB sequences; see bench/propagation.py)."""

    flow_long_side: int = 384          # working resolution for flow (px, long side)
    dis_preset: str = "medium"         # ultrafast | fast | medium
    patch_size: int = 8
    patch_stride: int = 4
    refinement_iterations: int = 1     # DIS variational refinement per level (medium: 5); 1 is
                                       # as accurate on CVC-ClinicDB and 20% faster
    finest_scale: int | None = None    # DIS finest pyramid level; None: 0 when the working
                                       # image's long side <= 256 px, else 1 (flow at >= ~192 px)
    boundary_band: float = 6.0         # px (working res): flow this close to the boundary is
                                       # replaced by flow extrapolated from the object interior
    boundary_sigma: float = 6.0        # px: smoothing of that extrapolation (0 disables both)
    view_border: float = 20.0          # px (working res): not within this distance of the edge
                                       # of the picture or of the endoscope's dark field-of-view
                                       # border (the object goes on beyond it; 0: everywhere)
    anchor: bool = True                # correct drift against the frame the mask came from
    global_motion: bool = True         # also try an ORB-homography pre-alignment hypothesis
    min_confidence: float = 0.5        # below this a frame is flagged
    stop_when_flagged: bool = True     # stop after the first flagged frame
