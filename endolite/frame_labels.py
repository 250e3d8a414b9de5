"""Frame labels (present / absent / unknown per frame and label, one row per annotator) and
time segments of a video (``[start, end)`` frame ranges of a label: ``end`` is exclusive, as in
lx-annotate), and materialising the segments marked for export into frame-label rows.  The service layer
(``endolite.services.annotations``) checks roles and audits; this module validates and stores.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import duckdb

from endolite.annotate import resolve_label
from endolite.errors import InvalidInput
from endolite.records import FrameLabel, Presence, Segment
from endolite.storage import annotations as store
from endolite.storage import media


_VALUE_WORDS = {"1": Presence.PRESENT, "present": Presence.PRESENT, "true": Presence.PRESENT,
                "yes": Presence.PRESENT, "0": Presence.ABSENT, "absent": Presence.ABSENT,
                "false": Presence.ABSENT, "no": Presence.ABSENT, "unknown": Presence.UNKNOWN,
                "?": Presence.UNKNOWN, "": Presence.UNKNOWN}


def parse_presence(text: str) -> Presence:
    try:
        return _VALUE_WORDS[text.strip().lower()]
    except KeyError:
        raise InvalidInput(f"frame label value {text!r}: use 1, 0 or unknown") from None


def parse_assignment(text: str) -> tuple[str, Presence, float | None]:
    """``LABEL=1|0|unknown[:FLOAT]`` -> (label name, presence, optional float value)."""
    match = re.fullmatch(r"(.+?)=([^:]*)(?::(.+))?", text.strip())
    if not match:
        raise InvalidInput(f"{text!r}: use LABEL=1, LABEL=0 or LABEL=unknown")
    value = None
    if match.group(3) is not None:
        try:
            value = float(match.group(3))
        except ValueError:
            raise InvalidInput(f"{text!r}: the value after ':' must be a number") from None
    return match.group(1).strip(), parse_presence(match.group(2)), value


def set_frame_labels(con: duckdb.DuckDBPyConnection, frame_id: int,
                     assignments: Sequence[tuple[str, Presence, float | None]], *,
                     annotator: str) -> list[FrameLabel]:
    frame = media.get_frame(con, frame_id)
    out = []
    for name, presence, value in assignments:
        lab = resolve_label(con, name)
        if "frame_label" not in lab.allowed:
            raise InvalidInput(f"label {lab.name} does not allow frame labels")
        out.append(store.set_frame_label(con, frame_id=frame.id, video_id=frame.video_id,
                                         frame_number=frame.frame_number, label_id=lab.id,
                                         annotator=annotator, value=presence, float_value=value))
    return out


def add_segment(con: duckdb.DuckDBPyConnection, video_id: int, *, label: str, start: int, end: int,
                annotator: str, for_export: bool = True) -> Segment:
    """A segment of frames ``start <= n < end`` (``end`` exclusive; 0 <= start < end <= the
    video's frame count) of a label that allows segments."""
    video = media.get_video(con, video_id)
    lab = resolve_label(con, label)
    if "segment" not in lab.allowed:
        raise InvalidInput(f"label {lab.name} does not allow time segments")
    if not 0 <= start < end:
        raise InvalidInput(f"segment: start {start} / end {end} (exclusive) must satisfy "
                           "0 <= start < end")
    if end > video.frame_count:
        raise InvalidInput(f"segment: end {end} (exclusive) is past the video's end: at most "
                           f"{video.frame_count}, its frame count")
    return store.add_segment(con, video_id=video.id, label_id=lab.id, start_frame=start,
                             end_frame=end, annotator=annotator, for_export=for_export)


def update_segment(con: duckdb.DuckDBPyConnection, segment_id: int, *, label: str | None = None,
                   start: int | None = None, end: int | None = None) -> Segment:
    """Change a live segment's label and / or ``[start, end)`` bounds (None: keep), checked as
    ``add_segment`` checks a new one; returns the segment as stored now."""
    seg = store.get_segment(con, segment_id)
    video = media.get_video(con, seg.video_id)
    lab = resolve_label(con, label if label is not None else seg.label_id)
    if "segment" not in lab.allowed:
        raise InvalidInput(f"label {lab.name} does not allow time segments")
    lo = seg.start_frame if start is None else int(start)
    hi = seg.end_frame if end is None else int(end)
    if not 0 <= lo < hi:
        raise InvalidInput(f"segment: start {lo} / end {hi} (exclusive) must satisfy 0 <= start < end")
    if hi > video.frame_count:
        raise InvalidInput(f"segment: end {hi} (exclusive) is past the video's end: at most "
                           f"{video.frame_count}, its frame count")
    store.update_segment(con, segment_id, label_id=lab.id, start_frame=lo, end_frame=hi)
    return store.get_segment(con, segment_id)


def absent_with_masks(con: duckdb.DuckDBPyConnection, frame_id: int,
                      assignments: Sequence[tuple[str, Presence, float | None]], *,
                      annotator: str) -> list[str]:
    """Warnings for labels set *absent* on a frame where ``annotator`` has live masks of that
    label (the two contradict each other); one sentence per label, empty when consistent."""
    absent = {resolve_label(con, name).id: name for name, presence, _ in assignments
              if Presence(presence) == Presence.ABSENT}
    if not absent:
        return []
    rows = con.execute("SELECT label_id, count(*) FROM masks WHERE frame_id = ? AND annotator = ? "
                       "AND deleted_at IS NULL AND list_contains(?, label_id) GROUP BY label_id "
                       "ORDER BY label_id", [frame_id, annotator, list(absent)]).fetchall()
    return [f"{absent[label_id]}: set absent, but this frame has {n} {absent[label_id]} "
            f"mask{'s' if n != 1 else ''} of {annotator}'s; delete the masks or set it present"
            for label_id, n in rows]


def materialize_segments(con: duckdb.DuckDBPyConnection, video_id: int, *, dry_run: bool = False,
                         by: str | None = None) -> int:
    """Create the missing frame-label rows of the video's live segments marked for export, with
    lx-annotate's semantics (``LabelVideoSegment`` -> ``ImageClassificationAnnotation``):

    * every *frame row* of the video whose frame number ``n`` satisfies ``start <= n < end``
      (``end`` exclusive) gets a row of the segment's label and annotator with value
      ``present`` (lx-annotate's ``value=True``), ``source='segment'``, ``segment_id`` the
      lowest id of the segments covering it (overlapping segments give one row);
    * frames that have not been extracted (no frame row) get nothing; run it again after an
      extraction to cover them (the new frames are then the only missing rows);
    * a frame that already has a row of that label and annotator (set by hand, absent or
      unknown included, or by an earlier run) is left as it is;
    * idempotent: a second run creates 0 rows and changes none.

    Returns how many rows were (or, with ``dry_run``, would be) created.
    """
    media.get_video(con, video_id)
    rows = store.missing_segment_rows(con, video_id)
    if not dry_run and rows:
        store.insert_frame_label_rows(con, rows)
    return len(rows)
