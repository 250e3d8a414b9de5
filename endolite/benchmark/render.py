"""Render a ``BenchmarkReport`` as a JSON-able dict and as CSV files (csv module, UTF-8).

``iou_results.csv`` starts with Encord's columns ``annotator, data_unit_name, label_id,
iou_score, class_score`` and continues with ``frame_id, label_name, object_id, kind,
best_gold_object, matched_gold_object, matched_iou, dice, task_id``.  ``None`` is written as an
empty cell; floats with ``repr`` precision.
"""

from __future__ import annotations

import csv
import io
import math
import operator
from collections.abc import Iterable, Sequence
from dataclasses import fields
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from endolite.benchmark.records import BenchmarkReport

CSV_NAMES = ("iou_results.csv", "matches.csv", "frames.csv", "annotators.csv",
             "annotator_labels.csv", "labels.csv", "label_agreement.csv", "confusion.csv")


def _plain(value: Any) -> Any:
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def row_dict(row: Any) -> dict[str, Any]:
    """A frozen row dataclass as a dict of JSON-able values."""
    return {name: _plain(getattr(row, name)) for name in _field_names(type(row))}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def report_to_dict(report: BenchmarkReport) -> dict[str, Any]:
    """The whole report as plain dicts/lists/str/int/float/None (``json.dumps`` with
    ``allow_nan=False`` works on it)."""
    return {
        "iou_threshold": report.iou_threshold,
        "labels": [{"name": n, "id": _plain(report.label_ids[n])} for n in report.labels],
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


def _cell(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int:
        return value
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


def rows_to_csv(rows: Iterable[Any], *, columns: Sequence[str] | None = None, row_type: type | None = None) -> str:
    """CSV text (header + one line per row) of frozen row dataclasses.

    ``columns`` defaults to the dataclass fields of ``row_type`` (or of the first row); with no
    rows and no ``row_type``/``columns`` the result is empty.
    """
    rows = list(rows)
    if columns is None:
        source = row_type if row_type is not None else (type(rows[0]) if rows else None)
        if source is None:
            return ""
        columns = [f.name for f in fields(source)]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    getters = [operator.attrgetter(c) for c in columns]
    writer.writerows([_cell(get(row)) for get in getters] for row in rows)
    return buf.getvalue()


def confusion_csv(report: BenchmarkReport) -> str:
    """Long format: annotator ("(all)" for the total), gold_label, annotator_label, count."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["annotator", "gold_label", "annotator_label", "count"])
    items = [*report.confusion.items(), ("(all)", report.confusion_total)]
    for annotator, cm in items:
        for i, gold_label in enumerate(cm.labels):
            for j, ann_label in enumerate(cm.labels):
                writer.writerow([annotator, gold_label, ann_label, cm.counts[i][j]])
    return buf.getvalue()


def report_csvs(report: BenchmarkReport) -> dict[str, bytes]:
    """``{file name: UTF-8 CSV bytes}`` for the names in ``CSV_NAMES``."""
    from endolite.benchmark.records import AgreementRow, FrameRow, IouRow, MatchRow, Summary

    texts = {
        "iou_results.csv": rows_to_csv(report.iou_rows, row_type=IouRow),
        "matches.csv": rows_to_csv(report.matches, row_type=MatchRow),
        "frames.csv": rows_to_csv(report.frames, row_type=FrameRow),
        "annotators.csv": rows_to_csv([*report.annotators, report.overall], row_type=Summary),
        "annotator_labels.csv": rows_to_csv(report.annotator_labels, row_type=Summary),
        "labels.csv": rows_to_csv(report.label_summaries, row_type=Summary),
        "label_agreement.csv": rows_to_csv(report.agreement, row_type=AgreementRow),
        "confusion.csv": confusion_csv(report),
    }
    return {name: text.encode("utf-8") for name, text in texts.items()}
