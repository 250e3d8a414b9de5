"""The export gate: only media whose anonymization a person validated, unchanged since, may leave.

``approve`` is the one way to get an ``ExportPlan``; every export path (the Export page, the
CLI, anything later) builds its plan here.  There is no switch that lets raw media through.

Refused, each with a message naming the media and the reason (all reasons at once):

* a video or image group that does not exist;
* one never anonymized (status raw), anonymized but not validated, or rejected (with the
  lead's reason);
* a video whose anonymized file is missing or whose sha256 differs from the validated one;
* an image group whose set of blanked frames (``group_digest`` over the recorded hashes) is not
  the one validated;
* frames of an approved video that have no blanked copy (extracted after anonymization
  without being blanked): anonymize the video again.

The blanked frame files' contents are checked against their recorded sha256 while the zip
writer copies them (``bundle``), so a file changed after the gate still cannot leave.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from endolite.config import Settings
from endolite.errors import ExportRefused
from endolite.media import sha256_file
from endolite.export.plan import ExportFrame, ExportPlan, ExportVideo
from endolite.storage import anonymizations as anon
from endolite.storage.anonymizations import AnonStatus
from endolite.storage.rows import fetch_dicts

def _status_problem(row: anon.Anonymization | None, media: str) -> str | None:
    if row is None:
        return f"{media}: not anonymized (status raw)"
    if row.status == AnonStatus.ANONYMIZED:
        return f"{media}: anonymized but not validated by a lead"
    if row.status == AnonStatus.REJECTED:
        why = f": {row.reason}" if row.reason else ""
        return f"{media}: anonymization rejected by {row.decided_by}{why}"
    if row.status != AnonStatus.VALIDATED or not row.validated_sha256:
        return f"{media}: not validated (status {row.status})"
    return None


def _frames(con: duckdb.DuckDBPyConnection, column: str, media_id: int) -> list[dict]:
    return fetch_dicts(con, f"""
        SELECT fr.id, fr.video_id, fr.group_id, fr.frame_number, fr.timestamp, fr.width, fr.height,
               fr.is_context, af.path AS anon_path, af.sha256 AS anon_sha256
        FROM frames fr LEFT JOIN anonymized_frames af ON af.frame_id = fr.id
        WHERE fr.{column} = ? ORDER BY fr.frame_number, fr.id""", [media_id])


def _export_frames(settings: Settings, rows: list[dict]) -> list[ExportFrame]:
    return [ExportFrame(frame_id=r["id"], video_id=r["video_id"], group_id=r["group_id"],
                        frame_number=r["frame_number"], timestamp=r["timestamp"], width=r["width"],
                        height=r["height"], is_context=bool(r["is_context"]),
                        source=settings.absolute(r["anon_path"]), sha256=r["anon_sha256"])
            for r in rows]


def approve(con: duckdb.DuckDBPyConnection, settings: Settings, *, video_ids: Sequence[int] = (),
            group_ids: Sequence[int] = ()) -> ExportPlan:
    """The plan of an export of these videos and image groups, or ``ExportRefused`` naming every
    medium that may not leave and why.  Reads only; hashes each anonymized video file once."""
    video_ids = list(dict.fromkeys(int(v) for v in video_ids))
    group_ids = list(dict.fromkeys(int(g) for g in group_ids))
    if not video_ids and not group_ids:
        raise ExportRefused("nothing to export: choose at least one video or image group")
    problems: list[str] = []
    videos: list[ExportVideo] = []
    frames: list[ExportFrame] = []
    for vid in video_ids:
        media = f"video {vid}"
        info = con.execute("SELECT fps, frame_count, width, height FROM videos WHERE id = ?",
                           [vid]).fetchone()
        if info is None:
            problems.append(f"{media}: no such video")
            continue
        row = anon.get(con, video_id=vid)
        if (problem := _status_problem(row, media)) is not None:
            problems.append(problem)
            continue
        source = settings.absolute(row.path) if row.path else None
        if source is None or not source.is_file():
            problems.append(f"{media}: the anonymized file is missing")
            continue
        if sha256_file(source) != row.validated_sha256:
            problems.append(f"{media}: the anonymized file changed after it was validated "
                            "(sha256 differs); validate it again")
            continue
        rows = _frames(con, "video_id", vid)
        unblanked = [r["id"] for r in rows if r["anon_path"] is None]
        if unblanked:
            problems.append(f"{media}: {len(unblanked)} frame(s) have no anonymized copy "
                            f"(e.g. frame id {unblanked[0]}); anonymize the video again")
            continue
        videos.append(ExportVideo(video_id=vid, source=source, sha256=row.validated_sha256,
                                  fps=float(info[0]), frame_count=int(info[1]), width=int(info[2]),
                                  height=int(info[3])))
        frames += _export_frames(settings, rows)
    approved_groups: list[int] = []
    for gid in group_ids:
        media = f"image group {gid}"
        if con.execute("SELECT 1 FROM image_groups WHERE id = ?", [gid]).fetchone() is None:
            problems.append(f"{media}: no such image group")
            continue
        row = anon.get(con, group_id=gid)
        if (problem := _status_problem(row, media)) is not None:
            problems.append(problem)
            continue
        rows = _frames(con, "group_id", gid)
        unblanked = [r["id"] for r in rows if r["anon_path"] is None]
        digest = anon.group_digest((r["id"], r["anon_sha256"]) for r in rows if r["anon_path"])
        if unblanked or digest != row.validated_sha256:
            problems.append(f"{media}: its anonymized images changed after it was validated; "
                            "validate it again")
            continue
        approved_groups.append(gid)
        frames += _export_frames(settings, rows)
    if problems:
        raise ExportRefused("export refused: " + "; ".join(problems))
    return ExportPlan(videos=tuple(videos), group_ids=tuple(approved_groups), frames=tuple(frames))
