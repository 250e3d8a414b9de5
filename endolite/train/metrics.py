"""Multilabel classification metrics over the known entries only (pure numpy / sklearn).

Inputs: ``probs`` float ``(N, L)`` probabilities in [0, 1], ``y`` ``(N, L)`` 0/1 truth,
``known`` ``(N, L)`` 0/1 (1 = the label is known for the frame); label ``j`` is scored only on
the frames where ``known[:, j] == 1``.  A frame is predicted positive when ``p >= threshold``
(0.5).  Values that are undefined are ``None`` (JSON null): precision with no predicted
positive, recall with no true positive, F1 with neither, AUROC with a single class, AP with no
positive, any value of a label with no known entry.  Empty input (N = 0) gives every label
``support`` 0 and ``macro_f1`` None.  The dicts match ``metrics.jsonl`` / ``result.json`` in
docs/TRAINING.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from endolite.errors import InvalidInput


def _ratio(num: int, den: int) -> float | None:
    return float(num) / float(den) if den else None


def label_metrics(probs, y, *, threshold: float = 0.5) -> dict[str, Any]:
    """Metrics of one label from 1-D ``probs`` and 0/1 ``y`` (known entries only).

    Returns ``{"precision", "recall", "f1", "auroc", "ap", "support", "known", "tp", "fp",
    "tn", "fn"}``: ``support`` is the number of positive (present) frames, ``known`` the number
    of frames scored."""
    import numpy as np

    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    y = np.asarray(y).reshape(-1).astype(bool)
    if probs.shape != y.shape:
        raise InvalidInput(f"metrics: {probs.shape[0]} probabilities for {y.shape[0]} labels")
    pred = probs >= threshold
    tp = int(np.sum(pred & y))
    fp = int(np.sum(pred & ~y))
    tn = int(np.sum(~pred & ~y))
    fn = int(np.sum(~pred & y))
    positives = tp + fn
    auroc = ap = None
    if 0 < positives < len(y):
        from sklearn.metrics import roc_auc_score

        auroc = float(roc_auc_score(y, probs))
    if positives > 0:
        from sklearn.metrics import average_precision_score

        ap = float(average_precision_score(y, probs))
    return {"precision": _ratio(tp, tp + fp), "recall": _ratio(tp, positives),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn), "auroc": auroc, "ap": ap,
            "support": positives, "known": int(len(y)),
            "tp": tp, "fp": fp, "tn": tn, "fn": fn}


def evaluate(probs, y, known, labels: Sequence[str], *, threshold: float = 0.5
             ) -> dict[str, Any]:
    """``{"macro_f1": float | None, "per_label": {label: label_metrics(...)}}``.

    ``macro_f1`` is the mean F1 over the labels that have at least one known entry and a
    defined F1 (a label with no positive truth and no positive prediction has none); None when
    no label qualifies."""
    import numpy as np

    labels = list(labels)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1, len(labels))
    y = np.asarray(y).reshape(-1, len(labels))
    known = np.asarray(known).reshape(-1, len(labels)).astype(bool)
    if not (probs.shape == y.shape == known.shape):
        raise InvalidInput(f"metrics: shapes differ (probs {probs.shape}, y {y.shape}, "
                           f"known {known.shape})")
    per_label: dict[str, Any] = {}
    f1s = []
    for j, name in enumerate(labels):
        rows = known[:, j]
        m = label_metrics(probs[rows, j], y[rows, j], threshold=threshold)
        per_label[name] = m
        if m["known"] and m["f1"] is not None:
            f1s.append(m["f1"])
    return {"macro_f1": float(np.mean(f1s)) if f1s else None, "per_label": per_label}
