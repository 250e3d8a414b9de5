"""Benchmark service: the workflow around the pure evaluation core, against the database.

A lead creates a benchmark (name, frames, labels in scope, the gold annotator, the annotators
to evaluate); every user gets one task per frame (status todo / in_progress / complete).  The
report evaluates, for each annotator, only the frames on which both the gold annotator's and
that annotator's tasks are complete:

- objects: the live masks / boxes / polygons (``records.Mask`` rows, COCO RLE) of the gold user
  and of the annotator on the frame whose label is in scope.  ``kind`` "box" is compared as the
  stored ``bbox`` ``(x, y, w, h)``; masks and polygons as their RLE (see ``matching``);
- frame labels: per label, the gold user's vs the annotator's ``frame_labels`` rows on those
  frames, one ``SequenceInput`` per video / image group (no row = unknown, so not compared;
  rows made from segments are left to the segment comparison);
- time segments: per label, gold vs annotator segments over every frame of each video that
  has an evaluated frame (``segments_to_presence``; segment ends are inclusive in storage).

``data_unit_name`` is the frame's title as a person knows it: the original file name of a still
image, ``<video title>#<frame number>`` for a video frame.  Pages and the CLI call these
functions; nothing here prints.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np

from endolite.benchmark.matching import BenchObject
from endolite.benchmark.metrics import segments_to_presence
from endolite.benchmark.records import BenchmarkReport, FrameInput, FrameRow, SequenceInput, Summary
from endolite.benchmark.render import row_dict, rows_to_csv
from endolite.benchmark.report import build_report
from endolite.config import Settings
from endolite.errors import InvalidInput, NotFound
from endolite.records import Benchmark, Frame, Label, Mask, ShapeKind, TaskStatus, to_dict
from endolite.storage import annotations, audit, benchmarks, labels, media, users

SAMPLE_METHODS = ("random", "stratified")
IOU_RESULTS_CSV = "iou_results.csv"
SUMMARY_CSV = "label_summary.csv"
REPORT_JSON = "benchmark_report.json"
LEADERBOARD_COLUMNS = ("annotator", "tasks_done", "tasks_total", "evaluated", "mean_iou",
                       "class_score", "f1", "precision", "recall", "matched", "mismatched",
                       "missing", "extra", "mean_dice")


# --- parsing helpers (CLI and page text fields) -----------------------------------------------

def parse_ids(text: str | Iterable[int] | None, *, what: str = "frames") -> list[int]:
    """``"3,5, 8"`` -> ``[3, 5, 8]`` (order kept, duplicates dropped)."""
    if text is None:
        return []
    if not isinstance(text, str):
        return list(dict.fromkeys(int(v) for v in text))
    out = []
    for part in text.replace(" ", ",").split(","):
        if not part.strip():
            continue
        try:
            out.append(int(part))
        except ValueError:
            raise InvalidInput(f"{what}: {part.strip()!r} is not a number (use ids like 3,5,8)") from None
    return list(dict.fromkeys(out))


def parse_names(text: str | Iterable[str] | None) -> list[str]:
    """``"ann, bob"`` -> ``["ann", "bob"]`` (order kept, duplicates dropped)."""
    if text is None:
        return []
    parts = text.split(",") if isinstance(text, str) else list(text)
    return list(dict.fromkeys(p.strip() for p in parts if p and p.strip()))


# --- frame selection --------------------------------------------------------------------------

def sample_frame_ids(frame_ids: Sequence[int], count: int, *, seed: int = 0,
                     method: str = "random") -> list[int]:
    """Pick ``count`` of ``frame_ids`` (given in sequence order), reproducibly for ``seed``.

    ``random``: a uniform random sample; ``stratified``: the sequence is cut into ``count``
    equal consecutive parts and one frame is drawn from each (covers the whole procedure).
    The result keeps sequence order; ``count >= len(frame_ids)`` returns them all.
    """
    if method not in SAMPLE_METHODS:
        raise InvalidInput(f"sample method {method!r}: use one of {', '.join(SAMPLE_METHODS)}")
    if count < 1:
        raise InvalidInput(f"sample size must be at least 1, got {count}")
    ids = list(frame_ids)
    if count >= len(ids):
        return ids
    rng = random.Random(seed)
    if method == "random":
        picked = sorted(rng.sample(range(len(ids)), count))
    else:
        edges = np.linspace(0, len(ids), count + 1)
        picked = [rng.randrange(int(round(lo)), max(int(round(hi)), int(round(lo)) + 1))
                  for lo, hi in zip(edges[:-1], edges[1:])]
    return [ids[i] for i in picked]


def list_extractions(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Extraction runs with their video title and picked-frame count, newest first."""
    return media.list_extractions(con)


def select_frames(con: duckdb.DuckDBPyConnection, *, frame_ids: Sequence[int] | None = None,
                  group_id: int | None = None, video_id: int | None = None,
                  extraction_id: int | None = None, sample: int | None = None, seed: int = 0,
                  method: str = "random") -> list[int]:
    """Frame ids for a benchmark from exactly one source.

    ``frame_ids``: picked by hand (all must exist); ``group_id`` / ``video_id``: that sequence's
    labeling (non-context) frames; ``extraction_id``: the frames that extraction picked.
    ``sample``: keep a seeded sample of that many (``sample_frame_ids``).
    """
    given = [n for n, v in (("frames", frame_ids), ("group", group_id), ("video", video_id),
                            ("extraction", extraction_id)) if v is not None]
    if len(given) != 1:
        raise InvalidInput("choose the frames from exactly one of: frame ids, an image group, "
                           f"a video, an extraction (got {', '.join(given) or 'none'})")
    if frame_ids is not None:
        ids = list(dict.fromkeys(int(i) for i in frame_ids))
        if not ids:
            raise InvalidInput("choose at least one frame")
        found = {f.id for f in media.frames_by_ids(con, ids)}
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFound(f"no frame with id {', '.join(map(str, missing))}")
    elif extraction_id is not None:
        ids = media.extraction_frame_ids(con, extraction_id)
    else:
        if group_id is not None:
            media.get_group(con, group_id)
        else:
            media.get_video(con, video_id)
        ids = [f.id for f in media.frames_of(con, video_id=video_id, group_id=group_id,
                                             include_context=False)]
    if not ids:
        raise InvalidInput("the chosen source has no frames to label (extract frames first)")
    if sample is not None:
        ids = sample_frame_ids(ids, int(sample), seed=seed, method=method)
    return ids


# --- creating and assigning -------------------------------------------------------------------

def _check_users(con: duckdb.DuckDBPyConnection, names: Iterable[str]) -> list[str]:
    names = list(names)
    unknown = [n for n in names if users.get_by_name(con, n, missing_ok=True) is None]
    if unknown:
        raise NotFound(f"no user named {', '.join(map(repr, unknown))}")
    return names


def _resolve_labels(con: duckdb.DuckDBPyConnection, items: Iterable[str | int | Label]) -> list[Label]:
    out, unknown = [], []
    for item in items:
        if isinstance(item, Label):
            out.append(item)
        elif isinstance(item, int) or (isinstance(item, str) and item.isdigit()
                                       and labels.get_by_name(con, item, missing_ok=True) is None):
            try:
                out.append(labels.get(con, int(item)))
            except NotFound:
                unknown.append(str(item))
        else:
            found = labels.get_by_name(con, item, missing_ok=True)
            if found is None:
                unknown.append(repr(item))
            else:
                out.append(found)
    if unknown:
        raise NotFound(f"no label named {', '.join(unknown)}")
    return list({lb.id: lb for lb in out}.values())


def create_benchmark(con: duckdb.DuckDBPyConnection, *, name: str, gold: str, annotators: Sequence[str],
                     labels: Sequence[str | int | Label], frame_ids: Sequence[int],
                     iou_threshold: float = 0.5, created_by: str | None = None) -> Benchmark:
    """Create a benchmark and one todo task per (user, frame) for the gold user and each annotator.

    Users and labels must exist (labels by name or id), frames must exist; raises ``NotFound`` /
    ``InvalidInput`` naming what is wrong.  Runs in one transaction.
    """
    annotators = parse_names(annotators)
    if not gold or not str(gold).strip():
        raise InvalidInput("choose the gold annotator")
    if not annotators:
        raise InvalidInput("choose at least one annotator to evaluate")
    _check_users(con, [gold, *annotators])
    scope = _resolve_labels(con, labels)
    if not scope:
        raise InvalidInput("choose at least one label in scope")
    frame_ids = select_frames(con, frame_ids=frame_ids)
    if not 0.0 < float(iou_threshold) <= 1.0:
        raise InvalidInput(f"IoU threshold must be in (0, 1], got {iou_threshold}")
    con.execute("BEGIN TRANSACTION")
    try:
        bench = benchmarks.create(con, name=name, gold=gold, annotators=annotators,
                                  label_ids=[lb.id for lb in scope], frame_ids=frame_ids,
                                  iou_threshold=float(iou_threshold), created_by=created_by)
        audit.record(con, username=created_by, action="create", entity="benchmark", entity_id=bench.id,
                     details={"name": bench.name, "gold": gold, "annotators": annotators,
                              "labels": [lb.name for lb in scope], "frames": len(frame_ids)})
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return bench


def add_frames(con: duckdb.DuckDBPyConnection, benchmark_id: int, frame_ids: Sequence[int], *,
               by: str | None = None) -> int:
    """Add frames (todo tasks for the gold user and every annotator); returns new tasks."""
    bench = benchmarks.get(con, benchmark_id)
    ids = select_frames(con, frame_ids=frame_ids)
    count = benchmarks.add_tasks(con, bench.id, [bench.gold, *bench.annotators], ids)
    audit.record(con, username=by, action="add_frames", entity="benchmark", entity_id=bench.id,
                 details={"frames": ids, "tasks": count})
    return count


def assign(con: duckdb.DuckDBPyConnection, benchmark_id: int, annotators: Sequence[str], *,
           by: str | None = None) -> int:
    """Evaluate more annotators: todo tasks on every frame of the benchmark; returns new tasks."""
    bench = benchmarks.get(con, benchmark_id)
    names = parse_names(annotators)
    if not names:
        raise InvalidInput("name at least one annotator to assign")
    _check_users(con, names)
    if bench.gold in names:
        raise InvalidInput(f"{bench.gold} is the gold annotator and cannot also be evaluated")
    count = benchmarks.add_tasks(con, bench.id, names, list(bench.frame_ids))
    audit.record(con, username=by, action="assign", entity="benchmark", entity_id=bench.id,
                 details={"annotators": names, "tasks": count})
    return count


def set_status(con: duckdb.DuckDBPyConnection, benchmark_id: int, annotator: str,
               status: TaskStatus | str, *, frame_ids: Sequence[int] | None = None) -> int:
    """Set ``annotator``'s tasks (all, or those on ``frame_ids``) to ``status``; returns how many."""
    try:
        status = TaskStatus(status)
    except ValueError:
        raise InvalidInput(f"task status {status!r}: use todo, in_progress or complete") from None
    bench = benchmarks.get(con, benchmark_id)
    if annotator != bench.gold and annotator not in bench.annotators:
        raise NotFound(f"{annotator} has no tasks in benchmark {bench.id} ({bench.name})")
    return benchmarks.set_status(con, bench.id, annotator, status,
                                 frame_ids=None if frame_ids is None else list(frame_ids))


def complete(con: duckdb.DuckDBPyConnection, benchmark_id: int, annotator: str, *,
             frame_ids: Sequence[int] | None = None) -> int:
    """Mark ``annotator``'s tasks complete (as the user does from the annotation page)."""
    return set_status(con, benchmark_id, annotator, TaskStatus.COMPLETE, frame_ids=frame_ids)


def start(con: duckdb.DuckDBPyConnection, benchmark_id: int, annotator: str, frame_id: int) -> None:
    """A todo task becomes in_progress (call when the user starts drawing; complete stays)."""
    benchmarks.start_task(con, benchmark_id, annotator, frame_id)


def status_rows(con: duckdb.DuckDBPyConnection, benchmark_id: int) -> list[dict[str, Any]]:
    """Per user: role (gold / annotator), todo, in_progress, complete, total."""
    bench = benchmarks.get(con, benchmark_id)
    return [{"annotator": r["annotator"], "role": "gold" if r["annotator"] == bench.gold else "annotator",
             **{k: int(r[k]) for k in ("todo", "in_progress", "complete", "total")}}
            for r in benchmarks.status_table(con, bench.id)]


# --- the blind queue --------------------------------------------------------------------------

@dataclass(frozen=True)
class QueueTask:
    """One open task of a user: the frame to annotate with the benchmark's labels in scope.

    ``blind``: the user is evaluated on this frame (not the gold), so the annotation page must
    not show other users' masks / labels there."""

    benchmark_id: int
    benchmark: str
    frame_id: int
    status: TaskStatus
    data_unit_name: str
    path: str
    label_ids: tuple[int, ...]
    blind: bool


def tasks_for(con: duckdb.DuckDBPyConnection, annotator: str, *, benchmark_id: int | None = None,
              include_complete: bool = False) -> list[QueueTask]:
    """``annotator``'s open (todo / in_progress) tasks, by benchmark then sequence order."""
    rows = benchmarks.task_queue(con, annotator, benchmark_id=benchmark_id,
                                 include_complete=include_complete)
    frames = {f.id: f for f in media.frames_by_ids(con, sorted({r[2] for r in rows}))}
    names = data_unit_names(con, frames.values())
    return [QueueTask(benchmark_id=r[0], benchmark=r[1], frame_id=r[2], status=TaskStatus(r[3]),
                      data_unit_name=names[r[2]], path=frames[r[2]].path,
                      label_ids=tuple(int(v) for v in r[4]), blind=r[5] != annotator)
            for r in rows]


# --- evaluation inputs ------------------------------------------------------------------------

def data_unit_names(con: duckdb.DuckDBPyConnection, frames: Iterable[Frame]) -> dict[int, str]:
    """``{frame id: name}``: a still image's original file name, ``<video title>#<n>`` for a
    video frame (``<group title>#<n>`` for a group frame without a file name)."""
    out: dict[int, str] = {}
    videos: dict[int, str] = {}
    groups: dict[int, str] = {}
    for f in frames:
        if f.video_id is not None:
            if f.video_id not in videos:
                videos[f.video_id] = media.get_video(con, f.video_id).title
            out[f.id] = f"{videos[f.video_id]}#{f.frame_number}"
        elif f.original_name:
            out[f.id] = f.original_name
        else:
            if f.group_id not in groups:
                groups[f.group_id] = media.get_group(con, f.group_id).title
            out[f.id] = f"{groups[f.group_id]}#{f.frame_number}"
    return out


def bench_object(mask: Mask) -> BenchObject:
    """A stored mask row as a ``BenchObject`` (boxes by their ``bbox`` (x, y, w, h))."""
    if mask.kind == ShapeKind.BOX:
        return BenchObject(id=mask.id, label=mask.label, kind="box", box=tuple(mask.bbox))
    return BenchObject(id=mask.id, label=mask.label, kind=str(mask.kind), rle=mask.coco_rle)


@dataclass(frozen=True)
class EvaluationInputs:
    """What ``build_report`` gets: ``frames`` (gold + the annotators evaluated on each),
    ``sequences`` (frame labels / segments), ``scope`` ``{label name: label id}`` and
    ``evaluated`` ``{annotator: frame ids}`` (both tasks complete)."""

    frames: tuple[FrameInput, ...]
    sequences: tuple[SequenceInput, ...]
    scope: dict[str, int]
    evaluated: dict[str, tuple[int, ...]]
    labels: tuple[Label, ...]


def _complete_frames(con: duckdb.DuckDBPyConnection, bench: Benchmark) -> dict[str, set[int]]:
    done: dict[str, set[int]] = defaultdict(set)
    for t in benchmarks.tasks(con, benchmark_id=bench.id):
        if t.status == TaskStatus.COMPLETE:
            done[t.annotator].add(t.frame_id)
    return done


def evaluation_inputs(con: duckdb.DuckDBPyConnection, bench: Benchmark) -> EvaluationInputs:
    """Collect gold and annotator objects / frame labels / segments of the gated frames."""
    scope_labels = tuple(labels.get(con, i) for i in bench.label_ids)
    scope = {lb.name: lb.id for lb in scope_labels}
    done = _complete_frames(con, bench)
    gold_done = done.get(bench.gold, set())
    evaluated = {a: tuple(sorted(done.get(a, set()) & gold_done)) for a in bench.annotators}
    frame_ids = sorted({f for ids in evaluated.values() for f in ids})
    frames = {f.id: f for f in media.frames_by_ids(con, frame_ids)}
    names = data_unit_names(con, frames.values())
    people = {bench.gold, *bench.annotators}
    objects: dict[tuple[int, str], list[BenchObject]] = defaultdict(list)
    for m in annotations.masks_of(con, frame_ids=frame_ids) if frame_ids else []:
        if m.annotator in people:   # out-of-scope labels go in too: the report lists them as ignored
            objects[m.frame_id, m.annotator].append(bench_object(m))
    evaluated_sets = {a: set(ids) for a, ids in evaluated.items()}
    inputs = []
    for fid in frame_ids:
        who = [a for a in bench.annotators if fid in evaluated_sets[a]]
        inputs.append(FrameInput(frame_id=fid, data_unit_name=names[fid], task_id=fid,
                                 gold=tuple(objects.get((fid, bench.gold), ())),
                                 annotations={a: tuple(objects.get((fid, a), ())) for a in who}))
    sequences = (_frame_label_sequences(con, bench, scope_labels, evaluated, frames)
                 + _segment_sequences(con, bench, scope_labels, evaluated, frames))
    return EvaluationInputs(tuple(inputs), tuple(sequences), scope, evaluated, scope_labels)


def _sequence_key(frame: Frame) -> tuple[str, int]:
    return ("video", frame.video_id) if frame.video_id is not None else ("group", frame.group_id)


def _frame_label_sequences(con, bench: Benchmark, scope_labels: Sequence[Label],
                           evaluated: dict[str, tuple[int, ...]], frames: dict[int, Frame]
                           ) -> list[SequenceInput]:
    wanted = [lb for lb in scope_labels if "frame_label" in lb.allowed]
    frame_ids = sorted(frames)
    if not wanted or not frame_ids:
        return []
    values: dict[tuple[str, int, int], str] = {}
    for fl in annotations.frame_labels_where(
            con, "list_contains(?, f.frame_id) AND list_contains(?, f.label_id) AND f.source <> 'segment'",
            [frame_ids, [lb.id for lb in wanted]]):
        values[fl.annotator, fl.frame_id, fl.label_id] = str(fl.value)
    titles = {}
    out = []
    for annotator in bench.annotators:
        by_sequence: dict[tuple[str, int], list[Frame]] = defaultdict(list)
        for fid in evaluated[annotator]:
            by_sequence[_sequence_key(frames[fid])].append(frames[fid])
        for key in sorted(by_sequence):
            seq_frames = sorted(by_sequence[key], key=lambda f: (f.frame_number, f.id))
            if key not in titles:
                titles[key] = (media.get_video(con, key[1]).title if key[0] == "video"
                               else media.get_group(con, key[1]).title)
            for lb in wanted:
                gold = [values.get((bench.gold, f.id, lb.id)) for f in seq_frames]
                ann = [values.get((annotator, f.id, lb.id)) for f in seq_frames]
                if any(v is not None for v in gold + ann):
                    out.append(SequenceInput(annotator=annotator, label=lb.name, gold=gold, annotated=ann,
                                             kind="frame_label", data_unit_name=titles[key]))
    return out


def _segment_sequences(con, bench: Benchmark, scope_labels: Sequence[Label],
                       evaluated: dict[str, tuple[int, ...]], frames: dict[int, Frame]
                       ) -> list[SequenceInput]:
    wanted = [lb for lb in scope_labels if "segment" in lb.allowed]
    if not wanted:
        return []
    out = []
    cache: dict[int, tuple[Any, list]] = {}
    for annotator in bench.annotators:
        videos = sorted({frames[f].video_id for f in evaluated[annotator] if frames[f].video_id is not None})
        for vid in videos:
            if vid not in cache:
                cache[vid] = (media.get_video(con, vid), annotations.segments_of(con, video_id=vid))
            video, segs = cache[vid]
            for lb in wanted:
                mine = [(s.start_frame, s.end_frame + 1) for s in segs
                        if s.label_id == lb.id and s.annotator == annotator]
                gold = [(s.start_frame, s.end_frame + 1) for s in segs
                        if s.label_id == lb.id and s.annotator == bench.gold]
                if mine or gold:
                    n = int(video.frame_count)
                    out.append(SequenceInput(
                        annotator=annotator, label=lb.name, kind="segment", data_unit_name=video.title,
                        gold=segments_to_presence(gold, n_frames=n),
                        annotated=segments_to_presence(mine, n_frames=n)))
    return out


# --- the report -------------------------------------------------------------------------------

@dataclass(frozen=True)
class BenchmarkResult:
    """A benchmark's report with what the page / CLI show around it."""

    benchmark: Benchmark
    report: BenchmarkReport
    leaderboard: tuple[dict[str, Any], ...]
    status: tuple[dict[str, Any], ...]
    evaluated: dict[str, tuple[int, ...]]

    def files(self) -> dict[str, bytes]:
        """``{file name: bytes}``: ``iou_results.csv``, ``label_summary.csv`` and the JSON report."""
        return {IOU_RESULTS_CSV: self.report.csvs()[IOU_RESULTS_CSV],
                SUMMARY_CSV: summary_csv(self.report),
                REPORT_JSON: json.dumps(self.to_dict(), indent=2, allow_nan=False).encode("utf-8")}

    def to_dict(self) -> dict[str, Any]:
        return {"benchmark": to_dict(self.benchmark), "leaderboard": list(self.leaderboard),
                "status": list(self.status),
                "evaluated_frames": {a: list(v) for a, v in self.evaluated.items()},
                "report": self.report.to_dict()}


def build_benchmark_report(con: duckdb.DuckDBPyConnection, benchmark_id: int, *,
                           iou_threshold: float | None = None,
                           progress: Callable[[int, int], None] | None = None) -> BenchmarkResult:
    """Evaluate a benchmark now (``iou_threshold`` defaults to the benchmark's)."""
    bench = benchmarks.get(con, benchmark_id)
    inputs = evaluation_inputs(con, bench)
    threshold = bench.iou_threshold if iou_threshold is None else float(iou_threshold)
    report = build_report(inputs.frames, labels=inputs.scope, iou_threshold=threshold,
                          sequences=inputs.sequences, progress=progress)
    status = tuple(status_rows(con, bench.id))
    return BenchmarkResult(bench, report, tuple(leaderboard(report, status, bench.annotators)),
                           status, inputs.evaluated)


def leaderboard(report: BenchmarkReport, status: Sequence[dict[str, Any]],
                annotators: Sequence[str]) -> list[dict[str, Any]]:
    """One row per evaluated annotator (``LEADERBOARD_COLUMNS``), best F1 first; annotators with
    nothing evaluated yet come last with empty metrics."""
    by_name = {s.annotator: s for s in report.annotators}
    counts = {r["annotator"]: r for r in status}
    rows = []
    for a in annotators:
        s: Summary | None = by_name.get(a)
        c = counts.get(a, {})
        rows.append({
            "annotator": a, "tasks_done": c.get("complete", 0), "tasks_total": c.get("total", 0),
            "evaluated": s.frames if s else 0,
            "mean_iou": s.mean_iou if s else None, "class_score": s.class_score if s else None,
            "f1": s.f1 if s else None, "precision": s.precision if s else None,
            "recall": s.recall if s else None, "matched": s.matched if s else 0,
            "mismatched": s.mismatched if s else 0, "missing": s.missing if s else 0,
            "extra": s.extra if s else 0, "mean_dice": s.mean_matched_dice if s else None})
    rows.sort(key=lambda r: (r["evaluated"] == 0, -(r["f1"] or 0.0), -(r["mean_iou"] or 0.0), r["annotator"]))
    return rows


def summary_csv(report: BenchmarkReport) -> bytes:
    """Per-label summary: one row per annotator x label, then per label over all annotators
    ("(all)"); columns of ``records.Summary``."""
    return rows_to_csv([*report.annotator_labels, *report.label_summaries], row_type=Summary).encode("utf-8")


def iou_rows(report: BenchmarkReport) -> list[dict[str, Any]]:
    """The ``iou_results.csv`` rows as dicts (for plots)."""
    return [row_dict(r) for r in report.iou_rows]


def heatmap(report: BenchmarkReport, *, metric: str = "mean_iou"
            ) -> tuple[list[str], list[str], list[list[float | None]]]:
    """``(annotators, labels, z)`` with ``z[i][j]`` = ``metric`` of annotator i on label j
    (a ``Summary`` field; ``None`` where the annotator has no object of that label)."""
    names = [s.annotator for s in report.annotators]
    cells = {(s.annotator, s.label_name): getattr(s, metric) for s in report.annotator_labels}
    return names, list(report.labels), [[cells.get((a, lb)) for lb in report.labels] for a in names]


def worst_frames(report: BenchmarkReport, annotator: str, *, count: int = 3) -> list[FrameRow]:
    """The annotator's ``count`` lowest-scoring frames that are not perfect (score < 1)."""
    return [r for r in report.frames if r.annotator == annotator and r.score < 1.0][:count]


def frame_overlays(con: duckdb.DuckDBPyConnection, settings: Settings, bench: Benchmark, frame_id: int,
                   annotator: str) -> tuple[np.ndarray, np.ndarray]:
    """``(gold, annotator)`` RGB ``(H, W, 3) uint8`` images of the frame with that user's
    in-scope masks drawn in their label colours (boxes as filled rectangles)."""
    from endolite import masks as rle
    from endolite.media import read_image

    frame = media.get_frame(con, frame_id)
    rgb = read_image(settings.absolute(frame.path))
    scope = set(bench.label_ids)
    out = []
    for who in (bench.gold, annotator):
        items = [m for m in annotations.masks_of(con, frame_ids=[frame_id], annotator=who)
                 if m.label_id in scope]
        fits = [m for m in items if (m.height, m.width) == rgb.shape[:2]]
        out.append(rle.overlay(rgb, [m.coco_rle for m in fits], [m.color for m in fits]))
    return out[0], out[1]


def fingerprint(con: duckdb.DuckDBPyConnection, benchmark_id: int) -> str:
    """A hash of everything the report depends on (task statuses, live masks, frame labels,
    segments of the benchmark's frames): equal fingerprints give equal reports."""
    parts = benchmarks.report_inputs_snapshot(con, benchmark_id)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


# --- saved runs -------------------------------------------------------------------------------

def save_run(con: duckdb.DuckDBPyConnection, result: BenchmarkResult, *, created_by: str | None) -> int:
    """Store the leaderboard of ``result`` as a run of its benchmark; returns the run id."""
    run_id = benchmarks.add_run(con, result.benchmark.id, iou_threshold=result.report.iou_threshold,
                                summary=list(result.leaderboard), created_by=created_by)
    audit.record(con, username=created_by, action="save_run", entity="benchmark",
                 entity_id=result.benchmark.id, details={"run_id": run_id})
    return run_id


def runs_table(con: duckdb.DuckDBPyConnection, benchmark_id: int) -> list[dict[str, Any]]:
    """Saved runs in long form: one row per (run, annotator) with run id, time, who saved it,
    the threshold and the leaderboard metrics."""
    benchmarks.get(con, benchmark_id)
    out = []
    for run in benchmarks.runs(con, benchmark_id):
        for row in run["summary"]:
            out.append({"run": run["id"], "saved_at": run["created_at"], "saved_by": run["created_by"],
                        "iou_threshold": run["iou_threshold"],
                        **{k: row.get(k) for k in LEADERBOARD_COLUMNS}})
    return out
