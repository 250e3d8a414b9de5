"""Refine hooks: re-segment a propagated frame with a segmentation engine (e.g. SAM)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np


class Refiner(Protocol):
    """Hook: given frame ``index``, its RGB ``frame`` and the warped ``mask``, return a better
    ``(H, W) bool`` mask or None to keep the warped one."""

    def __call__(self, index: int, frame: np.ndarray, mask: np.ndarray) -> np.ndarray | None: ...


class SegmenterRefiner:
    """Refine hook around a :class:`endolite.segment.base.Segmenter`.

    ``embedding_for(index, frame)`` returns the frame's Embedding (e.g. from the SAM cache) or
    None to skip.  The warped mask's box (grown by ``box_margin`` of its size) and its most
    interior point (positive) prompt the engine; the candidate that overlaps the warped mask
    best is accepted when that IoU is at least ``min_agreement`` (else the warped mask stays).
    """

    def __init__(self, segmenter: Any, embedding_for: Callable[[int, np.ndarray], Any], *,
                 box_margin: float = 0.1, min_agreement: float = 0.5):
        self.segmenter, self.embedding_for = segmenter, embedding_for
        self.box_margin, self.min_agreement = box_margin, min_agreement

    def __call__(self, index: int, frame: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
        import cv2

        embedding = self.embedding_for(index, frame)
        if embedding is None or not mask.any():
            return None
        ys, xs = np.nonzero(mask)
        height, width = mask.shape
        mx = self.box_margin * (xs.max() - xs.min() + 1)
        my = self.box_margin * (ys.max() - ys.min() + 1)
        box = np.array([max(0, xs.min() - mx), max(0, ys.min() - my),
                        min(width, xs.max() + 1 + mx), min(height, ys.max() + 1 + my)], dtype=float)
        dist = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        masks, _scores = self.segmenter.predict(embedding, np.array([[x, y]], dtype=float),
                                                np.array([1]), box=box)
        if len(masks) == 0:
            return None
        inter = (masks & mask[None]).reshape(len(masks), -1).sum(1)
        union = (masks | mask[None]).reshape(len(masks), -1).sum(1)
        agreement = inter / np.maximum(union, 1)
        best = int(np.argmax(agreement))
        return masks[best] if agreement[best] >= self.min_agreement else None
