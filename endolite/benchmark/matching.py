"""Objects to compare, their IoU matrix, and the one-to-one gold/annotator matching.

Conventions (the whole ``endolite.benchmark`` package follows them):

- A mask is a COCO RLE dict ``{"size": [H, W], "counts": bytes | str}`` (pycocotools,
  column-major); uncompressed RLE (``counts`` a list of ints) is compressed on construction.
  IoU of masks runs on the RLE (``pycocotools.mask.iou`` with ``iscrowd`` zeros); nothing is
  decoded.
- A box is ``(x, y, w, h)`` in pixels, floats: left, top, width, height, the COCO / ``toBbox``
  convention (a box covering columns 2..4 has ``x=2, w=3``).
- A polygon arrives already rasterised as an RLE and is treated as a mask.
- Mask vs box: the mask is replaced by its box (``pycocotools.mask.toBbox``) and box IoU is used.
- Empty-mask policy: an empty mask (area 0) or a box of zero width/height is still an object
  (it can be missing or extra) but its IoU with anything, itself included, is 0, so it is never
  matched.
- IoU matrices are ``(n_annotator, n_gold) float64``: rows are annotator objects, columns gold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from endolite.errors import InvalidInput


class ObjectKind(StrEnum):
    MASK = "mask"
    BOX = "box"
    POLYGON = "polygon"


_MASK_KINDS = (ObjectKind.MASK, ObjectKind.POLYGON)


@dataclass(frozen=True, slots=True)
class BenchObject:
    """One drawn object on one frame, gold or annotator.

    ``kind`` "mask" / "polygon" need ``rle`` (COCO RLE dict, ``size`` is ``[H, W]``);
    "box" needs ``box`` = ``(x, y, w, h)`` pixels.  ``id`` is the caller's object id (reported
    back in rows, never interpreted).
    """

    id: int | str
    label: str
    kind: str
    rle: Mapping[str, Any] | None = None
    box: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        try:
            kind = ObjectKind(self.kind)
        except ValueError:
            raise InvalidInput(
                f"object {self.id!r}: kind {self.kind!r} is not one of mask, box, polygon") from None
        object.__setattr__(self, "kind", kind)
        if not isinstance(self.label, str) or not self.label:
            raise InvalidInput(f"object {self.id!r}: label must be a non-empty string, got {self.label!r}")
        if kind is ObjectKind.BOX:
            box = self.box
            if box is None or len(box) != 4:
                raise InvalidInput(f"object {self.id!r}: a box needs box=(x, y, w, h), got {box!r}")
            values = tuple(float(v) for v in box)
            if not all(math.isfinite(v) for v in values) or values[2] < 0 or values[3] < 0:
                raise InvalidInput(
                    f"object {self.id!r}: box (x, y, w, h) must be finite with w, h >= 0, got {box!r}")
            object.__setattr__(self, "box", values)
            return
        rle = self.rle
        if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
            raise InvalidInput(
                f"object {self.id!r}: a {kind} needs rle={{'size': [H, W], 'counts': ...}}, got {type(rle).__name__}")
        size = rle["size"]
        if len(size) != 2 or int(size[0]) < 0 or int(size[1]) < 0:
            raise InvalidInput(f"object {self.id!r}: RLE size must be [H, W], got {size!r}")
        height, width = int(size[0]), int(size[1])
        counts = rle["counts"]
        if isinstance(counts, (list, tuple, np.ndarray)):
            if int(np.sum(counts)) != height * width:
                raise InvalidInput(
                    f"object {self.id!r}: uncompressed RLE counts sum to {int(np.sum(counts))}, "
                    f"not H*W = {height * width}")
            rle = mask_utils.frPyObjects({"size": [height, width], "counts": [int(c) for c in counts]},
                                         height, width)
        elif isinstance(counts, (bytes, str)):
            rle = {"size": [height, width], "counts": counts}
        else:
            raise InvalidInput(f"object {self.id!r}: RLE counts must be bytes, str or a list of ints")
        object.__setattr__(self, "rle", rle)

    @property
    def is_mask(self) -> bool:
        return self.kind is not ObjectKind.BOX

    @property
    def size(self) -> tuple[int, int] | None:
        """``(H, W)`` of the mask's frame; ``None`` for a box."""
        if self.rle is None:
            return None
        return int(self.rle["size"][0]), int(self.rle["size"][1])


def check_frame_size(objects: Sequence[BenchObject], *, where: str) -> tuple[int, int] | None:
    """The common ``(H, W)`` of the masks in ``objects`` (``None`` when there are none).

    Raises ``InvalidInput`` naming ``where`` (the frame) and two disagreeing objects when masks
    of different frame sizes meet: pycocotools would silently return IoU 0 for them.
    """
    first: BenchObject | None = None
    for obj in objects:
        if obj.rle is None:
            continue
        if first is None:
            first = obj
        elif obj.size != first.size:
            (h0, w0), (h1, w1) = first.size, obj.size
            raise InvalidInput(
                f"{where}: masks of different frame sizes: object {first.id!r} ({first.label}) is "
                f"{h0}x{w0} (H x W) but object {obj.id!r} ({obj.label}) is {h1}x{w1}")
    return None if first is None else first.size


def boxes_of(objects: Sequence[BenchObject]) -> np.ndarray:
    """``(N, 4) float64`` boxes ``(x, y, w, h)``; masks give their ``toBbox`` (one call)."""
    out = np.zeros((len(objects), 4), dtype=np.float64)
    mask_idx = [i for i, o in enumerate(objects) if o.rle is not None]
    if mask_idx:
        out[mask_idx] = mask_utils.toBbox([objects[i].rle for i in mask_idx])
    for i, obj in enumerate(objects):
        if obj.rle is None:
            out[i] = obj.box
    return out


def iou_matrix(annotator: Sequence[BenchObject], gold: Sequence[BenchObject], *,
               where: str = "frame", check: bool = True) -> np.ndarray:
    """IoU of every annotator object with every gold object: ``(len(annotator), len(gold)) float64``.

    Mask/polygon pairs: one ``pycocotools.mask.iou`` call on the RLEs.  Pairs with a box on
    either side: one ``mask.iou`` call on ``(N, 4)`` bbox arrays (a mask contributes its
    ``toBbox``).  Masks of different frame sizes raise ``InvalidInput`` naming ``where``
    (``check=False`` skips that test when the caller has already made it).
    """
    n, m = len(annotator), len(gold)
    out = np.zeros((n, m), dtype=np.float64)
    if n == 0 or m == 0:
        return out
    if check:
        check_frame_size([*gold, *annotator], where=where)
    a_mask = np.fromiter((o.rle is not None for o in annotator), dtype=bool, count=n)
    g_mask = np.fromiter((o.rle is not None for o in gold), dtype=bool, count=m)
    if a_mask.any() and g_mask.any():
        ai = np.flatnonzero(a_mask)
        gi = np.flatnonzero(g_mask)
        ious = mask_utils.iou([annotator[i].rle for i in ai], [gold[j].rle for j in gi], [0] * len(gi))
        out[np.ix_(ai, gi)] = ious
    if not (a_mask.all() and g_mask.all()):
        mixed = ~(a_mask[:, None] & g_mask[None, :])
        bious = mask_utils.iou(boxes_of(annotator), boxes_of(gold), [0] * m)
        out[mixed] = np.asarray(bious, dtype=np.float64).reshape(n, m)[mixed]
    return out


@dataclass(frozen=True, slots=True)
class Matching:
    """One-to-one matching of annotator objects (rows) to gold objects (columns).

    Indices refer to the input sequences.  ``pairs``: matched with the same label;
    ``mismatches``: matched geometrically but with a different label; ``missing``: gold objects
    left unmatched; ``extra``: annotator objects left unmatched.
    """

    pairs: tuple[tuple[int, int], ...]
    mismatches: tuple[tuple[int, int], ...]
    missing: tuple[int, ...]
    extra: tuple[int, ...]


def _assign(candidates: list[tuple[int, int, float]]) -> list[tuple[int, int]]:
    """Hungarian assignment maximising the summed similarity over ``(row, col, sim)`` candidates
    (the eligible pairs; any other pair costs as much as no pair, CVAT's distance 1).

    Fast path: when no row and no column appears twice the candidates are the answer.
    """
    rows = sorted({c[0] for c in candidates})
    cols = sorted({c[1] for c in candidates})
    if len(rows) == len(candidates) and len(cols) == len(candidates):
        return [(i, j) for i, j, _ in candidates]
    from scipy.optimize import linear_sum_assignment   # lazy: only conflicting candidates need it

    r_index = {r: k for k, r in enumerate(rows)}
    c_index = {c: k for k, c in enumerate(cols)}
    cost = np.ones((len(rows), len(cols)))
    ok = np.zeros((len(rows), len(cols)), dtype=bool)
    for i, j, v in candidates:
        cost[r_index[i], c_index[j]] = 1.0 - v
        ok[r_index[i], c_index[j]] = True
    r, c = linear_sum_assignment(cost)
    return [(rows[a], cols[b]) for a, b in zip(r.tolist(), c.tolist()) if ok[a, b]]


def match_objects(iou: np.ndarray, annotator_labels: Sequence[str], gold_labels: Sequence[str], *,
                  iou_threshold: float = 0.5) -> Matching:
    """Match as CVAT's quality control does: labels first, then the leftovers regardless of label.

    ``iou`` is ``(n_annotator, n_gold)``.  Pass 1 runs the Hungarian assignment (maximum summed
    IoU) over same-label pairs; pass 2 runs it over the objects pass 1 left unmatched with all
    pairs allowed, and reports different-label pairs as ``mismatches``.  A pair can match only
    when ``IoU >= iou_threshold`` and ``IoU > 0``.  Pairs are sorted by annotator index.
    """
    iou = np.asarray(iou, dtype=np.float64)
    if iou.ndim != 2:
        raise InvalidInput(f"the IoU matrix must be 2-D (n_annotator, n_gold), got shape {iou.shape}")
    n, m = iou.shape
    if len(annotator_labels) != n or len(gold_labels) != m:
        raise InvalidInput(f"labels ({len(annotator_labels)}, {len(gold_labels)}) do not fit an IoU "
                           f"matrix of shape {iou.shape}")
    threshold = validate_threshold(iou_threshold)
    candidates = [(i, j, v) for i, row in enumerate(iou.tolist()) for j, v in enumerate(row)
                  if v >= threshold and v > 0]
    if not candidates:
        return Matching((), (), tuple(range(m)), tuple(range(n)))
    pairs = _assign([c for c in candidates if annotator_labels[c[0]] == gold_labels[c[1]]])
    mismatches: list[tuple[int, int]] = []
    used_a = {i for i, _ in pairs}
    used_g = {j for _, j in pairs}
    leftover = [c for c in candidates if c[0] not in used_a and c[1] not in used_g]
    if leftover:
        for i, j in _assign(leftover):
            (pairs if annotator_labels[i] == gold_labels[j] else mismatches).append((i, j))
            used_a.add(i)
            used_g.add(j)
    return Matching(
        pairs=tuple(sorted(pairs)),
        mismatches=tuple(sorted(mismatches)),
        missing=tuple(j for j in range(m) if j not in used_g),
        extra=tuple(i for i in range(n) if i not in used_a),
    )


def best_gold_lists(grid: list[list[float]], annotator_labels: Sequence[str], gold_labels: Sequence[str]
                    ) -> list[tuple[float, int, int]]:
    """``best_gold`` on a nested-list IoU matrix: one ``(iou_score, class_score, best_index)``
    per annotator object (no numpy overhead for the small per-frame matrices)."""
    out = []
    m = len(gold_labels)
    for label, row in zip(annotator_labels, grid):
        if not m:
            out.append((0.0, 0, -1))
            continue
        b = max(range(m), key=row.__getitem__)   # first index of the maximum
        s = row[b]
        if s > 0:
            out.append((s, 1 if label == gold_labels[b] else 0, b))
        else:
            out.append((s, 0, -1))
    return out


def best_gold(iou: np.ndarray, annotator_labels: Sequence[str], gold_labels: Sequence[str]
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encord-style score of each annotator object: ``(iou_score, class_score, best_index)``.

    ``iou_score`` ``(n,) float64``: the best IoU against any gold object, whatever its label
    (0 when the frame has no gold object).  ``best_index`` ``(n,) int64``: that gold object
    (first in gold order on ties; -1 when the best IoU is 0).  ``class_score`` ``(n,) int64``:
    1 when the best gold object has the same label, else 0 (0 when the best IoU is 0).
    """
    iou = np.asarray(iou, dtype=np.float64)
    rows = best_gold_lists(iou.tolist(), annotator_labels, gold_labels) if iou.shape[0] else []
    return (np.array([r[0] for r in rows], dtype=np.float64),
            np.array([r[1] for r in rows], dtype=np.int64),
            np.array([r[2] for r in rows], dtype=np.int64))


def validate_threshold(iou_threshold: float) -> float:
    value = float(iou_threshold)
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise InvalidInput(f"iou_threshold must be within [0, 1], got {iou_threshold!r}")
    return value
