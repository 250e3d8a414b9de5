"""Running a benchmark's report and shaping it for the page and the CLI: the leaderboard, the
files (``iou_results.csv``, ``label_summary.csv``, the JSON report), plots, overlays, the
inputs' fingerprint, and saved runs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np

from endolite.benchmark.records import BenchmarkReport, FrameRow, Summary
from endolite.benchmark.render import row_dict, rows_to_csv
from endolite.benchmark.report import build_report
from endolite.benchmark.service.inputs import evaluation_inputs
from endolite.benchmark.service.tasks import status_rows
from endolite.config import Settings
from endolite.records import Benchmark, to_dict
from endolite.storage import annotations, benchmarks, media

IOU_RESULTS_CSV = "iou_results.csv"
SUMMARY_CSV = "label_summary.csv"
REPORT_JSON = "benchmark_report.json"
LEADERBOARD_COLUMNS = ("annotator", "tasks_done", "tasks_total", "evaluated", "mean_iou",
                       "class_score", "f1", "precision", "recall", "matched", "mismatched",
                       "missing", "extra", "mean_dice")


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
