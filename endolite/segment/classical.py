"""The no-checkpoint engine: seeded region growing on colour edges, same protocol as SAM.

``embed`` downscales the image (long side ``work_side``, 256 px by default) and precomputes a
colour-gradient image (Sobel on a blurred Lab image); ``predict`` grows regions from markers
with OpenCV's watershed on that gradient and upsamples the result:

- a positive click seeds the object (a small disc); a negative click seeds background;
- without a box, everything beyond a radius around the positive clicks is background; the
  object's size is unknown, so one candidate is made per radius (``radii``, fractions of the
  long side) and ``multimask=False`` keeps the middle one;
- with a box, outside the box is background and a centred ellipse (one size per candidate) plus
  the positive clicks seed the object; with ``mask_input``, the eroded previous mask seeds the
  object and outside its dilation is background;
- the endoscope's dark field-of-view frame (dark pixels connected to the image edge) is
  always background;
- each mask keeps the parts that touch a positive click (else its largest part), holes filled.

Scores: colour separation of the candidate against a ring around it (1 - Bhattacharyya
coefficient of Lab histograms), so a candidate whose inside differs from its surroundings
beats one that stops inside the object or spills over into the background.

``method="grabcut"`` runs OpenCV GrabCut with the same seeds instead.  Measured on the 30
Kvasir-SEG / 10 CVC-ClinicDB samples (one click at the polyp's most interior point plus up to
4 negatives around it; best-scored candidate): watershed mean IoU 0.52 / 0.59 (0.65 on the
synthetic discs) at ~15 ms per click; GrabCut 0.46 / 0.42 (0.86) at ~0.8 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from endolite.errors import InvalidInput
from endolite.segment.base import Embedding, Prompt, check_image, check_prompt, image_key

NAME = "classical"
METHODS = ("watershed", "grabcut")


@dataclass(frozen=True)
class ClassicalOptions:
    method: str = "watershed"                      # watershed | grabcut
    work_side: int = 256                           # px, long side of the working image
    radii: tuple[float, ...] = (0.15, 0.25, 0.35)  # object radius guesses / long side (no box)
    box_seeds: tuple[float, ...] = (0.15, 0.30, 0.45)  # seed ellipse size / box size
    sure_radius: float = 0.025                     # click disc radius / long side
    blur_sigma: float = 2.0                        # px (working res) before the gradient
    dark_level: int = 18                           # grey level of the field-of-view frame
    grabcut_iterations: int = 4


class ClassicalSegmenter:
    """Watershed (or GrabCut) engine serving :class:`endolite.segment.base.Segmenter`."""

    name = NAME

    def __init__(self, options: ClassicalOptions = ClassicalOptions(), *, reason: str = ""):
        if options.method not in METHODS:
            raise InvalidInput(f"classical method {options.method!r}: use one of {METHODS}")
        self.options = options
        what = "seeded watershed on colour edges" if options.method == "watershed" else "GrabCut"
        self.description = (f"Classical engine ({what}, seeded by your clicks): no SAM checkpoint"
                            + (f" ({reason})" if reason else ""))

    # -- protocol ----------------------------------------------------------------------------
    def embed(self, image: np.ndarray, *, key: str | None = None) -> Embedding:
        """Features: the working image ``(h, w, 3) uint8`` RGB (gradients are cheap to redo)."""
        import cv2

        image = check_image(image)
        height, width = image.shape[:2]
        factor = min(1.0, self.options.work_side / max(height, width))
        size = (max(8, round(width * factor)), max(8, round(height * factor)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if factor < 1 else image.copy()
        return Embedding(NAME, key or image_key(image), (height, width), (size[1], size[0]), small)

    def predict(self, embedding: Embedding, points: np.ndarray | Sequence[Sequence[float]],
                labels: np.ndarray | Sequence[int], box: Sequence[float] | None = None,
                mask_input: np.ndarray | None = None, *, multimask: bool = True
                ) -> tuple[np.ndarray, np.ndarray]:
        """Masks ``(K, H, W) bool`` and scores ``(K,) float32`` (see the module docstring)."""
        if embedding.engine != NAME:
            raise InvalidInput(f"embedding made by {embedding.engine!r}, not by the classical engine")
        prompt = check_prompt(points, labels, box, mask_input, embedding.image_size)
        image = embedding.features
        grad = _gradient(image, self.options.blur_sigma)
        seeds = list(_seed_maps(embedding, prompt, self.options, image))
        if not multimask:
            seeds = [seeds[len(seeds) // 2]]
        masks, scores = [], []
        positives = _scaled(prompt.positives, embedding)
        for markers in seeds:
            small = self._segment(image, grad, markers)
            small = _keep_prompted(small, positives)
            masks.append(_upsample(small, embedding.image_size))
            scores.append(_separation(image, small))
        return np.stack(masks), np.asarray(scores, dtype=np.float32)

    def _segment(self, image: np.ndarray, grad: np.ndarray, markers: np.ndarray) -> np.ndarray:
        """``markers`` (h, w) int32: 1 object, 2 background, 0 unknown -> (h, w) bool."""
        import cv2

        if not (markers == 1).any():
            return np.zeros(markers.shape, dtype=bool)
        if self.options.method == "grabcut":
            gc = np.where(markers == 1, cv2.GC_FGD, np.where(markers == 2, cv2.GC_BGD, cv2.GC_PR_FGD))
            gc = gc.astype(np.uint8)
            if (gc == cv2.GC_BGD).any():
                bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
                try:
                    cv2.grabCut(image[:, :, ::-1].copy(), gc, None, bgd, fgd,
                                self.options.grabcut_iterations, cv2.GC_INIT_WITH_MASK)
                except cv2.error:
                    pass  # degenerate colour model: keep the seeds
            return np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD))
        top = float(np.percentile(grad, 99)) or 1.0
        relief = np.clip(grad * (255.0 / top), 0, 255).astype(np.uint8)
        grown = cv2.watershed(cv2.cvtColor(relief, cv2.COLOR_GRAY2BGR), markers.copy())
        return grown == 1


# --- helpers ----------------------------------------------------------------------------------

def _gradient(image: np.ndarray, sigma: float) -> np.ndarray:
    """Colour-gradient magnitude ``(h, w) float32`` of a blurred Lab image."""
    import cv2

    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    if sigma > 0:
        lab = cv2.GaussianBlur(lab, (0, 0), sigma)
    gx = cv2.Sobel(lab, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(lab, cv2.CV_32F, 0, 1)
    return np.sqrt((gx * gx + gy * gy).sum(axis=2))


def _scaled(points: np.ndarray, embedding: Embedding) -> list[tuple[float, float]]:
    h, w = embedding.input_size
    height, width = embedding.image_size
    return [(x * w / width, y * h / height) for x, y in points]


def _seed_maps(embedding: Embedding, prompt: Prompt, options: ClassicalOptions, image: np.ndarray):
    """Yield one marker map ``(h, w) int32`` (1 object, 2 background, 0 unknown) per candidate."""
    import cv2

    h, w = embedding.input_size
    height, width = embedding.image_size
    sx, sy = w / width, h / height
    long_side = max(h, w)
    sure = max(2, round(options.sure_radius * long_side))
    positives = _scaled(prompt.positives, embedding)
    negatives = _scaled(prompt.negatives, embedding)
    border = dark_border(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), options.dark_level)

    def finish(markers: np.ndarray) -> np.ndarray:
        markers[border] = 2
        for x, y in negatives:
            cv2.circle(markers, (round(x), round(y)), sure, 2, -1)
        for x, y in positives:
            cv2.circle(markers, (round(x), round(y)), sure, 1, -1)
        return markers

    if prompt.mask is not None:
        prev = cv2.resize(prompt.mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        r = max(1, round(0.05 * np.sqrt(max(int(prev.sum()), 1))) + 1)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        markers = np.full((h, w), 2, np.int32)
        markers[cv2.dilate(prev, kernel) > 0] = 0
        markers[cv2.erode(prev, kernel) > 0] = 1
        if prompt.box is not None:
            _outside_box(markers, prompt.box, sx, sy)
        yield finish(markers)
        return
    if prompt.box is not None:
        x0, y0, x1, y1 = prompt.box * [sx, sy, sx, sy]
        centre = (round((x0 + x1) / 2), round((y0 + y1) / 2))
        for fraction in options.box_seeds:
            markers = np.zeros((h, w), np.int32)
            _outside_box(markers, prompt.box, sx, sy)
            axes = (max(1, round(fraction * (x1 - x0) / 2)), max(1, round(fraction * (y1 - y0) / 2)))
            cv2.ellipse(markers, centre, axes, 0, 0, 360, 1, -1)
            yield finish(markers)
        return
    for radius in options.radii:
        markers = np.full((h, w), 2, np.int32)
        for x, y in positives:
            cv2.circle(markers, (round(x), round(y)), max(sure + 2, round(radius * long_side)), 0, -1)
        yield finish(markers)


def _outside_box(markers: np.ndarray, box: np.ndarray, sx: float, sy: float) -> None:
    h, w = markers.shape
    x0, y0, x1, y1 = box * [sx, sy, sx, sy]
    inside = np.zeros((h, w), dtype=bool)
    rows = slice(max(0, int(y0) + 1), min(h, int(np.ceil(y1)) - 1))
    cols = slice(max(0, int(x0) + 1), min(w, int(np.ceil(x1)) - 1))
    inside[rows, cols] = True
    markers[~inside] = 2


def dark_border(grey: np.ndarray, level: int = 18) -> np.ndarray:
    """``(h, w) bool``: dark pixels (< ``level``) connected to the image edge, i.e. the black
    field-of-view frame around endoscopy images."""
    import cv2

    dark = (grey < level).astype(np.uint8)
    count, labels = cv2.connectedComponents(dark, connectivity=4)
    if count <= 1:
        return np.zeros(grey.shape, dtype=bool)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    edge = edge[edge != 0]
    return np.isin(labels, edge)


def _keep_prompted(mask: np.ndarray, positives: list[tuple[float, float]]) -> np.ndarray:
    """Connected parts containing a positive click (else the largest part), holes filled."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask
    h, w = mask.shape
    keep = {int(labels[min(h - 1, max(0, round(y))), min(w - 1, max(0, round(x)))])
            for x, y in positives} - {0}
    if not keep:
        keep = {1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))}
    out = np.isin(labels, sorted(keep))
    _, background = cv2.connectedComponents((~out).astype(np.uint8), connectivity=4)
    edge = np.unique(np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]]))
    return out | ((background > 0) & ~np.isin(background, edge))


def _upsample(small: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    height, width = size
    if small.shape == (height, width):
        return small.copy()
    soft = cv2.resize(small.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return soft >= 0.5


def _separation(image: np.ndarray, mask: np.ndarray) -> float:
    """Colour separation in [0, 1] of ``mask`` against a ring around it (width a quarter of the
    mask's equivalent size): 1 - Bhattacharyya coefficient of 8x8x8 Lab histograms; 0 for an
    empty or full mask."""
    import cv2

    if not mask.any() or mask.all():
        return 0.0
    radius = max(2, round(0.25 * np.sqrt(int(mask.sum()))))
    ring = (cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3) <= radius) & ~mask
    if not ring.any():
        return 0.0
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)

    def hist(region: np.ndarray) -> np.ndarray:
        counts = cv2.calcHist([lab], [0, 1, 2], region.astype(np.uint8), [8, 8, 8], [0, 256] * 3)
        return counts / max(float(counts.sum()), 1.0)

    return float(np.clip(1.0 - float(np.sqrt(hist(mask) * hist(ring)).sum()), 0.0, 1.0))
