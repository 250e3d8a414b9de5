"""Pure metric functions: P/R/F1 from counts, Dice, frame-label agreement, confusion matrices.

Zero-denominator policy (one rule everywhere): a ratio whose denominator is zero is 1.0 when
*both* sides are empty (nothing in gold, nothing drawn: agreement) and 0.0 otherwise.  Means over
nothing (e.g. the mean IoU of zero matched pairs) are ``None``, never NaN, so reports stay
JSON-able.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from endolite.errors import InvalidInput

UNMATCHED = "unmatched"

_PRESENT = {"present", "yes", "true", "1", "positive"}
_ABSENT = {"absent", "no", "false", "0", "negative"}
_UNKNOWN = {"unknown", "", "?", "none", "nan"}


def prf(tp: int, n_annotator: int, n_gold: int) -> tuple[float, float, float]:
    """``(precision, recall, f1)`` from true positives and the two object counts.

    precision = tp / n_annotator, recall = tp / n_gold, f1 = 2 tp / (n_annotator + n_gold).
    Both empty -> (1, 1, 1); one side empty -> its zero-denominator ratio is 0.
    """
    if n_annotator == 0 and n_gold == 0:
        return 1.0, 1.0, 1.0
    precision = tp / n_annotator if n_annotator else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * tp / (n_annotator + n_gold)
    return precision, recall, f1


def dice_from_iou(iou: float | np.ndarray) -> float | np.ndarray:
    """Dice = 2|A∩B| / (|A| + |B|) = 2 IoU / (1 + IoU) (exact identity for the same pair)."""
    return 2.0 * iou / (1.0 + iou)


def mean_or_none(values: Sequence[float]) -> float | None:
    return float(sum(values) / len(values)) if len(values) else None


def presence(value: Any) -> bool | None:
    """One frame-label value as present (True) / absent (False) / unknown (None).

    Accepts bools, 0/1, None and the strings present/absent/unknown (also yes/no/true/false,
    case-insensitive).  Anything else raises ``InvalidInput``.
    """
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        if value in (0.0, 1.0):
            return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _PRESENT:
            return True
        if text in _ABSENT:
            return False
        if text in _UNKNOWN:
            return None
    raise InvalidInput(f"frame-label value {value!r} is not present/absent/unknown")


def segments_to_presence(segments: Iterable[tuple[float, float]], *, n_frames: int,
                         known: tuple[int, int] | None = None) -> tuple[bool | None, ...]:
    """Time segments ``(start, end)`` in frame numbers (start inclusive, end exclusive) as a
    per-frame presence sequence of length ``n_frames``.

    Frames outside ``known`` = ``(first, stop)`` (when given) are ``None`` (unknown: not reviewed).
    """
    out = np.zeros(n_frames, dtype=object)
    out[:] = False
    for start, end in segments:
        lo, hi = max(int(np.ceil(start)), 0), min(int(np.ceil(end)), n_frames)
        if hi > lo:
            out[lo:hi] = True
    if known is not None:
        out[: max(known[0], 0)] = None
        out[max(known[1], 0):] = None
    return tuple(out.tolist())


@dataclass(frozen=True, slots=True)
class Agreement:
    """Agreement of one present/absent sequence with gold (positive class = present).

    ``n``: frames compared (both values known); ``n_excluded``: frames where either side is
    unknown.  ``accuracy``, ``f1`` and Cohen's ``kappa`` are ``None`` when ``n == 0``.  F1 with
    no "present" on either side is 1.0 (zero-denominator policy); kappa when the chance agreement
    is 1 (both sequences constant and equal) is 1.0.
    """

    n: int
    n_excluded: int
    tp: int
    fp: int
    fn: int
    tn: int
    accuracy: float | None
    f1: float | None
    kappa: float | None


def binary_agreement(gold: Sequence[Any], annotated: Sequence[Any]) -> Agreement:
    """Accuracy, F1 and Cohen's kappa of ``annotated`` against ``gold`` (equal lengths),
    excluding positions where either value is unknown (see ``presence``)."""
    if len(gold) != len(annotated):
        raise InvalidInput(f"frame-label sequences differ in length: gold {len(gold)}, "
                           f"annotator {len(annotated)}")
    tp = fp = fn = tn = excluded = 0
    for g_raw, a_raw in zip(gold, annotated):
        g, a = presence(g_raw), presence(a_raw)
        if g is None or a is None:
            excluded += 1
        elif g and a:
            tp += 1
        elif a:
            fp += 1
        elif g:
            fn += 1
        else:
            tn += 1
    return agreement_from_counts(tp=tp, fp=fp, fn=fn, tn=tn, n_excluded=excluded)


def agreement_from_counts(*, tp: int, fp: int, fn: int, tn: int, n_excluded: int = 0) -> Agreement:
    """``Agreement`` from the 2x2 counts (pooling several sequences = adding their counts)."""
    n = tp + fp + fn + tn
    if n == 0:
        return Agreement(0, n_excluded, 0, 0, 0, 0, None, None, None)
    accuracy = (tp + tn) / n
    f1 = 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
    p_yes = ((tp + fn) / n) * ((tp + fp) / n)
    p_no = ((tn + fp) / n) * ((tn + fn) / n)
    expected = p_yes + p_no
    kappa = 1.0 if expected >= 1.0 else (accuracy - expected) / (1.0 - expected)
    return Agreement(n, n_excluded, tp, fp, fn, tn, accuracy, f1, kappa)


@dataclass(frozen=True, slots=True)
class ConfusionMatrix:
    """Object confusion matrix.  ``counts[i][j]``: objects with gold label ``labels[i]``
    (rows: gold) matched to an annotator object labelled ``labels[j]`` (columns: annotator).
    The last label is ``"unmatched"``: row "unmatched" counts extra annotator objects, column
    "unmatched" counts missing gold objects; ``counts[-1][-1]`` is always 0."""

    labels: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "axes": {"rows": "gold", "cols": "annotator"},
                "counts": [list(row) for row in self.counts]}


def confusion_matrix(entries: Iterable[tuple[str | None, str | None]], *,
                     labels: Sequence[str]) -> ConfusionMatrix:
    """Build a ``ConfusionMatrix`` from ``(gold_label, annotator_label)`` pairs; ``None`` on one
    side means unmatched (missing gold: ``(label, None)``; extra: ``(None, label)``)."""
    names = tuple(labels) + (UNMATCHED,)
    index = {name: i for i, name in enumerate(labels)}
    um = len(labels)
    grid = np.zeros((um + 1, um + 1), dtype=np.int64)
    for gold_label, ann_label in entries:
        grid[um if gold_label is None else index[gold_label],
             um if ann_label is None else index[ann_label]] += 1
    return ConfusionMatrix(names, tuple(tuple(int(v) for v in row) for row in grid))


def add_confusion(a: ConfusionMatrix, b: ConfusionMatrix) -> ConfusionMatrix:
    if a.labels != b.labels:
        raise InvalidInput("confusion matrices over different labels cannot be added")
    total = np.asarray(a.counts) + np.asarray(b.counts)
    return ConfusionMatrix(a.labels, tuple(tuple(int(v) for v in row) for row in total))
