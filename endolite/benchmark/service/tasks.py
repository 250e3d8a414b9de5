"""Creating benchmarks, assigning annotators, task status and the annotators' blind queue.

Every user in a benchmark (the gold annotator and each annotator evaluated) has one task per
frame, with status todo / in_progress / complete.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from endolite.benchmark.service.frames import data_unit_names, select_frames
from endolite.errors import InvalidInput, NotFound
from endolite.records import Benchmark, Label, TaskStatus
from endolite.storage import benchmarks, labels, media, users


def parse_names(text: str | Iterable[str] | None) -> list[str]:
    """``"ann, bob"`` -> ``["ann", "bob"]`` (order kept, duplicates dropped)."""
    if text is None:
        return []
    parts = text.split(",") if isinstance(text, str) else list(text)
    return list(dict.fromkeys(p.strip() for p in parts if p and p.strip()))


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
