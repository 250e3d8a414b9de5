"""The segmentation-engine protocol and the records engines share.

Images are ``(H, W, 3) uint8`` RGB.  Prompts are in image pixels: points ``(N, 2) float``
as ``(x, y)`` (x = column, y = row), labels ``(N,) int`` with 1 = positive (object) and
0 = negative (background), an optional box ``(x0, y0, x1, y1)``, and an optional previous mask
``(H, W)`` (bool, or float where > 0.5 is foreground) to refine.  Engines return masks
``(K, H, W) bool`` at the image's size with scores ``(K,) float32`` (higher is better; K >= 1,
best first is not guaranteed: pick ``argmax(scores)``).

Flow: ``embedding = engine.embed(image)`` once per frame (SAM: the expensive encoder,
cached), then any number of ``engine.predict(embedding, points, labels, ...)`` per click.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from endolite.errors import InvalidInput


@dataclass(frozen=True, eq=False)
class Embedding:
    """What ``embed`` computed for one image.

    ``engine``: the engine's name (e.g. ``"sam:vit_b"``, ``"classical"``); an embedding only
    fits the engine that made it.  ``key``: the frame's sha256 (the cache key).
    ``image_size``: ``(H, W)`` of the original image.  ``input_size``: ``(h, w)`` the engine
    worked at (SAM: the image resized so its long side is the encoder's 1024; classical: the
    downscaled working image).  ``features``: SAM: ``(C, h', w') float16`` image embedding
    (256 x 64 x 64 for the released models); classical: the working RGB image
    ``(h, w, 3) uint8``.  ``precision``: how the features were computed ("bf16", "fp32", "").
    """

    engine: str
    key: str
    image_size: tuple[int, int]
    input_size: tuple[int, int]
    features: np.ndarray
    precision: str = ""


@runtime_checkable
class Segmenter(Protocol):
    """A promptable segmentation engine (SAM, or the classical fallback)."""

    name: str
    description: str

    def embed(self, image: np.ndarray, *, key: str | None = None) -> Embedding:
        """Per-image work done once: ``image`` ``(H, W, 3) uint8`` RGB; ``key`` the frame's
        sha256 (computed from the pixels when None)."""
        ...

    def predict(self, embedding: Embedding, points: np.ndarray | Sequence[Sequence[float]],
                labels: np.ndarray | Sequence[int], box: Sequence[float] | None = None,
                mask_input: np.ndarray | None = None, *, multimask: bool = True
                ) -> tuple[np.ndarray, np.ndarray]:
        """Masks ``(K, H, W) bool`` and scores ``(K,) float32`` for the prompts."""
        ...


def best_mask(engine: Segmenter, embedding: Embedding, points, labels, box=None,
              mask_input: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """The highest-scoring mask ``(H, W) bool`` of ``engine.predict`` and its score; engines
    that can (SAM: only the chosen candidate is upscaled to the frame) provide ``predict_best``."""
    fast = getattr(engine, "predict_best", None)
    if fast is not None:
        return fast(embedding, points, labels, box=box, mask_input=mask_input)
    masks, scores = engine.predict(embedding, points, labels, box=box, mask_input=mask_input)
    best = int(np.argmax(scores))
    return masks[best], float(scores[best])


@dataclass(frozen=True, eq=False)
class Prompt:
    """Validated prompts in image pixels (see the module docstring)."""

    points: np.ndarray                 # (N, 2) float64 (x, y)
    labels: np.ndarray                 # (N,) int64, 1 positive / 0 negative
    box: np.ndarray | None             # (4,) float64 (x0, y0, x1, y1) with x0 <= x1, y0 <= y1
    mask: np.ndarray | None            # (H, W) bool

    @property
    def positives(self) -> np.ndarray:
        return self.points[self.labels == 1]

    @property
    def negatives(self) -> np.ndarray:
        return self.points[self.labels == 0]


def image_key(image: np.ndarray) -> str:
    """sha256 hex of an image's shape and pixels (the cache key when no frame hash is given)."""
    array = np.ascontiguousarray(image)
    digest = hashlib.sha256(f"{array.shape}|{array.dtype}|".encode())
    digest.update(array.data)
    return digest.hexdigest()


def check_image(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise InvalidInput(f"image must be (H, W, 3) uint8 RGB, got {array.shape} {array.dtype}")
    if array.shape[0] < 2 or array.shape[1] < 2:
        raise InvalidInput(f"image too small: {array.shape}")
    return np.ascontiguousarray(array)


def check_prompt(points: np.ndarray | Sequence[Sequence[float]] | None,
                 labels: np.ndarray | Sequence[int] | None, box: Sequence[float] | None,
                 mask_input: np.ndarray | None, image_size: tuple[int, int]) -> Prompt:
    """Validate prompts against ``image_size`` ``(H, W)``; raises InvalidInput with the reason.

    Points outside the image are clipped onto it; at least one point or a box is required.
    """
    height, width = image_size
    pts = np.zeros((0, 2)) if points is None else np.asarray(points, dtype=np.float64)
    if pts.size == 0:
        pts = np.zeros((0, 2))
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise InvalidInput(f"points must be (N, 2) (x, y), got shape {pts.shape}")
    lab = np.zeros((0,), dtype=np.int64) if labels is None else np.asarray(labels).reshape(-1)
    if len(lab) != len(pts):
        raise InvalidInput(f"{len(pts)} points but {len(lab)} labels")
    if len(lab) and not np.isin(lab, (0, 1)).all():
        raise InvalidInput(f"labels must be 1 (positive) or 0 (negative), got {sorted(set(lab.tolist()))}")
    if not np.isfinite(pts).all():
        raise InvalidInput("points must be finite numbers")
    pts = np.column_stack([np.clip(pts[:, 0], 0, width - 1), np.clip(pts[:, 1], 0, height - 1)]) \
        if len(pts) else pts
    box_arr = None
    if box is not None:
        box_arr = np.asarray(box, dtype=np.float64).reshape(-1)
        if box_arr.size != 4 or not np.isfinite(box_arr).all():
            raise InvalidInput(f"box must be (x0, y0, x1, y1), got {box!r}")
        x0, x1 = sorted(np.clip(box_arr[[0, 2]], 0, width))
        y0, y1 = sorted(np.clip(box_arr[[1, 3]], 0, height))
        if x1 - x0 < 1 or y1 - y0 < 1:
            raise InvalidInput(f"box {box!r} is empty inside the {width}x{height} image")
        box_arr = np.array([x0, y0, x1, y1])
    mask = None
    if mask_input is not None:
        mask = np.asarray(mask_input)
        if mask.shape != (height, width):
            raise InvalidInput(f"mask_input is {mask.shape}, image is {(height, width)}")
        mask = mask > 0.5 if mask.dtype.kind == "f" else mask.astype(bool)
    if len(pts) == 0 and box_arr is None and mask is None:
        raise InvalidInput("give at least one point, a box or a mask to segment")
    return Prompt(pts, lab.astype(np.int64), box_arr, mask)
