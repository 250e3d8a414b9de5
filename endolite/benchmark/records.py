"""Inputs and frozen result records of the benchmark (shapes and policies: see ``report``).

Objects are ``matching.BenchObject``; ids (``object_id``, ``gold_object``, ``task_id``,
``label_id``) are the caller's values, passed through untouched.  Undefined means are ``None``.

The report as a JSON-able dict (``report_to_dict``) and as CSV files (``report_csvs``, the
names in ``CSV_NAMES``), built with the generic helpers of ``render``.  ``iou_results.csv``
starts with Encord's columns ``annotator, data_unit_name, label_id, iou_score, class_score`` and
continues with ``frame_id, label_name, object_id, kind, best_gold_object, matched_gold_object,
matched_iou, dice, task_id`` (the fields of ``IouRow``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from endolite.benchmark.matching import BenchObject
from endolite.benchmark.metrics import ConfusionMatrix
from endolite.benchmark.render import confusion_csv, plain, row_dict, rows_to_csv

ALL = "(all)"
CSV_NAMES = ("iou_results.csv", "matches.csv", "frames.csv", "annotators.csv",
             "annotator_labels.csv", "labels.csv", "label_agreement.csv", "confusion.csv")


@dataclass(frozen=True)
class FrameInput:
    """One frame to evaluate.  ``annotations`` maps annotator name -> that annotator's objects.
    ``task_id`` groups frames into tasks (default: ``data_unit_name``)."""

    frame_id: int
    data_unit_name: str
    gold: Sequence[BenchObject]
    annotations: Mapping[str, Sequence[BenchObject]]
    task_id: int | str | None = None


@dataclass(frozen=True)
class SequenceInput:
    """One label's present/absent/unknown values per frame, gold vs one annotator.
    ``kind`` is "frame_label" or "segment" (segments converted with ``segments_to_presence``)."""

    annotator: str
    label: str
    gold: Sequence[Any]
    annotated: Sequence[Any]
    kind: str = "frame_label"
    data_unit_name: str = ""


@dataclass(frozen=True, slots=True)
class IouRow:
    """One annotator object, Encord style: best IoU against any gold object (``iou_score``),
    ``class_score`` 1 when that gold object has the same label; ``dice`` is the Dice of the same
    best pair.  ``matched_gold_object`` / ``matched_iou`` come from the one-to-one matching
    (label-mismatched pairs included; ``None`` when the object is extra)."""

    annotator: str
    data_unit_name: str
    label_id: Any
    iou_score: float
    class_score: int
    frame_id: int
    label_name: str
    object_id: Any
    kind: str
    best_gold_object: Any
    matched_gold_object: Any
    matched_iou: float | None
    dice: float
    task_id: Any


@dataclass(frozen=True, slots=True)
class MatchRow:
    """One matching decision: status "match" / "mismatch" (pair, IoU and Dice set),
    "missing" (gold object only) or "extra" (annotator object only)."""

    annotator: str
    frame_id: int
    data_unit_name: str
    status: str
    annotator_object: Any
    annotator_label: str | None
    gold_object: Any
    gold_label: str | None
    iou: float | None
    dice: float | None


@dataclass(frozen=True, slots=True)
class FrameRow:
    """One annotator on one frame (a "worst frames" gallery row; the report sorts them by
    ``score``, lowest first).  ``score`` = summed IoU of same-label matched pairs / (matched +
    mismatched + missing + extra), 1.0 when ``both_empty``.  The objects behind the counts are
    the report's ``matches`` rows with the same (annotator, frame_id, data_unit_name)."""

    annotator: str
    frame_id: int
    data_unit_name: str
    task_id: Any
    n_gold: int
    n_annotator: int
    matched: int
    mismatched: int
    missing: int
    extra: int
    precision: float
    recall: float
    f1: float
    mean_iou: float | None      # over same-label matched pairs
    score: float
    both_empty: bool


@dataclass(frozen=True, slots=True)
class FrameEvaluation:
    """One annotator on one frame."""

    frame: FrameRow
    objects: tuple[IouRow, ...]
    matches: tuple[MatchRow, ...]


@dataclass(frozen=True, slots=True)
class FrameResult:
    evaluations: tuple[FrameEvaluation, ...]
    ignored_labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts and metrics of one group: an annotator (``label_name`` None), an annotator x
    label, or a label over all annotators (``annotator`` "(all)").

    ``mean_iou`` / ``class_score``: Encord means over the group's annotator objects;
    ``mean_matched_iou`` / ``mean_matched_dice``: over same-label matched pairs; ``None`` when
    there is nothing to average.  ``frames`` / ``tasks`` / ``empty_frames`` / ``mean_frame_score``
    are filled for annotator-level groups (``None`` for label groups); for the overall group they
    count annotator x frame (annotator x task) evaluations.
    """

    annotator: str
    label_name: str | None
    label_id: Any
    tasks: int | None
    frames: int | None
    empty_frames: int | None
    n_gold: int
    n_annotator: int
    matched: int
    mismatched: int
    missing: int
    extra: int
    precision: float
    recall: float
    f1: float
    mean_iou: float | None
    class_score: float | None
    mean_matched_iou: float | None
    mean_matched_dice: float | None
    mean_frame_score: float | None


@dataclass(frozen=True, slots=True)
class AgreementRow:
    """Frame-label / time-segment agreement of one annotator on one label, pooled over
    ``sequences`` (the 2x2 counts are added); metrics as in ``metrics.Agreement``."""

    annotator: str
    label_name: str
    label_id: Any
    kind: str
    sequences: int
    n: int
    n_excluded: int
    tp: int
    fp: int
    fn: int
    tn: int
    accuracy: float | None
    f1: float | None
    kappa: float | None


@dataclass(frozen=True)
class BenchmarkReport:
    """The whole benchmark.  ``frames`` is sorted worst first (score, annotator, frame_id);
    ``confusion`` maps annotator -> matrix (rows gold, columns annotator, "unmatched" last)."""

    iou_threshold: float
    labels: tuple[str, ...]
    label_ids: Mapping[str, Any]
    ignored_labels: tuple[str, ...]
    overall: Summary
    annotators: tuple[Summary, ...]
    annotator_labels: tuple[Summary, ...]
    label_summaries: tuple[Summary, ...]
    frames: tuple[FrameRow, ...]
    iou_rows: tuple[IouRow, ...]
    matches: tuple[MatchRow, ...]
    confusion: Mapping[str, ConfusionMatrix]
    confusion_total: ConfusionMatrix
    agreement: tuple[AgreementRow, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return report_to_dict(self)

    def csvs(self) -> dict[str, bytes]:
        return report_csvs(self)


def report_to_dict(report: BenchmarkReport) -> dict[str, Any]:
    """The whole report as plain dicts/lists/str/int/float/None (``json.dumps`` with
    ``allow_nan=False`` works on it)."""
    return {
        "iou_threshold": report.iou_threshold,
        "labels": [{"name": n, "id": plain(report.label_ids[n])} for n in report.labels],
        "ignored_labels": list(report.ignored_labels),
        "overall": row_dict(report.overall),
        "annotators": [row_dict(r) for r in report.annotators],
        "annotator_labels": [row_dict(r) for r in report.annotator_labels],
        "label_summaries": [row_dict(r) for r in report.label_summaries],
        "frames": [row_dict(r) for r in report.frames],
        "iou_rows": [row_dict(r) for r in report.iou_rows],
        "matches": [row_dict(r) for r in report.matches],
        "confusion": {a: cm.to_dict() for a, cm in report.confusion.items()},
        "confusion_total": report.confusion_total.to_dict(),
        "agreement": [row_dict(r) for r in report.agreement],
    }


def report_csvs(report: BenchmarkReport) -> dict[str, bytes]:
    """``{file name: UTF-8 CSV bytes}`` for the names in ``CSV_NAMES``; ``confusion.csv`` in
    long format, the total under annotator "(all)"."""
    texts = {
        "iou_results.csv": rows_to_csv(report.iou_rows, row_type=IouRow),
        "matches.csv": rows_to_csv(report.matches, row_type=MatchRow),
        "frames.csv": rows_to_csv(report.frames, row_type=FrameRow),
        "annotators.csv": rows_to_csv([*report.annotators, report.overall], row_type=Summary),
        "annotator_labels.csv": rows_to_csv(report.annotator_labels, row_type=Summary),
        "labels.csv": rows_to_csv(report.label_summaries, row_type=Summary),
        "label_agreement.csv": rows_to_csv(report.agreement, row_type=AgreementRow),
        "confusion.csv": confusion_csv([*report.confusion.items(), (ALL, report.confusion_total)]),
    }
    return {name: text.encode("utf-8") for name, text in texts.items()}
