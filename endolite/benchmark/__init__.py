"""Annotator benchmarking: gold vs annotator objects, matching, metrics, report.

Pure evaluation core (no database, no pages).  Modules:

- ``matching``: ``BenchObject`` (mask / box / polygon-as-RLE), ``iou_matrix`` on RLE with
  pycocotools, CVAT-style ``match_objects`` (labels first, then leftovers as label mismatches),
  Encord-style ``best_gold`` scores.
- ``metrics``: P/R/F1 from counts, Dice, frame-label agreement (accuracy, F1, Cohen's kappa),
  confusion matrices with an "unmatched" row and column.
- ``records``: ``FrameInput`` / ``SequenceInput``, the frozen rows of the report, and the report
  as a JSON-able dict and as CSV files (``iou_results.csv`` etc.).
- ``report``: ``evaluate_frame`` and ``build_report`` -> frozen ``BenchmarkReport``.
- ``render``: generic helpers turning frozen rows into JSON-able dicts and CSV text (no record
  types: ``records`` imports ``render``, never the other way).
- ``service`` (a package, not imported here: it needs the database): benchmarks and their
  tasks in storage -> ``FrameInput`` / ``SequenceInput`` -> ``build_report``; frame selection
  with seeded samples, completion gating, the annotators' blind queue (``tasks_for``), saved
  runs.  ``from endolite.benchmark import service``.

See each module's docstring for shapes, the (x, y, w, h) box order and the empty-mask /
empty-frame policies.
"""

from endolite.benchmark.matching import (
    BenchObject,
    Matching,
    ObjectKind,
    best_gold,
    boxes_of,
    check_frame_size,
    iou_matrix,
    match_objects,
)
from endolite.benchmark.metrics import (
    UNMATCHED,
    Agreement,
    ConfusionMatrix,
    agreement_from_counts,
    binary_agreement,
    confusion_matrix,
    dice_from_iou,
    presence,
    prf,
    segments_to_presence,
)
from endolite.benchmark.records import (
    CSV_NAMES,
    AgreementRow,
    BenchmarkReport,
    FrameEvaluation,
    FrameInput,
    FrameResult,
    FrameRow,
    IouRow,
    MatchRow,
    SequenceInput,
    Summary,
    report_csvs,
    report_to_dict,
)
from endolite.benchmark.render import rows_to_csv
from endolite.benchmark.report import build_report, evaluate_frame

__all__ = [
    "CSV_NAMES", "UNMATCHED", "Agreement", "AgreementRow", "BenchObject", "BenchmarkReport",
    "ConfusionMatrix", "FrameEvaluation", "FrameInput", "FrameResult", "FrameRow", "IouRow",
    "MatchRow", "Matching", "ObjectKind", "SequenceInput", "Summary", "agreement_from_counts",
    "best_gold", "binary_agreement", "boxes_of", "build_report", "check_frame_size",
    "confusion_matrix", "dice_from_iou", "evaluate_frame", "iou_matrix", "match_objects",
    "presence", "prf", "report_csvs", "report_to_dict", "rows_to_csv", "segments_to_presence",
]
