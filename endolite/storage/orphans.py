"""Rows of time segments whose references point nowhere (read by ``endolite check``).

There are no FOREIGN KEY constraints (docs/ARCHITECTURE.md), so nothing in the database stops
a row from naming a video, label, frame or segment that does not exist; no API deletes those
rows, but hand-written SQL, a partial restore or an older schema can leave such references.
Two kinds of row are looked at:

* ``segments``: ``video_id`` / ``label_id`` NULL or naming no row.  Live and soft-deleted rows
  alike (an undo can bring a deleted one back).
* ``frame_labels`` rows materialised from a segment (``source = 'segment'`` or ``segment_id``
  set): ``frame_id`` NULL (materialising before schema version 8 wrote a row per frame
  *number*, with a NULL frame for frames not extracted), or ``frame_id`` / ``video_id`` /
  ``segment_id`` naming no row.  Exports and training join on ``frame_id``, so these rows are
  never used.

Each function returns plain dicts ordered by id; the boolean keys say which reference is
broken (a NULL reference counts as broken).
"""

from __future__ import annotations

from typing import Any

import duckdb

from endolite.storage.rows import fetch_dicts

_ORPHAN_SEGMENTS = """
    SELECT s.id, s.video_id, s.label_id, s.deleted_at IS NOT NULL AS deleted,
           v.id IS NULL AS video_gone, l.id IS NULL AS label_gone
    FROM segments s
         LEFT JOIN videos v ON v.id = s.video_id
         LEFT JOIN labels l ON l.id = s.label_id
    WHERE v.id IS NULL OR l.id IS NULL
    ORDER BY s.id
"""

_ORPHAN_SEGMENT_FRAME_LABELS = """
    SELECT fl.id, fl.frame_id, fl.video_id, fl.frame_number, fl.segment_id, fl.label_id,
           fl.frame_id IS NULL AS frame_null,
           fl.frame_id IS NOT NULL AND fr.id IS NULL AS frame_gone,
           fl.video_id IS NOT NULL AND v.id IS NULL AS video_gone,
           fl.segment_id IS NOT NULL AND s.id IS NULL AS segment_gone
    FROM frame_labels fl
         LEFT JOIN frames fr ON fr.id = fl.frame_id
         LEFT JOIN videos v ON v.id = fl.video_id
         LEFT JOIN segments s ON s.id = fl.segment_id
    WHERE (fl.source = ? OR fl.segment_id IS NOT NULL)
      AND (fl.frame_id IS NULL OR fr.id IS NULL
           OR (fl.video_id IS NOT NULL AND v.id IS NULL)
           OR (fl.segment_id IS NOT NULL AND s.id IS NULL))
    ORDER BY fl.id
"""


def orphan_segments(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Segment rows whose video or label is NULL or does not exist.

    Keys: ``id``, ``video_id``, ``label_id`` (as stored, possibly None), ``deleted`` (soft-deleted
    row), ``video_gone``, ``label_gone`` (bool: that reference is NULL or names no row).
    """
    return fetch_dicts(con, _ORPHAN_SEGMENTS)


def orphan_segment_frame_labels(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Frame-label rows made from a segment whose frame is NULL, or whose frame, video or
    segment names no row.

    Keys: ``id``, ``frame_id``, ``video_id``, ``frame_number``, ``segment_id``, ``label_id`` (as
    stored), ``frame_null``, ``frame_gone``, ``video_gone``, ``segment_gone`` (bool).
    """
    return fetch_dicts(con, _ORPHAN_SEGMENT_FRAME_LABELS, ["segment"])


def segment_row_counts(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(segment rows, frame-label rows made from a segment): what the orphan queries looked at."""
    segs = con.execute("SELECT count(*) FROM segments").fetchone()[0]
    made = con.execute("SELECT count(*) FROM frame_labels WHERE source = ? OR segment_id IS NOT NULL",
                       ["segment"]).fetchone()[0]
    return int(segs), int(made)


__all__ = ["orphan_segment_frame_labels", "orphan_segments", "segment_row_counts"]
