"""Orphan time-segment rows as ``check`` problems: segments, and the frame-label rows
materialised from segments, whose video / label / frame / segment reference is NULL or names
no row (the queries: ``endolite.storage.orphans``).

Report only, never repaired: ``repair`` never deletes or rewrites a row.  The right fix depends
on what was lost.  A missing video or label is best brought back from a backup, which makes the
rows whole again; a frame-label row with a NULL frame was written by the materialising of
schema versions before 8, and ``endolite segment materialize VIDEO`` now writes rows keyed by
frame for the frames that exist (the old row stays and is ignored by exports and training).
Deleting a row loses annotation history that the audit log cannot restore, so it is left to a
person.
"""

from __future__ import annotations

import duckdb

from endolite.maintenance.check import Problem, ProblemKind


def _segment_problem(r: dict) -> Problem:
    gone = []
    if r["video_gone"]:
        gone.append("its video is NULL" if r["video_id"] is None
                    else f"its video {r['video_id']} does not exist")
    if r["label_gone"]:
        gone.append("its label is NULL" if r["label_id"] is None
                    else f"its label {r['label_id']} does not exist")
    state = " (deleted)" if r["deleted"] else ""
    return Problem(ProblemKind.ORPHAN_SEGMENT, f"segment {r['id']}",
                   f"segment row {r['id']}{state}: {' and '.join(gone)}; it is shown nowhere and "
                   "never exported (restore a backup, or delete the row)", r["id"])


def _frame_label_problem(r: dict) -> Problem:
    gone = []
    if r["frame_null"]:
        at = "" if r["frame_number"] is None else f" (frame number {r['frame_number']})"
        gone.append(f"its frame is NULL{at}")
    elif r["frame_gone"]:
        gone.append(f"its frame {r['frame_id']} does not exist")
    if r["video_gone"]:
        gone.append(f"its video {r['video_id']} does not exist")
    if r["segment_gone"]:
        gone.append(f"its segment {r['segment_id']} does not exist")
    source = "" if r["segment_id"] is None else f" from segment {r['segment_id']}"
    if r["video_id"] is not None and not r["video_gone"]:
        fix = f"endolite segment materialize {r['video_id']} labels its extracted frames"
    else:
        fix = "restore a backup"
    return Problem(ProblemKind.ORPHAN_SEGMENT_FRAME_LABEL, f"frame_label {r['id']}",
                   f"frame-label row {r['id']} materialised{source}: {' and '.join(gone)}; "
                   f"exports and training skip it ({fix}, or delete the row)", r["id"])


def orphan_row_problems(con: duckdb.DuckDBPyConnection) -> list[Problem]:
    """One problem per orphan segment row and per orphan frame-label row made from a segment,
    ordered by kind then row id; ``record_id`` is the row's id.  Reads only."""
    from endolite.storage import orphans

    return ([_segment_problem(r) for r in orphans.orphan_segments(con)]
            + [_frame_label_problem(r) for r in orphans.orphan_segment_frame_labels(con)])


__all__ = ["orphan_row_problems"]
