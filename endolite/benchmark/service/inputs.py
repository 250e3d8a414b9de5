"""What the report evaluates, read from storage: for each annotator only the frames on which
both the gold annotator's and that annotator's tasks are complete.

- objects: the live masks / boxes / polygons (``records.Mask`` rows, COCO RLE) of the gold user
  and of the annotator on the frame whose label is in scope.  ``kind`` "box" is compared as the
  stored ``bbox`` ``(x, y, w, h)``; masks and polygons as their RLE (see ``matching``);
- frame labels: per label, the gold user's vs the annotator's ``frame_labels`` rows on those
  frames, one ``SequenceInput`` per video / image group (no row = unknown, so not compared;
  rows made from segments are left to the segment comparison);
- time segments: per label, gold vs annotator segments over every frame of each video that
  has an evaluated frame (``segments_to_presence``; segment ends are exclusive, as stored).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from endolite.benchmark.matching import BenchObject
from endolite.benchmark.metrics import segments_to_presence
from endolite.benchmark.records import FrameInput, SequenceInput
from endolite.benchmark.service.frames import data_unit_names
from endolite.records import Benchmark, Frame, Label, Mask, ShapeKind, TaskStatus
from endolite.storage import annotations, benchmarks, labels, media


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
                mine = [(s.start_frame, s.end_frame) for s in segs
                        if s.label_id == lb.id and s.annotator == annotator]
                gold = [(s.start_frame, s.end_frame) for s in segs
                        if s.label_id == lb.id and s.annotator == bench.gold]
                if mine or gold:
                    n = int(video.frame_count)
                    out.append(SequenceInput(
                        annotator=annotator, label=lb.name, kind="segment", data_unit_name=video.title,
                        gold=segments_to_presence(gold, n_frames=n),
                        annotated=segments_to_presence(mine, n_frames=n)))
    return out
