"""Repository for masks / boxes / polygons, frame labels and time segments.

Masks arrive already encoded (COCO RLE counts string + size, area, bbox computed by
endolite.masks); deletes are soft (``deleted_at``) so an undo can restore them.
"""

from __future__ import annotations

from typing import Any

import duckdb

from endolite.errors import InvalidInput, NotFound
from endolite.records import FrameLabel, Mask, MaskSource, Presence, Segment, ShapeKind
from endolite.storage.db import insert_rows, reserve_ids
from endolite.storage.rows import dumps, fetch_dicts, loads

_MASK_SELECT = ("SELECT m.*, l.name AS label, l.color AS color FROM masks m "
                "JOIN labels l ON l.id = m.label_id WHERE m.deleted_at IS NULL")
MASK_FIELDS = ("id", "frame_id", "label_id", "annotator", "source", "kind", "height", "width", "rle",
               "area", "bbox", "prompt", "confidence", "flagged", "origin_mask_id", "created_by")


def _mask(r: dict) -> Mask:
    return Mask(id=r["id"], frame_id=r["frame_id"], label_id=r["label_id"], label=r["label"],
                color=r["color"], annotator=r["annotator"], source=MaskSource(r["source"]),
                kind=ShapeKind(r["kind"]), height=r["height"], width=r["width"], rle=r["rle"],
                area=r["area"], bbox=tuple(r["bbox"]), prompt=loads(r["prompt"]),
                confidence=r["confidence"], flagged=bool(r["flagged"]),
                origin_mask_id=r["origin_mask_id"], created_at=r["created_at"],
                version=r.get("version", 1))


def reserve_mask_ids(con: duckdb.DuckDBPyConnection, count: int) -> list[int]:
    return reserve_ids(con, "seq_masks", count)


def insert_masks(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    """Bulk insert mask rows: dicts with MASK_FIELDS (``prompt`` a dict, ``bbox`` 4 floats)."""
    prepared = []
    for row in rows:
        item = {k: row.get(k) for k in MASK_FIELDS}
        item["prompt"] = dumps(row.get("prompt"))
        item["bbox"] = [float(v) for v in row["bbox"]]
        item["source"] = str(row["source"])
        item["kind"] = str(row.get("kind") or ShapeKind.MASK)
        item["flagged"] = bool(row.get("flagged") or False)
        prepared.append(item)
    insert_rows(con, "masks", prepared)


def get_mask(con: duckdb.DuckDBPyConnection, mask_id: int) -> Mask:
    rows = fetch_dicts(con, _MASK_SELECT + " AND m.id = ?", [mask_id])
    if not rows:
        raise NotFound(f"no mask with id {mask_id}")
    return _mask(rows[0])


def get_mask_any(con: duckdb.DuckDBPyConnection, mask_id: int) -> Mask:
    """A mask live or soft-deleted (edits and undo look at deleted ones too)."""
    rows = fetch_dicts(con, _MASK_SELECT.replace(" WHERE m.deleted_at IS NULL", " WHERE TRUE")
                       + " AND m.id = ?", [mask_id])
    if not rows:
        raise NotFound(f"no mask with id {mask_id}")
    return _mask(rows[0])


def masks_of(con: duckdb.DuckDBPyConnection, *, frame_ids: list[int] | None = None,
             video_id: int | None = None, group_id: int | None = None,
             annotator: str | None = None, label_id: int | None = None,
             origin_mask_id: int | None = None) -> list[Mask]:
    """Live masks filtered by frames, or by a whole video / image group; ordered by frame, id."""
    sql, params = _MASK_SELECT, []
    if origin_mask_id is not None:
        sql += " AND m.origin_mask_id = ?"
        params.append(origin_mask_id)
    if frame_ids is not None:
        sql += " AND list_contains(?, m.frame_id)"
        params.append(list(frame_ids))
    if video_id is not None:
        sql += " AND m.frame_id IN (SELECT id FROM frames WHERE video_id = ?)"
        params.append(video_id)
    if group_id is not None:
        sql += " AND m.frame_id IN (SELECT id FROM frames WHERE group_id = ?)"
        params.append(group_id)
    if annotator is not None:
        sql += " AND m.annotator = ?"
        params.append(annotator)
    if label_id is not None:
        sql += " AND m.label_id = ?"
        params.append(label_id)
    sql += " ORDER BY m.frame_id, m.id"
    return [_mask(r) for r in fetch_dicts(con, sql, params)]


def _review_where(video_id: int | None, group_id: int | None,
                  annotator: str | None) -> tuple[str, list[Any]]:
    if (video_id is None) == (group_id is None):
        raise ValueError("give exactly one of video_id / group_id")
    column, value = ("video_id", video_id) if video_id is not None else ("group_id", group_id)
    sql = (f" AND m.source = 'propagated' AND m.frame_id IN (SELECT id FROM frames WHERE {column} = ?)")
    params: list[Any] = [value]
    if annotator is not None:
        sql += " AND m.annotator = ?"
        params.append(annotator)
    return sql, params


def review_counts(con: duckdb.DuckDBPyConnection, *, video_id: int | None = None,
                  group_id: int | None = None, annotator: str | None = None) -> tuple[int, int]:
    """``(flagged, total)`` live propagated masks of one video / image group (optionally one
    annotator's), counted in the database."""
    where, params = _review_where(video_id, group_id, annotator)
    row = con.execute("SELECT count(*) FILTER (WHERE m.flagged), count(*) FROM masks m "
                      "WHERE m.deleted_at IS NULL" + where, params).fetchone()
    return int(row[0]), int(row[1])


def review_page(con: duckdb.DuckDBPyConnection, *, video_id: int | None = None,
                group_id: int | None = None, annotator: str | None = None, limit: int,
                offset: int = 0, order: str = "confidence") -> list[Mask]:
    """Live propagated masks of one video / image group for review, a page at a time: flagged
    first, then (``order="confidence"``) by rising confidence (none counts as 1.0), then frame
    and id (the order of ``endolite.annotate.review_queue``), or (``order="frame"``) in frame
    order (frame number, then frame id, then mask id)."""
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must be >= 0 (got {limit}, {offset})")
    if order not in ("confidence", "frame"):
        raise ValueError(f"order {order!r}: use confidence or frame")
    where, params = _review_where(video_id, group_id, annotator)
    then = ("coalesce(m.confidence, 1.0), m.frame_id" if order == "confidence" else
            "(SELECT f.frame_number FROM frames f WHERE f.id = m.frame_id), m.frame_id")
    sql = (_MASK_SELECT + where + f" ORDER BY m.flagged DESC, {then}, m.id LIMIT ? OFFSET ?")
    return [_mask(r) for r in fetch_dicts(con, sql, [*params, int(limit), int(offset)])]


def soft_delete(con: duckdb.DuckDBPyConnection, mask_ids: list[int], *, by: str | None) -> list[int]:
    """Soft-delete the live masks among ``mask_ids`` (version + 1); returns the ids it deleted."""
    if not mask_ids:
        return []
    rows = con.execute("UPDATE masks SET deleted_at = current_localtimestamp(), deleted_by = ?, "
                       "version = version + 1 WHERE deleted_at IS NULL AND list_contains(?, id) "
                       "RETURNING id", [by, list(mask_ids)]).fetchall()
    return sorted(int(r[0]) for r in rows)


def soft_delete_version(con: duckdb.DuckDBPyConnection, mask_id: int, version: int, *,
                        by: str | None) -> bool:
    """Soft-delete mask ``mask_id`` only if it is live at ``version``; False when it is not."""
    rows = con.execute("UPDATE masks SET deleted_at = current_localtimestamp(), deleted_by = ?, "
                       "version = version + 1 WHERE id = ? AND version = ? AND deleted_at IS NULL "
                       "RETURNING id", [by, mask_id, version]).fetchall()
    return bool(rows)


def restore(con: duckdb.DuckDBPyConnection, mask_ids: list[int]) -> list[int]:
    """Bring back soft-deleted masks (version + 1); returns the ids it restored."""
    if not mask_ids:
        return []
    rows = con.execute("UPDATE masks SET deleted_at = NULL, deleted_by = NULL, version = version + 1 "
                       "WHERE deleted_at IS NOT NULL AND list_contains(?, id) RETURNING id",
                       [list(mask_ids)]).fetchall()
    return sorted(int(r[0]) for r in rows)


def mask_states(con: duckdb.DuckDBPyConnection, mask_ids: list[int]) -> dict[int, dict[str, Any]]:
    """``{id: {annotator, frame_id, deleted, version, deleted_by}}`` for masks live or deleted."""
    if not mask_ids:
        return {}
    rows = fetch_dicts(con, "SELECT id, annotator, frame_id, deleted_at IS NOT NULL AS deleted, version, "
                            "deleted_by FROM masks WHERE list_contains(?, id)", [list(mask_ids)])
    return {r["id"]: r for r in rows}


# --- frame labels -----------------------------------------------------------------------------

_FL_SELECT = ("SELECT f.*, l.name AS label FROM frame_labels f JOIN labels l ON l.id = f.label_id")


def _frame_label(r: dict) -> FrameLabel:
    return FrameLabel(id=r["id"], frame_id=r["frame_id"], video_id=r["video_id"],
                      frame_number=r["frame_number"], label_id=r["label_id"], label=r["label"],
                      annotator=r["annotator"], value=Presence(r["value"]),
                      float_value=r["float_value"], source=r["source"], segment_id=r["segment_id"])


def set_frame_label(con: duckdb.DuckDBPyConnection, *, frame_id: int, video_id: int | None,
                    frame_number: int | None, label_id: int, annotator: str, value: Presence | str,
                    float_value: float | None = None) -> FrameLabel:
    """Set (insert or update) one annotator's value of one label on one frame."""
    try:
        value = Presence(value)
    except ValueError:
        raise InvalidInput(f"frame label value {value!r}: use present (1), absent (0) or unknown") from None
    row = con.execute("SELECT id FROM frame_labels WHERE frame_id = ? AND label_id = ? AND annotator = ?",
                      [frame_id, label_id, annotator]).fetchone()
    if row:
        con.execute("UPDATE frame_labels SET value = ?, float_value = ?, source = 'manual', "
                    "updated_at = current_localtimestamp() WHERE id = ?", [str(value), float_value, row[0]])
        label_row_id = row[0]
    else:
        label_row_id = con.execute(
            "INSERT INTO frame_labels (frame_id, video_id, frame_number, label_id, annotator, value, "
            "float_value) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [frame_id, video_id, frame_number, label_id, annotator, str(value), float_value]).fetchone()[0]
    return frame_labels_where(con, "f.id = ?", [label_row_id])[0]


def frame_labels_where(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> list[FrameLabel]:
    """Frame-label rows matching an internal ``where`` clause (parameterised)."""
    return [_frame_label(r) for r in fetch_dicts(con, f"{_FL_SELECT} WHERE {where} ORDER BY f.id", params)]


def frame_labels_of(con: duckdb.DuckDBPyConnection, frame_id: int, *, annotator: str | None = None) -> list[FrameLabel]:
    if annotator is None:
        return frame_labels_where(con, "f.frame_id = ?", [frame_id])
    return frame_labels_where(con, "f.frame_id = ? AND f.annotator = ?", [frame_id, annotator])


# --- segments ---------------------------------------------------------------------------------

_SEG_SELECT = ("SELECT s.*, l.name AS label, l.color AS color FROM segments s "
               "JOIN labels l ON l.id = s.label_id WHERE s.deleted_at IS NULL")


def _segment(r: dict) -> Segment:
    return Segment(id=r["id"], video_id=r["video_id"], label_id=r["label_id"], label=r["label"],
                   color=r["color"], start_frame=r["start_frame"], end_frame=r["end_frame"],
                   annotator=r["annotator"], for_export=bool(r["for_export"]))


def add_segment(con: duckdb.DuckDBPyConnection, *, video_id: int, label_id: int, start_frame: int,
                end_frame: int, annotator: str, for_export: bool = True) -> Segment:
    row = con.execute(
        "INSERT INTO segments (video_id, label_id, start_frame, end_frame, annotator, for_export, "
        "created_by) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [video_id, label_id, start_frame, end_frame, annotator, for_export, annotator]).fetchone()
    return segments_of(con, video_id=video_id, segment_id=row[0])[0]


def segments_of(con: duckdb.DuckDBPyConnection, *, video_id: int, segment_id: int | None = None) -> list[Segment]:
    sql, params = _SEG_SELECT + " AND s.video_id = ?", [video_id]
    if segment_id is not None:
        sql += " AND s.id = ?"
        params.append(segment_id)
    return [_segment(r) for r in fetch_dicts(con, sql + " ORDER BY s.start_frame, s.id", params)]


def get_segment(con: duckdb.DuckDBPyConnection, segment_id: int) -> Segment:
    rows = fetch_dicts(con, _SEG_SELECT + " AND s.id = ?", [segment_id])
    if not rows:
        raise NotFound(f"no segment with id {segment_id}")
    return _segment(rows[0])


def set_segment_export(con: duckdb.DuckDBPyConnection, segment_id: int, for_export: bool) -> None:
    con.execute("UPDATE segments SET for_export = ? WHERE id = ?", [for_export, segment_id])


def update_segment(con: duckdb.DuckDBPyConnection, segment_id: int, *, label_id: int,
                   start_frame: int, end_frame: int) -> None:
    con.execute("UPDATE segments SET label_id = ?, start_frame = ?, end_frame = ? WHERE id = ?",
                [label_id, start_frame, end_frame, segment_id])


def delete_segment(con: duckdb.DuckDBPyConnection, segment_id: int) -> None:
    con.execute("UPDATE segments SET deleted_at = current_localtimestamp() WHERE id = ?", [segment_id])


def missing_segment_rows(con: duckdb.DuckDBPyConnection, video_id: int) -> list[dict[str, Any]]:
    """Frame-label rows that segments marked for export imply but that do not exist yet.

    One row (keys frame_id, video_id, frame_number, label_id, annotator, segment_id) per frame
    row of the video with ``start_frame <= frame_number < end_frame`` (end exclusive) of a live
    segment marked for export, and per (label, annotator) of such segments, unless that frame
    already has a row of that label and annotator (lx-annotate's generate-annotations).
    """
    return fetch_dicts(con, """
        WITH wanted AS (
            SELECT fr.id AS frame_id, s.video_id, fr.frame_number, s.label_id, s.annotator,
                   min(s.id) AS segment_id
            FROM segments s JOIN frames fr ON fr.video_id = s.video_id
                 AND fr.frame_number >= s.start_frame AND fr.frame_number < s.end_frame
            WHERE s.video_id = ? AND s.for_export AND s.deleted_at IS NULL
            GROUP BY ALL
        )
        SELECT w.* FROM wanted w
        WHERE NOT EXISTS (
            SELECT 1 FROM frame_labels fl WHERE fl.frame_id = w.frame_id
              AND fl.label_id = w.label_id AND fl.annotator = w.annotator)
        ORDER BY w.frame_number, w.frame_id, w.label_id, w.annotator
    """, [video_id])


def insert_frame_label_rows(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    insert_rows(con, "frame_labels", [
        {"id": i, "frame_id": r["frame_id"], "video_id": r["video_id"], "frame_number": r["frame_number"],
         "label_id": r["label_id"], "annotator": r["annotator"], "value": r.get("value", "present"),
         "source": r.get("source", "segment"), "segment_id": r.get("segment_id")}
        for i, r in zip(reserve_ids(con, "seq_frame_labels", len(rows)), rows)])
