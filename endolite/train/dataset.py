"""The training dataset: one row per frame with a label vector, a label mask and a split
(as lx-annotate's EndoMultiLabelDataset builds it).  Reads the database; no torch.

Where a label's value on a frame comes from (for the chosen labels only):

- frame labels: ``present`` -> 1, ``absent`` -> 0, ``unknown`` -> no information.  Every
  annotator's rows count (manual and imported ones; rows a segment materialised, source
  ``segment``, are skipped because the live segments below say the same, and a deleted segment
  must not linger; model rows, source ``model``, are predictions, not truth);
- segments (not deleted): the extracted frames of that video with ``start_frame <=
  frame_number < end_frame`` -> 1;
- masks, boxes, polygons (not deleted): any one of label L on a frame -> L is present (1).

Disagreement policy: sources that agree are merged (two annotators both saying present is one
present).  A frame with both a 1 and a 0 for one label (one annotator present, another absent; a
segment or mask against an ``absent`` frame label) is a conflict: ``build(strict=True)`` raises
InvalidInput naming the frame id, the label and who said what; ``strict=False`` (the preview)
lists the conflicts and counts those entries as unknown.

Frames: those with at least one known label among the chosen ones.  With
``treat_unlabeled_as_negative``: every frame of the videos / image groups that have at least
one known label (context frames only when they carry a label themselves), and a label with no
information on a frame becomes 0 with mask 1.  An explicit ``unknown`` frame label stays
unknown (mask 0) even then: someone looked and could not tell.

Split (``split_by_media``): by video / image group, never by frame.
"""

from __future__ import annotations

import math
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb

from endolite.config import Settings
from endolite.errors import InvalidInput
from endolite.storage.rows import fetch_dicts

SPLITS = ("train", "val", "test")
SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}
MIN_POSITIVES = 5          # fewer positives of a label in a split: a warning
WEIGHT_CAP = 10.0          # class weights (neg/pos) are clipped to [1/cap, cap]


@dataclass(frozen=True)
class DatasetRow:
    """One frame.  ``media``: ``video:<id>`` or ``group:<id>`` (the unit of the split);
    ``path``: the frame file relative to the data dir; ``y[i]`` 1 when label i is present,
    ``known[i]`` 1 when label i is known (labels in the dataset's order); ``split``: train |
    val | test."""

    frame_id: int
    media: str
    path: str
    y: tuple[int, ...]
    known: tuple[int, ...]
    split: str = "train"
    video_id: int | None = None
    group_id: int | None = None
    frame_number: int = 0


@dataclass(frozen=True)
class LabelConflict:
    """A frame with both present and absent for one label; ``present`` / ``absent``: who said
    so (``frame label by ann``, ``segment 4 by bob``, ``2 masks by carl``)."""

    frame_id: int
    label: str
    present: tuple[str, ...]
    absent: tuple[str, ...]

    def text(self) -> str:
        return (f"frame {self.frame_id}, label {self.label!r}: present ({', '.join(self.present)})"
                f" but absent ({', '.join(self.absent)})")


@dataclass(frozen=True)
class DatasetSummary:
    """What the dataset holds, per split.  ``counts[split][label]`` =
    ``{"positive": n, "negative": n, "unknown": n}`` (frames); ``media[split]`` / ``frames[split]``
    via ``split_media`` / ``split_frames``; ``class_weights``: per label, neg/pos on train
    clipped to [1/WEIGHT_CAP, WEIGHT_CAP] (1.0 without positives); ``warnings``: sentences."""

    labels: tuple[str, ...]
    frames: int
    media: int
    split_media: dict[str, int]
    split_frames: dict[str, int]
    counts: dict[str, dict[str, dict[str, int]]]
    class_weights: tuple[float, ...]
    warnings: tuple[str, ...]
    conflicts: tuple[LabelConflict, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)

    def table(self) -> list[dict[str, Any]]:
        """One dict per label: positives / negatives / unknown per split, and the class weight
        (for a table on the page)."""
        out = []
        for i, label in enumerate(self.labels):
            row: dict[str, Any] = {"label": label}
            for split in SPLITS:
                c = self.counts.get(split, {}).get(label, {})
                name = SPLIT_NAMES[split]
                row[f"{name} +"] = c.get("positive", 0)
                row[f"{name} −"] = c.get("negative", 0)
                row[f"{name} ?"] = c.get("unknown", 0)
            row["class weight"] = self.class_weights[i] if i < len(self.class_weights) else 1.0
            out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored in ``training_runs.dataset``)."""
        return {"labels": list(self.labels), "frames": self.frames, "media": self.media,
                "split_media": self.split_media, "split_frames": self.split_frames,
                "counts": self.counts, "class_weights": list(self.class_weights),
                "warnings": list(self.warnings), "conflicts": [c.text() for c in self.conflicts],
                "options": self.options}


@dataclass(frozen=True)
class Dataset:
    labels: tuple[str, ...]
    label_ids: tuple[int, ...]
    rows: tuple[DatasetRow, ...]
    summary: DatasetSummary


# --- reading the database ---------------------------------------------------------------------

def resolve_labels(con: duckdb.DuckDBPyConnection, names: Sequence[str]) -> list[tuple[int, str]]:
    """``(label_id, name)`` per name, in order; InvalidInput for none, a repeat or an unknown name."""
    names = [str(n).strip() for n in names]
    if not names or not all(names):
        raise InvalidInput("labels: name at least one label (no empty names)")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidInput(f"labels: {', '.join(repeated)} named twice")
    found = {r["name"]: int(r["id"]) for r in fetch_dicts(
        con, "SELECT id, name FROM labels WHERE list_contains(?, name)", [names])}
    missing = [n for n in names if n not in found]
    if missing:
        raise InvalidInput(f"labels: no label named {', '.join(repr(n) for n in missing)}")
    return [(found[n], n) for n in names]


def _evidence(con: duckdb.DuckDBPyConnection, label_ids: list[int]) -> tuple[dict, dict, set]:
    """``present[(frame_id, label_id)]`` / ``absent[...]``: lists of who said so; ``explicit
    unknown`` (frame, label) pairs."""
    present: dict[tuple[int, int], list[str]] = defaultdict(list)
    absent: dict[tuple[int, int], list[str]] = defaultdict(list)
    unknown: set[tuple[int, int]] = set()
    for r in fetch_dicts(con, "SELECT frame_id, label_id, value, annotator FROM frame_labels "
                              "WHERE frame_id IS NOT NULL AND list_contains(?, label_id) "
                              "AND source NOT IN ('segment', 'model') ORDER BY id", [label_ids]):
        key = (int(r["frame_id"]), int(r["label_id"]))
        if r["value"] == "present":
            present[key].append(f"frame label by {r['annotator']}")
        elif r["value"] == "absent":
            absent[key].append(f"frame label by {r['annotator']}")
        else:
            unknown.add(key)
    for r in fetch_dicts(con, """
            SELECT fr.id AS frame_id, s.label_id, s.id AS segment_id, s.annotator
            FROM segments s JOIN frames fr ON fr.video_id = s.video_id
                 AND fr.frame_number >= s.start_frame AND fr.frame_number < s.end_frame
            WHERE s.deleted_at IS NULL AND list_contains(?, s.label_id)
            ORDER BY s.id, fr.id""", [label_ids]):
        present[(int(r["frame_id"]), int(r["label_id"]))].append(
            f"segment {r['segment_id']} by {r['annotator']}")
    for r in fetch_dicts(con, "SELECT frame_id, label_id, annotator, count(*) AS n FROM masks "
                              "WHERE deleted_at IS NULL AND list_contains(?, label_id) "
                              "GROUP BY ALL ORDER BY ALL", [label_ids]):
        n = int(r["n"])
        present[(int(r["frame_id"]), int(r["label_id"]))].append(
            f"{n} mask{'s' if n != 1 else ''} by {r['annotator']}")
    return present, absent, unknown


def _media_key(video_id: int | None, group_id: int | None) -> str:
    return f"video:{video_id}" if video_id is not None else f"group:{group_id}"


def collect(con: duckdb.DuckDBPyConnection, labels: Sequence[tuple[int, str]], *,
            treat_unlabeled_as_negative: bool = False) -> tuple[list[DatasetRow], list[LabelConflict]]:
    """The rows (split ``train`` for now; ordered by media then frame number) and the conflicts
    for ``labels`` (``resolve_labels`` output).  Conflicting entries are unknown in the rows."""
    ids = [lid for lid, _ in labels]
    name_of = dict(labels)
    present, absent, unknown = _evidence(con, ids)
    conflicts = [LabelConflict(frame_id=f, label=name_of[lid], present=tuple(present[(f, lid)]),
                               absent=tuple(absent[(f, lid)]))
                 for f, lid in sorted(set(present) & set(absent))]
    known_frames = {f for f, _ in set(present) | set(absent)}
    frames = fetch_dicts(con, "SELECT id, video_id, group_id, frame_number, path, is_context "
                              "FROM frames WHERE id IN (SELECT unnest(?::BIGINT[]))",
                         [sorted(known_frames)])
    if treat_unlabeled_as_negative and frames:
        videos = sorted({r["video_id"] for r in frames if r["video_id"] is not None})
        groups = sorted({r["group_id"] for r in frames if r["group_id"] is not None})
        frames = fetch_dicts(con, "SELECT id, video_id, group_id, frame_number, path, is_context "
                                  "FROM frames WHERE (video_id IN (SELECT unnest(?::BIGINT[])) "
                                  "OR group_id IN (SELECT unnest(?::BIGINT[]))) "
                                  "AND (NOT is_context OR id IN (SELECT unnest(?::BIGINT[])))",
                             [videos, groups, sorted(known_frames)])
    rows = []
    for fr in frames:
        fid = int(fr["id"])
        y, known = [], []
        for lid in ids:
            key = (fid, lid)
            pos, neg = key in present, key in absent
            if pos and neg:
                y.append(0), known.append(0)
            elif pos or neg:
                y.append(1 if pos else 0), known.append(1)
            elif treat_unlabeled_as_negative and key not in unknown:
                y.append(0), known.append(1)
            else:
                y.append(0), known.append(0)
        if not any(known):          # only unknowns (or only conflicts) for the chosen labels
            continue
        rows.append(DatasetRow(frame_id=fid, media=_media_key(fr["video_id"], fr["group_id"]),
                               path=fr["path"], y=tuple(y), known=tuple(known),
                               video_id=fr["video_id"], group_id=fr["group_id"],
                               frame_number=int(fr["frame_number"])))
    rows.sort(key=lambda r: (_natural(r.media), r.frame_number, r.frame_id))
    return rows, conflicts


def conflict_error(conflicts: Sequence[LabelConflict], *, show: int = 5) -> InvalidInput:
    """InvalidInput naming the first ``show`` conflicting frames and labels."""
    more = f"; and {len(conflicts) - show} more" if len(conflicts) > show else ""
    return InvalidInput(f"{len(conflicts)} conflicting label value{'s' if len(conflicts) != 1 else ''}"
                        f" (fix them, e.g. on the Annotate page): "
                        + "; ".join(c.text() for c in conflicts[:show]) + more)


# --- the split --------------------------------------------------------------------------------

def _natural(key: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key)]


def _count(n: int, fraction: float) -> int:
    return int(math.floor(n * fraction + 0.5)) if fraction > 0 else 0


def split_by_media(media_keys: Iterable[str], *, val: float = 0.2, test: float = 0.1,
                   seed: int = 42) -> dict[str, str]:
    """Assign each medium (``video:<id>`` / ``group:<id>``; an image group is one medium) to
    ``train`` / ``val`` / ``test``.  Pure and seeded: the same keys (in any order, repeats
    ignored) and seed give the same split.

    Counts, for n media: ``round_half_up(n * fraction)`` each, but at least one medium for a
    fraction > 0 once there are media to spare; train always keeps at least one (n = 1: train
    only; n = 2: train + val; n = 3: one each when both fractions are > 0).  When the rounded
    counts leave no train medium, test gives way first, then validation.  Empty input: {}.
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise InvalidInput(f"split fractions: validation {val} and test {test} must be >= 0 and "
                           "add up to less than 1")
    keys = sorted(set(media_keys), key=_natural)
    n = len(keys)
    n_val = max(_count(n, val), 1 if val > 0 and n >= 2 else 0)
    n_test = max(_count(n, test), 1 if test > 0 and n >= (3 if val > 0 else 2) else 0)
    while n_val + n_test > n - 1 and n_test > 0:
        n_test -= 1
    while n_val + n_test > n - 1 and n_val > 0:
        n_val -= 1
    order = list(keys)
    random.Random(int(seed)).shuffle(order)
    out = {}
    for i, key in enumerate(order):
        out[key] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out


def assign_splits(rows: Iterable[DatasetRow], split_of: dict[str, str]) -> list[DatasetRow]:
    return [replace(r, split=split_of[r.media]) for r in rows]


# --- counts, warnings, weights ----------------------------------------------------------------

def split_counts(rows: Sequence[DatasetRow], labels: Sequence[str]) -> dict[str, dict[str, dict[str, int]]]:
    """``{split: {label: {"positive", "negative", "unknown"}}}`` over the rows (all three splits
    present, zeros for an empty one)."""
    out = {s: {lab: {"positive": 0, "negative": 0, "unknown": 0} for lab in labels} for s in SPLITS}
    for r in rows:
        per = out[r.split]
        for lab, y, k in zip(labels, r.y, r.known):
            per[lab]["unknown" if not k else "positive" if y else "negative"] += 1
    return out


def class_weights(counts: dict[str, dict[str, dict[str, int]]], labels: Sequence[str], *,
                  cap: float = WEIGHT_CAP) -> tuple[float, ...]:
    """Per label: negatives / positives on train, clipped to [1/cap, cap]; 1.0 without positives."""
    out = []
    for lab in labels:
        c = counts["train"][lab]
        if c["positive"] == 0:
            out.append(1.0)
        else:
            out.append(round(min(max(c["negative"] / c["positive"], 1 / cap), cap), 4))
    return tuple(out)


def warnings_for(counts: dict[str, dict[str, dict[str, int]]], split_media: dict[str, int],
                 labels: Sequence[str], *, val: float, test: float,
                 min_positives: int = MIN_POSITIVES) -> list[str]:
    """Sentences about what makes the run weak: a split without media, a label with fewer than
    ``min_positives`` positives in a split that has frames, a label without negatives in train."""
    out = []
    total = sum(split_media.values())
    for split, fraction in (("val", val), ("test", test)):
        if fraction > 0 and split_media.get(split, 0) == 0 and total:
            out.append(f"no video / image group in the {SPLIT_NAMES[split]} split ({total} in all):"
                       " add media, or its metrics are missing")
    for split in SPLITS:
        if not split_media.get(split):
            continue
        for lab in labels:
            pos = counts[split][lab]["positive"]
            if pos == 0 and split == "train":
                out.append(f"{lab}: no positive frame in train: the model cannot learn it")
            elif pos < min_positives:
                out.append(f"{lab}: only {pos} positive frame{'s' if pos != 1 else ''} in "
                           f"{SPLIT_NAMES[split]} (fewer than {min_positives})")
        if split == "train":
            for lab in labels:
                if counts["train"][lab]["negative"] == 0:
                    out.append(f"{lab}: no negative frame in train (every known frame is positive)")
    return out


def build(con: duckdb.DuckDBPyConnection, labels: Sequence[str], *,
          treat_unlabeled_as_negative: bool = False, val_fraction: float = 0.2,
          test_fraction: float = 0.1, seed: int = 42, strict: bool = True) -> Dataset:
    """The dataset for label names ``labels`` (their order is the model's output order).

    ``strict``: conflicts raise InvalidInput (``conflict_error``); else they are listed in the
    summary.  An empty dataset is returned as such (the caller decides; ``services.training``
    refuses to train on it)."""
    resolved = resolve_labels(con, labels)
    names = tuple(n for _, n in resolved)
    rows, conflicts = collect(con, resolved, treat_unlabeled_as_negative=treat_unlabeled_as_negative)
    if conflicts and strict:
        raise conflict_error(conflicts)
    split_of = split_by_media((r.media for r in rows), val=val_fraction, test=test_fraction, seed=seed)
    rows = assign_splits(rows, split_of)
    counts = split_counts(rows, names)
    split_media = {s: sum(1 for v in split_of.values() if v == s) for s in SPLITS}
    split_frames = {s: sum(1 for r in rows if r.split == s) for s in SPLITS}
    warnings = warnings_for(counts, split_media, names, val=val_fraction, test=test_fraction)
    if conflicts:
        warnings.insert(0, conflict_error(conflicts).args[0])
    summary = DatasetSummary(
        labels=names, frames=len(rows), media=len(split_of), split_media=split_media,
        split_frames=split_frames, counts=counts, class_weights=class_weights(counts, names),
        warnings=tuple(warnings), conflicts=tuple(conflicts),
        options={"treat_unlabeled_as_negative": bool(treat_unlabeled_as_negative),
                 "val_fraction": val_fraction, "test_fraction": test_fraction, "seed": int(seed),
                 "split": split_of})
    return Dataset(labels=names, label_ids=tuple(i for i, _ in resolved), rows=tuple(rows),
                   summary=summary)


# --- the manifest -----------------------------------------------------------------------------

def manifest(dataset: Dataset, settings: Settings) -> dict[str, Any]:
    """The manifest.json document (docs/TRAINING.md): labels and one row per frame with the
    frame file's absolute path."""
    return {"labels": list(dataset.labels),
            "rows": [{"frame_id": r.frame_id, "path": str(settings.absolute(r.path)),
                      "media": r.media, "split": r.split, "y": list(r.y), "known": list(r.known)}
                     for r in dataset.rows]}


def write_manifest(path: str | Path, dataset: Dataset, settings: Settings) -> Path:
    """Write ``manifest(dataset, settings)`` to ``path`` atomically (temporary name +
    os.replace); returns the path."""
    from endolite.train.runstate import write_json_atomic

    return write_json_atomic(path, manifest(dataset, settings))
