"""Detect the endoscopic field of view (FOV) in a screen-capture frame.

An endoscopy screen capture shows the camera image as a round, rounded-rectangle or octagonal
region on a dark surround; the surround (and the processor's text panel) is where patient text
is printed.  :func:`detect_fov` finds that region in one frame, :func:`detect_fov_video`
combines several sampled frames so one dark frame does not shrink it.

Method: brightness ``max(R, G, B)`` thresholded against the dark surround, a morphological
opening with a disc larger than text glyph strokes (removes printed text), the largest
connected component, and its convex hull (which also fills holes such as a dark lumen).

Conventions: images are ``(H, W, 3) uint8`` RGB, masks ``(H, W) bool``; points and boxes are
pixel coordinates ``(x, y)`` with x the column and y the row; ``bbox`` is ``(x0, y0, x1, y1)``
with ``x1``/``y1`` exclusive.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from endolite.errors import InvalidInput
from endolite.segment.base import check_image


@dataclass(frozen=True)
class FieldOfView:
    """The detected field of view.

    ``mask``: ``(H, W) bool``, True inside the FOV.  ``bbox``: ``(x0, y0, x1, y1)`` ints,
    exclusive ends (all zero when nothing was found).  ``polygon``: ``(N, 2) int32`` array of
    ``(x, y)`` vertices of the convex hull (``(0, 2)`` when empty).  ``area_fraction``: share
    of the frame inside ``mask``, in ``[0, 1]``.
    """

    mask: np.ndarray
    bbox: tuple[int, int, int, int]
    polygon: np.ndarray
    area_fraction: float


def _check_image(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3) uint8`` RGB with H, W >= 8, else ``InvalidInput``."""
    arr = check_image(image)
    if arr.shape[0] < 8 or arr.shape[1] < 8:
        raise InvalidInput(f"image too small for FOV detection: {arr.shape}")
    return arr


def _kernel_size(height: int, width: int, fraction: float) -> int:
    """Odd opening-kernel diameter: ``fraction`` of the short side, at least 3 pixels."""
    k = max(3, int(round(min(height, width) * fraction)))
    return k if k % 2 else k + 1


def _empty(height: int, width: int) -> FieldOfView:
    return FieldOfView(
        mask=np.zeros((height, width), bool),
        bbox=(0, 0, 0, 0),
        polygon=np.zeros((0, 2), np.int32),
        area_fraction=0.0,
    )


def _hull_fov(binary: np.ndarray) -> FieldOfView:
    """Largest 8-connected component of ``binary`` ``(H, W) bool`` -> its convex-hull FOV."""
    import cv2

    height, width = binary.shape
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    if count <= 1:
        return _empty(height, width)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    component = (labels == largest).astype(np.uint8)
    contours, _ = cv2.findContours(component, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(np.concatenate(contours, axis=0))
    mask = np.zeros((height, width), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    polygon = hull.reshape(-1, 2).astype(np.int32)
    x, y, w, h = cv2.boundingRect(mask)
    area = int(mask.sum())
    return FieldOfView(
        mask=mask.astype(bool),
        bbox=(int(x), int(y), int(x + w), int(y + h)),
        polygon=polygon,
        area_fraction=area / float(height * width),
    )


def foreground(image: np.ndarray, *, threshold: int = 25, open_fraction: float = 0.03) -> np.ndarray:
    """Bright-enough pixels of ``image`` ``(H, W, 3) uint8`` with text removed -> ``(H, W) bool``.

    A pixel is foreground when ``max(R, G, B) > threshold`` (after a 5x5 median blur against
    JPEG noise); an opening with a disc of diameter ``open_fraction * min(H, W)`` (odd, >= 3
    pixels) then removes thin bright structures such as printed text glyphs.
    """
    import cv2

    arr = _check_image(image)
    height, width = arr.shape[:2]
    value = cv2.medianBlur(np.ascontiguousarray(arr.max(axis=2)), 5)
    binary = (value > threshold).astype(np.uint8)
    k = _kernel_size(height, width, open_fraction)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    return cv2.morphologyEx(binary, cv2.MORPH_OPEN, kernel).astype(bool)


def detect_fov(image: np.ndarray, *, threshold: int = 25, open_fraction: float = 0.03) -> FieldOfView:
    """Field of view of one frame ``(H, W, 3) uint8`` RGB.

    ``threshold``: brightness ``max(R, G, B)`` above which a pixel may belong to the FOV (the
    surround is near black).  ``open_fraction``: opening-disc diameter as a share of the short
    side; it must exceed the stroke width of printed text.  Returns an empty FOV (all-False
    mask, ``area_fraction`` 0) for an all-dark frame.
    """
    return _hull_fov(foreground(image, threshold=threshold, open_fraction=open_fraction))


def detect_fov_video(
    frames: Iterable[np.ndarray],
    *,
    threshold: int = 25,
    open_fraction: float = 0.03,
    min_area_fraction: float = 0.05,
) -> FieldOfView:
    """Field of view shared by sampled frames (each ``(H, W, 3) uint8`` RGB, same size).

    Each frame is detected on its own; frames whose FOV covers less than ``min_area_fraction``
    of the frame (dark or blank frames) are dropped; a pixel is in the result when it lies in
    the FOV of at least half of the remaining frames (per-pixel median of the masks), and the
    result is the convex hull of that vote's largest component.  Raises ``InvalidInput`` for
    no frames or frames of different sizes; returns an empty FOV when every frame is dark.
    """
    masks: list[np.ndarray] = []
    shape: tuple[int, int] | None = None
    for frame in frames:
        arr = _check_image(frame)
        if shape is None:
            shape = arr.shape[:2]
        elif arr.shape[:2] != shape:
            raise InvalidInput(f"frame size {arr.shape[:2]} differs from the first frame's {shape}")
        fov = detect_fov(arr, threshold=threshold, open_fraction=open_fraction)
        if fov.area_fraction >= min_area_fraction:
            masks.append(fov.mask)
    if shape is None:
        raise InvalidInput("detect_fov_video needs at least one frame")
    if not masks:
        return _empty(*shape)
    votes = np.sum(masks, axis=0)
    return _hull_fov(2 * votes >= len(masks))
