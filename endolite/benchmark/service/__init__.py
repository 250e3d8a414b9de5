"""Benchmark service: the workflow around the pure evaluation core, against the database.

A lead creates a benchmark (name, frames, labels in scope, the gold annotator, the annotators
to evaluate); every user gets one task per frame (status todo / in_progress / complete).  The
report evaluates, for each annotator, only the frames on which both the gold annotator's and
that annotator's tasks are complete.  Pages and the CLI call these functions; nothing here
prints.

Modules (every name is re-exported here: ``from endolite.benchmark import service``):

- ``frames``: parsing id lists, choosing a benchmark's frames (seeded samples), and naming
  them (``data_unit_names``);
- ``tasks``: creating benchmarks, assigning annotators, task status, the blind queue;
- ``inputs``: gold and annotator objects / frame labels / segments of the gated frames
  -> ``FrameInput`` / ``SequenceInput``;
- ``results``: running the report (``build_benchmark_report``), the leaderboard, files,
  plots, overlays, the fingerprint and saved runs.
"""

from endolite.benchmark.render import row_dict, rows_to_csv
from endolite.benchmark.service.frames import (
    SAMPLE_METHODS,
    data_unit_names,
    list_extractions,
    parse_ids,
    sample_frame_ids,
    select_frames,
)
from endolite.benchmark.service.inputs import EvaluationInputs, bench_object, evaluation_inputs
from endolite.benchmark.service.results import (
    IOU_RESULTS_CSV,
    LEADERBOARD_COLUMNS,
    REPORT_JSON,
    SUMMARY_CSV,
    BenchmarkResult,
    build_benchmark_report,
    fingerprint,
    frame_overlays,
    heatmap,
    iou_rows,
    leaderboard,
    runs_table,
    save_run,
    summary_csv,
    worst_frames,
)
from endolite.benchmark.service.tasks import (
    QueueTask,
    add_frames,
    assign,
    complete,
    create_benchmark,
    parse_names,
    set_status,
    start,
    status_rows,
    tasks_for,
)

__all__ = [
    "IOU_RESULTS_CSV", "LEADERBOARD_COLUMNS", "REPORT_JSON", "SAMPLE_METHODS", "SUMMARY_CSV",
    "BenchmarkResult", "EvaluationInputs", "QueueTask", "add_frames", "assign", "bench_object",
    "build_benchmark_report", "complete", "create_benchmark", "data_unit_names",
    "evaluation_inputs", "fingerprint", "frame_overlays", "heatmap", "iou_rows", "leaderboard",
    "list_extractions", "parse_ids", "parse_names", "row_dict", "rows_to_csv", "runs_table",
    "sample_frame_ids", "save_run", "select_frames", "set_status", "start", "status_rows",
    "summary_csv", "tasks_for", "worst_frames",
]
