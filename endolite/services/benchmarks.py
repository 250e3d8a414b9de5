"""Benchmark actions: leads create, extend, run and save reports; every user starts and
completes only their own tasks.  The work is done by ``endolite.benchmark.service``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from endolite.benchmark import service as core
from endolite.services.access import Action, Ctx


def create(ctx: Ctx, *, name: str, gold: str, annotators: Sequence[str], labels: Sequence[Any],
           frame_ids: Sequence[int], iou_threshold: float = 0.5):
    ctx.check(Action.BENCHMARK_CREATE)
    bench = core.create_benchmark(ctx.con, name=name, gold=gold, annotators=annotators, labels=labels,
                                  frame_ids=frame_ids, iou_threshold=iou_threshold,
                                  created_by=ctx.actor.name)
    ctx.record(Action.BENCHMARK_CREATE, entity="benchmark", entity_id=bench.id, name=bench.name,
               gold=bench.gold, annotators=list(bench.annotators), labels=list(bench.label_ids),
               frames=len(bench.frame_ids))
    return bench


def add_frames(ctx: Ctx, benchmark_id: int, frame_ids: Sequence[int]) -> int:
    ctx.check(Action.BENCHMARK_ASSIGN)
    n = core.add_frames(ctx.con, benchmark_id, frame_ids, by=ctx.actor.name)
    ctx.record(Action.BENCHMARK_ASSIGN, entity="benchmark", entity_id=benchmark_id,
               frames=[int(i) for i in frame_ids], tasks=n)
    return n


def assign(ctx: Ctx, benchmark_id: int, annotators: Sequence[str]) -> int:
    ctx.check(Action.BENCHMARK_ASSIGN)
    n = core.assign(ctx.con, benchmark_id, annotators, by=ctx.actor.name)
    ctx.record(Action.BENCHMARK_ASSIGN, entity="benchmark", entity_id=benchmark_id,
               annotators=list(annotators), tasks=n)
    return n


def start_task(ctx: Ctx, benchmark_id: int, frame_id: int, *, annotator: str | None = None) -> None:
    """A todo task becomes in_progress (when its user starts drawing on the frame)."""
    who = annotator or ctx.actor.name
    ctx.check(Action.BENCHMARK_TASK, owners=[who])
    before = {t.frame_id: t.status for t in core.tasks_for(ctx.con, who, benchmark_id=benchmark_id)}
    core.start(ctx.con, benchmark_id, who, frame_id)
    if str(before.get(frame_id)) == "todo":
        ctx.record(Action.BENCHMARK_TASK, entity="benchmark", entity_id=benchmark_id, annotator=who,
                   frame_id=frame_id, status="in_progress")


def complete(ctx: Ctx, benchmark_id: int, *, annotator: str | None = None,
             frame_ids: Sequence[int] | None = None) -> int:
    who = annotator or ctx.actor.name
    ctx.check(Action.BENCHMARK_TASK, owners=[who])
    n = core.complete(ctx.con, benchmark_id, who, frame_ids=frame_ids)
    ctx.record(Action.BENCHMARK_TASK, entity="benchmark", entity_id=benchmark_id, annotator=who,
               frame_ids=None if frame_ids is None else [int(i) for i in frame_ids],
               status="complete", tasks=n)
    return n


def report(ctx: Ctx, benchmark_id: int, *, iou_threshold: float | None = None, progress=None):
    """Evaluate now (leads): the report names every annotator's agreement with the gold."""
    ctx.check(Action.BENCHMARK_REPORT)
    return core.build_benchmark_report(ctx.con, benchmark_id, iou_threshold=iou_threshold,
                                       progress=progress)


def save_run(ctx: Ctx, result) -> int:
    ctx.check(Action.BENCHMARK_REPORT)
    run_id = core.save_run(ctx.con, result, created_by=ctx.actor.name)
    ctx.record(Action.BENCHMARK_REPORT, entity="benchmark", entity_id=result.benchmark.id,
               run_id=run_id, iou_threshold=result.report.iou_threshold)
    return run_id
