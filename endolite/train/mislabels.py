"""Likely mislabels: frames where a trained model confidently disagrees with the given labels.

Confident learning (Northcutt et al.), per label of a multilabel problem, on held-out
probabilities (the run's ``heldout.json``: validation and test frames the model never trained
on) against the labels the run trained with (its ``manifest.json``):

* per label l, over the frames where l is known: ``t_pos[l]`` = mean p over the given
  positives (the model's typical confidence on a true positive), ``t_neg[l]`` = mean (1 - p)
  over the given negatives; a label with no given positives (negatives) uses 0.5;
* flag (frame, l) given *absent* when ``p >= max(t_pos[l], 0.5)`` (suggested present,
  confidence p), and given *present* when ``p <= min(1 - t_neg[l], 0.5)`` (suggested absent,
  confidence 1 - p);
* unknown entries (``known == 0``) are never flagged and never enter a threshold.

Results are ranked by confidence (highest first), then frame id, then label order.
``find_mislabels`` is pure; ``load_run`` reads a run directory's two JSON files;
``run_mislabels`` adds the run's label ids and the leads' review decisions (read-only).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from endolite.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class Mislabel:
    """One (frame, label) the model disputes: ``given`` the annotation (True = present),
    ``suggested`` the model's answer (always ``not given``), ``confidence`` the model's
    probability of its answer in [0.5, 1]."""

    frame_id: int
    label: str
    given: bool
    suggested: bool
    confidence: float


def thresholds(probs: np.ndarray, given: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(t_pos (L,), t_neg (L,))`` float64 per label; 0.5 where a label has no known
    positives / negatives.  Shapes as in ``find_mislabels``."""
    p, y, k = _arrays(probs, given, known)
    pos = k & y
    neg = k & ~y
    n_pos = pos.sum(axis=0)
    n_neg = neg.sum(axis=0)
    t_pos = np.where(n_pos > 0, (p * pos).sum(axis=0) / np.maximum(n_pos, 1), 0.5)
    t_neg = np.where(n_neg > 0, ((1.0 - p) * neg).sum(axis=0) / np.maximum(n_neg, 1), 0.5)
    return t_pos, t_neg


def find_mislabels(probs: np.ndarray, given: np.ndarray, known: np.ndarray, *,
                   frame_ids: Sequence[int], labels: Sequence[str]) -> list[Mislabel]:
    """The flagged (frame, label) pairs, most confident first.

    ``probs``: ``(N, L)`` float in [0, 1]; ``given``: ``(N, L)`` in {0, 1} (1 = present);
    ``known``: ``(N, L)`` in {0, 1} (0 = the label is unknown for the frame: ignored);
    ``frame_ids``: N ids (row order); ``labels``: L names (column order).  ``N == 0`` or no
    known entry gives ``[]``.
    """
    p, y, k = _arrays(probs, given, known)
    if len(frame_ids) != p.shape[0] or len(labels) != p.shape[1]:
        raise InvalidInput(f"frame_ids / labels: {len(frame_ids)} ids and {len(labels)} labels "
                           f"for probabilities of shape {p.shape}")
    if p.size == 0:
        return []
    t_pos, t_neg = thresholds(p, y, k)
    up = k & ~y & (p >= np.maximum(t_pos, 0.5))
    down = k & y & (p <= np.minimum(1.0 - t_neg, 0.5))
    out = []
    for rows, cols in (np.nonzero(up), np.nonzero(down)):
        for r, c in zip(rows.tolist(), cols.tolist()):
            present = bool(y[r, c])
            conf = float(p[r, c]) if not present else 1.0 - float(p[r, c])
            out.append(Mislabel(frame_id=int(frame_ids[r]), label=str(labels[c]), given=present,
                                suggested=not present, confidence=round(conf, 6)))
    order = {name: i for i, name in enumerate(labels)}
    out.sort(key=lambda m: (-m.confidence, m.frame_id, order[m.label]))
    return out


def _arrays(probs, given, known) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise InvalidInput(f"probs: expected an (N, L) array, got shape {p.shape}")
    y = np.asarray(given)
    k = np.asarray(known)
    if y.shape != p.shape or k.shape != p.shape:
        raise InvalidInput(f"given / known: shapes {y.shape} / {k.shape} differ from the "
                           f"probabilities' {p.shape}")
    if p.size and (not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1):
        raise InvalidInput("probs: probabilities must be finite and within [0, 1]")
    for name, a in (("given", y), ("known", k)):
        if a.size and not np.all((a == 0) | (a == 1)):
            raise InvalidInput(f"{name}: entries must be 0 or 1")
    return p, y.astype(bool), k.astype(bool)


def _read(path: Path) -> dict:
    if not path.is_file():
        raise NotFound(f"{path.name}: missing from the run directory {path.parent} "
                       "(the run has not finished, or it predates held-out predictions)")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("labels"), list) \
            or not isinstance(data.get("rows"), list):
        raise InvalidInput(f"{path}: expected {{\"labels\": [...], \"rows\": [...]}}")
    return data


def load_run(run_dir: str | Path) -> list[Mislabel]:
    """``find_mislabels`` over a finished run directory: the probabilities of ``heldout.json``
    against the ``y`` / ``known`` vectors of ``manifest.json`` (the labels the run trained
    with), joined by frame id.  Held-out frames missing from the manifest are skipped.  Raises
    NotFound when a file is missing and InvalidInput when they disagree on the labels or a row
    has the wrong length (naming the file)."""
    run_dir = Path(run_dir)
    heldout = _read(run_dir / "heldout.json")
    manifest = _read(run_dir / "manifest.json")
    labels = [str(x) for x in heldout["labels"]]
    if labels != [str(x) for x in manifest["labels"]]:
        raise InvalidInput(f"{run_dir / 'heldout.json'}: labels {labels} differ from the "
                           f"manifest's {manifest['labels']}")
    given = {}
    for row in manifest["rows"]:
        given[int(row["frame_id"])] = (row["y"], row.get("known", [1] * len(labels)))
    ids, p, y, k = [], [], [], []
    for row in heldout["rows"]:
        fid = int(row["frame_id"])
        if fid not in given:
            continue
        probs = row.get("p")
        if not isinstance(probs, list) or len(probs) != len(labels) \
                or len(given[fid][0]) != len(labels) or len(given[fid][1]) != len(labels):
            raise InvalidInput(f"{run_dir}: frame {fid} has vectors of the wrong length "
                               f"(expected {len(labels)} labels)")
        ids.append(fid)
        p.append(probs)
        y.append(given[fid][0])
        k.append(given[fid][1])
    shape = (len(ids), len(labels))
    arr = (lambda rows: np.asarray(rows, dtype=np.float64).reshape(shape))
    return find_mislabels(arr(p), arr(y), arr(k), frame_ids=ids, labels=labels)


@dataclass(frozen=True)
class ReviewedMislabel:
    """A ``Mislabel`` of run ``run_id`` with the label's id (the run's ``label_ids``) and the
    review decision on it (``confirmed`` | ``dismissed``; None = not reviewed yet)."""

    run_id: int
    frame_id: int
    label: str
    label_id: int
    given: bool
    suggested: bool
    confidence: float
    decision: str | None = None
    decided_by: str | None = None


def run_mislabels(con, settings, run_id: int, *,
                  frame_ids: Sequence[int] | None = None) -> list[ReviewedMislabel]:
    """The likely mislabels of a done run (``load_run`` on its directory), ranked, with their
    review decisions; only frames in ``frame_ids`` when given.  NotFound for an unknown run or
    missing files, InvalidInput for a run that is not done."""
    from endolite.storage import mislabels as store
    from endolite.storage.training import RunStatus, get_run

    run = get_run(con, int(run_id))
    if run.status != RunStatus.DONE:
        raise InvalidInput(f"training run {run.id} is {run.status}: likely mislabels come from a "
                           "done run's held-out predictions")
    found = load_run(settings.absolute(run.run_dir))
    if frame_ids is not None:
        wanted = {int(i) for i in frame_ids}
        found = [m for m in found if m.frame_id in wanted]
    ids = dict(zip(run.labels, run.label_ids))
    decisions = store.decisions_of(con, run.id, frame_ids=sorted({m.frame_id for m in found}))
    out = []
    for m in found:
        if m.label not in ids:
            raise InvalidInput(f"training run {run.id}: label {m.label!r} of its held-out file is "
                               "not among the run's labels")
        d = decisions.get((m.frame_id, int(ids[m.label])))
        out.append(ReviewedMislabel(run_id=run.id, frame_id=m.frame_id, label=m.label,
                                    label_id=int(ids[m.label]), given=m.given,
                                    suggested=m.suggested, confidence=m.confidence,
                                    decision=d.decision if d else None,
                                    decided_by=d.decided_by if d else None))
    return out


def latest_run(con, settings) -> int | None:
    """The newest done run whose directory holds ``heldout.json`` (None when there is none)."""
    from endolite.storage.training import RunStatus, list_runs

    for run in list_runs(con, status=[RunStatus.DONE]):
        if (settings.absolute(run.run_dir) / "heldout.json").is_file():
            return run.id
    return None


__all__ = ["Mislabel", "ReviewedMislabel", "thresholds", "find_mislabels", "load_run",
           "run_mislabels", "latest_run"]
