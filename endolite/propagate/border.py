"""The endoscope's field-of-view border: where the raw flow is kept instead of the object's.

Near the black surround of the picture the mask's edge is the view's, not the object's, and
the object's own motion would pull the mask off it (see ``view_border`` in the options).
"""

from __future__ import annotations

import numpy as np

from endolite.propagate.prepare import _Prepared

_DARK = 20   # grey level (5x5 mean) below which, where the picture is also flat (5x5 standard
_FLAT = 4    # deviation below _FLAT), a region touching the picture's edge is the black surround
             # of the endoscope's field of view (dark texture is not) when it covers at least
_SURROUND = 0.02  # this share of the picture (CVC-ClinicDB: 28%)
_VIEW_RAMP = 10.0  # px (working res) over which the object's flow takes over beyond view_border


def _view_border(prep: _Prepared, reach: float) -> np.ndarray | None:
    """``(h, w) float32`` in [0, 1] (working res): how much the raw flow is kept near the dark
    surround of the endoscope's field of view (flat dark pixels connected to the picture's
    edge): 1 within ``reach`` px of it, falling linearly to 0 over ``_VIEW_RAMP`` px more (a
    hard switch left notches in the mask).  None when there is no surround or ``reach`` is 0.
    Cached on ``prep``.  The picture's own edge does not count: an object moving near it in a
    picture without a dark surround is tracked as anywhere else."""
    import cv2

    if reach <= 0:
        return None
    if reach not in prep.borders:
        grey = prep.grey.astype(np.float32)
        mean = cv2.blur(grey, (5, 5))
        spread = cv2.blur(grey * grey, (5, 5)) - mean * mean      # local variance
        dark = ((mean < _DARK) & (spread < _FLAT ** 2)).astype(np.uint8)
        count, labels = cv2.connectedComponents(np.pad(dark, 1, constant_values=1), connectivity=4)
        outside = (labels == labels[0, 0])[1:-1, 1:-1]   # the padding joins all edge-touching dark
        if outside.mean() >= _SURROUND:
            dist = cv2.distanceTransform((~outside).astype(np.uint8), cv2.DIST_L2, 3)
            share = (reach + _VIEW_RAMP - dist) * (1.0 / _VIEW_RAMP)
            prep.borders[reach] = np.clip(share, 0.0, 1.0).astype(np.float32)
        else:
            prep.borders[reach] = None
    return prep.borders[reach]
