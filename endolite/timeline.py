"""What a sequence's timeline shows: which frames carry masks, frame labels, flagged
(propagated) masks, and the video's segments, aggregated in SQL into at most ``bins`` bins so a
100,000-frame sequence costs one grouped query, not a Python loop over frames.

Frame numbers are the sequence's own (a video's decoded frame index, an image group's order);
segments are ``[start_frame, end_frame)`` (end exclusive).  Navigator positions follow
``storage.media.frames_of`` order (frame number, then id), with or without context frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from endolite.records import Segment


@dataclass(frozen=True)
class Bin:
    """Frames ``start <= frame_number < end`` of the sequence (stored ones only are counted).

    ``first_number``: the bin's first stored frame number (what a click jumps to);
    ``frames`` stored frames, ``masked`` / ``labelled`` / ``flagged`` how many of them carry a
    live mask / a frame label row with value present or absent / a flagged live mask;
    ``masks`` live masks in all."""

    start: int
    end: int
    first_number: int
    frames: int
    masked: int
    labelled: int
    flagged: int
    masks: int


@dataclass(frozen=True)
class Timeline:
    """A sequence's timeline: ``length`` frame numbers ``0 .. length - 1`` (a video's frame
    count, an image group's last frame number + 1), the bins holding at least one stored frame
    (rising ``start``), each ``width`` frame numbers wide, and the video's live segments."""

    length: int
    width: int
    bins: tuple[Bin, ...]
    segments: tuple[Segment, ...] = ()

    @property
    def frames(self) -> int:
        return sum(b.frames for b in self.bins)


def _where(video_id: int | None, group_id: int | None, include_context: bool) -> tuple[str, list[Any]]:
    if (video_id is None) == (group_id is None):
        raise ValueError("give exactly one of video_id / group_id")
    column, value = ("video_id", video_id) if video_id is not None else ("group_id", group_id)
    return (f"f.{column} = ?" + ("" if include_context else " AND NOT f.is_context")), [value]


def sequence_length(con: duckdb.DuckDBPyConnection, *, video_id: int | None = None,
                    group_id: int | None = None) -> int:
    """Frame numbers the timeline spans: a video's frame count (at least its last stored frame
    + 1), an image group's last frame number + 1; 0 for an empty group."""
    where, params = _where(video_id, group_id, True)
    last = con.execute(f"SELECT max(frame_number) FROM frames f WHERE {where}", params).fetchone()[0]
    length = 0 if last is None else int(last) + 1
    if video_id is not None:
        row = con.execute("SELECT frame_count FROM videos WHERE id = ?", [video_id]).fetchone()
        length = max(length, int(row[0] or 0) if row else 0)
    return length


def build(con: duckdb.DuckDBPyConnection, *, video_id: int | None = None, group_id: int | None = None,
          include_context: bool = True, annotator: str | None = None, bins: int = 400) -> Timeline:
    """The sequence's timeline in at most ``bins`` bins (``bins`` >= 1).  ``annotator``: count
    only that annotator's masks, frame labels and segments (blind benchmark work); None:
    everyone's."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1 (got {bins})")
    length = sequence_length(con, video_id=video_id, group_id=group_id)
    width = max(1, -(-length // bins))
    where, params = _where(video_id, group_id, include_context)
    who_m = " AND m.annotator = ?" if annotator is not None else ""
    who_l = " AND fl.annotator = ?" if annotator is not None else ""
    extra = [annotator] if annotator is not None else []
    rows = con.execute(f"""
        WITH fr AS (SELECT f.id, f.frame_number FROM frames f WHERE {where}),
        mk AS (SELECT m.frame_id, count(*) AS n, bool_or(m.flagged) AS flagged FROM masks m
               WHERE m.deleted_at IS NULL AND m.frame_id IN (SELECT id FROM fr){who_m}
               GROUP BY m.frame_id),
        lb AS (SELECT DISTINCT fl.frame_id FROM frame_labels fl
               WHERE fl.frame_id IN (SELECT id FROM fr) AND fl.value <> 'unknown'{who_l})
        SELECT fr.frame_number // ? AS b, min(fr.frame_number), count(*),
               count(mk.frame_id), count(lb.frame_id), count(*) FILTER (WHERE mk.flagged),
               coalesce(sum(mk.n), 0)
        FROM fr LEFT JOIN mk ON mk.frame_id = fr.id LEFT JOIN lb ON lb.frame_id = fr.id
        GROUP BY b ORDER BY b""", [*params, *extra, *extra, width]).fetchall()
    out = tuple(Bin(start=int(b) * width, end=min(length, (int(b) + 1) * width), first_number=int(first),
                    frames=int(n), masked=int(masked), labelled=int(labelled), flagged=int(flagged),
                    masks=int(masks))
                for b, first, n, masked, labelled, flagged, masks in rows)
    segments: tuple[Segment, ...] = ()
    if video_id is not None:
        from endolite.storage import annotations

        segments = tuple(s for s in annotations.segments_of(con, video_id=video_id)
                         if annotator is None or s.annotator == annotator)
    return Timeline(length=length, width=width, bins=out, segments=segments)


def position_of(con: duckdb.DuckDBPyConnection, frame_number: int, *, video_id: int | None = None,
                group_id: int | None = None, include_context: bool = True) -> int | None:
    """The navigator position (0-based, ``frames_of`` order) of the stored frame nearest to
    ``frame_number`` (the earlier one on a tie); None when the sequence has no frames."""
    where, params = _where(video_id, group_id, include_context)
    row = con.execute(f"""
        SELECT id, frame_number FROM frames f WHERE {where}
        ORDER BY abs(frame_number - ?), frame_number, id LIMIT 1""",
                      [*params, int(frame_number)]).fetchone()
    if row is None:
        return None
    frame_id, number = row
    return int(con.execute(f"""
        SELECT count(*) FROM frames f WHERE {where}
        AND (frame_number < ? OR (frame_number = ? AND id < ?))""",
                           [*params, number, number, frame_id]).fetchone()[0])


def segment_from_marks(start_mark: int, end_mark: int) -> tuple[int, int]:
    """``[start, end)`` of a segment marked at frames ``start_mark`` and ``end_mark`` (both
    inside it, in either order): ``(min, max + 1)``."""
    lo, hi = sorted((int(start_mark), int(end_mark)))
    return lo, hi + 1
