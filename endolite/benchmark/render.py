"""Render frozen row dataclasses as JSON-able dicts and as CSV text (csv module, UTF-8).

``None`` is written as an empty cell; floats with ``repr`` precision.  Generic: nothing here
knows the benchmark's record types.  ``records`` builds the report's JSON dict and CSV files
(``BenchmarkReport.to_dict`` / ``csvs``) from these helpers, so the import arrow points one way,
records -> render.
"""

from __future__ import annotations

import csv
import io
import math
import operator
from collections.abc import Iterable, Sequence
from dataclasses import fields
from enum import Enum
from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """``value`` as JSON-able plain data (str / int / bool / finite float / None, lists, dicts
    with str keys); enums by value, numpy scalars as Python ones, NaN / inf as None."""
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
        return plain(value.item())
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)


def row_dict(row: Any) -> dict[str, Any]:
    """A frozen row dataclass as a dict of JSON-able values."""
    return {name: plain(getattr(row, name)) for name in _field_names(type(row))}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def _cell(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int:
        return value
    value = plain(value)
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


def confusion_csv(matrices: Iterable[tuple[str, Any]]) -> str:
    """Long format of ``(name, matrix)`` pairs (``metrics.ConfusionMatrix``: ``labels``, ``counts``
    with rows gold, columns annotator): annotator, gold_label, annotator_label, count."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["annotator", "gold_label", "annotator_label", "count"])
    for annotator, cm in matrices:
        for i, gold_label in enumerate(cm.labels):
            for j, ann_label in enumerate(cm.labels):
                writer.writerow([annotator, gold_label, ann_label, cm.counts[i][j]])
    return buf.getvalue()
