"""The lx-annotate frame-annotation table: one row per frame label of the chosen videos.

``table_rows`` reads (never writes) frame labels joined with their frames, videos and labels;
``to_csv`` and ``to_json`` turn the rows into bytes.  The columns are ``COLUMNS``, in order.

Decisions (lx-annotate's ``value`` is a boolean that is never empty):

* ``value``: present -> True, absent -> False.  Rows whose value is *unknown* are left out
  (they say nothing either way, and an empty value would break lx-annotate's import).
* Frame-label rows without a frame row (``frame_id`` NULL: written by the segment
  materialisation of databases before schema 8) are left out: the table names a frame file for
  every row.
* Segments are ``[start_frame, end_frame)`` (end exclusive, as lx-annotate's): the export-flag
  and segment-list filters keep annotations with ``start_frame <= frame_number < end_frame``.
* ``information_source_id`` is a stable small int per source name (``SOURCE_IDS``):
  manual 1, segment 2, model 3, import 4; any other source name gets None.
* ``model_meta_id`` is None: endolite keeps no model-meta table yet, so even model rows have
  none (the column keeps lx-annotate's shape).
* ``frame_relative_path`` is the frame file's name only (the file lives at
  ``frames/video_<video_id>/<name>``); with ``frame_id_paths`` it is ``frame_<frame_id>.jpg``.
* ``date_created`` / ``date_modified``: ISO 8601 with a ``+00:00`` offset (the database
  stores naive UTC).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any

import duckdb

from endolite.errors import InvalidInput
from endolite.storage.rows import fetch_dicts

COLUMNS: tuple[str, ...] = (
    "annotation_id", "video_id", "video_hash", "frame_id", "frame_number", "frame_relative_path",
    "frame_timestamp", "label_id", "label_name", "value", "float_value", "annotator",
    "information_source_id", "information_source_name", "model_meta_id", "date_created",
    "date_modified",
)

SOURCE_IDS: dict[str, int] = {"manual": 1, "segment": 2, "model": 3, "import": 4}

_ONLY_VALUES = {"all": ("present", "absent"), "true": ("present",), "false": ("absent",)}

_SELECT = """
    SELECT fl.id AS annotation_id, fr.video_id, v.sha256 AS video_hash, fr.id AS frame_id,
           fr.frame_number, fr.path AS frame_path, fr.timestamp AS frame_timestamp,
           fl.label_id, l.name AS label_name, fl.value, fl.float_value, fl.annotator,
           fl.source, fl.created_at, fl.updated_at
    FROM frame_labels fl
    JOIN frames fr ON fr.id = fl.frame_id
    JOIN videos v ON v.id = fr.video_id
    JOIN labels l ON l.id = fl.label_id
    WHERE list_contains(?, fr.video_id) AND list_contains(?, fl.value)
"""

# An annotation lies inside a live segment of the same video and label; callers add a condition.
_IN_SEGMENT = """
    AND EXISTS (SELECT 1 FROM segments s
                WHERE s.video_id = fr.video_id AND s.label_id = fl.label_id
                  AND s.deleted_at IS NULL
                  AND fr.frame_number >= s.start_frame AND fr.frame_number < s.end_frame
                  AND {condition})
"""

_ORDER = " ORDER BY fr.video_id, fr.frame_number, fl.label_id, fl.id"


def table_rows(con: duckdb.DuckDBPyConnection, *, video_ids: Sequence[int], only: str = "all",
               use_export_flags: bool = False, segment_ids: Sequence[int] | None = None,
               frame_id_paths: bool = False) -> list[dict[str, Any]]:
    """The table's rows (dicts with the keys of ``COLUMNS``) for the frame labels of ``video_ids``.

    ``only``: ``"all"`` (present and absent), ``"true"`` (present) or ``"false"`` (absent);
    unknown rows and rows without a frame are never included (see the module docstring).
    ``use_export_flags``: only annotations inside a live segment marked for export
    (``for_export``) with the same label.  ``segment_ids``: only annotations inside one of
    these live (not deleted) segments, also with the segment's label; with both, both hold.
    ``frame_id_paths``: ``frame_relative_path`` is ``frame_<frame_id>.jpg`` instead of the
    stored file's name.  Rows are sorted by video, frame number, label id, annotation id.
    Raises InvalidInput for an unknown ``only``.
    """
    if only not in _ONLY_VALUES:
        raise InvalidInput(f"only: {only!r} is not one of {', '.join(_ONLY_VALUES)}")
    sql = _SELECT
    params: list[Any] = [[int(v) for v in video_ids], list(_ONLY_VALUES[only])]
    if use_export_flags:
        sql += _IN_SEGMENT.format(condition="s.for_export")
    if segment_ids is not None:
        sql += _IN_SEGMENT.format(condition="list_contains(?, s.id)")
        params.append([int(s) for s in segment_ids])
    return [_row(r, frame_id_paths) for r in fetch_dicts(con, sql + _ORDER, params)]


def _iso_utc(value: datetime | None) -> str | None:
    """A naive UTC timestamp as ISO 8601 with a ``+00:00`` offset."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc).isoformat()


def _row(r: dict[str, Any], frame_id_paths: bool) -> dict[str, Any]:
    frame_id = int(r["frame_id"])
    name = f"frame_{frame_id}.jpg" if frame_id_paths else PurePosixPath(r["frame_path"]).name
    timestamp = r["frame_timestamp"]
    float_value = r["float_value"]
    source = r["source"]
    return {
        "annotation_id": int(r["annotation_id"]),
        "video_id": int(r["video_id"]),
        "video_hash": r["video_hash"],
        "frame_id": frame_id,
        "frame_number": int(r["frame_number"]),
        "frame_relative_path": name,
        "frame_timestamp": float(timestamp) if timestamp is not None else None,
        "label_id": int(r["label_id"]),
        "label_name": r["label_name"],
        "value": r["value"] == "present",
        "float_value": float(float_value) if float_value is not None else None,
        "annotator": r["annotator"],
        "information_source_id": SOURCE_IDS.get(source),
        "information_source_name": source,
        "model_meta_id": None,
        "date_created": _iso_utc(r["created_at"]),
        "date_modified": _iso_utc(r["updated_at"]),
    }


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    return value


def to_csv(rows: Sequence[dict[str, Any]]) -> bytes:
    """UTF-8 CSV (excel dialect) with a header of ``COLUMNS``; booleans as True / False and
    None as an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, dialect="excel")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in COLUMNS])
    return out.getvalue().encode("utf-8")


def to_json(rows: Sequence[dict[str, Any]]) -> bytes:
    """UTF-8 JSON: an array of flat objects with the keys of ``COLUMNS`` in order (``value`` a
    JSON bool, None as null)."""
    return json.dumps([{c: row[c] for c in COLUMNS} for row in rows], ensure_ascii=False,
                      indent=None).encode("utf-8")
