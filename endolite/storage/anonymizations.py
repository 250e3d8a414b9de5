"""Anonymization rows: the status of each video / image group (no row = raw) and each frame's
blanked copy.  The export gate (``endolite.export.gate``) reads these; ``services.anonymization``
writes them.

Status: raw (no row) -> anonymized -> validated | rejected.  ``save`` (a new or repeated
anonymization) always sets ``anonymized`` and clears validation; ``decide`` sets validated
(copying ``sha256`` into ``validated_sha256``) or rejected (with the reason).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import duckdb

from endolite.storage.rows import dumps, fetch_dicts, loads


class AnonStatus(StrEnum):
    RAW = "raw"
    ANONYMIZED = "anonymized"
    VALIDATED = "validated"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Anonymization:
    """One video's or image group's anonymization (exactly one of ``video_id`` / ``group_id``).

    ``fov``: JSON-able dict (video: one field of view; group: ``{frame_id: fov}``);
    ``text_boxes`` / ``residual``: lists of ``{"frame": n, "box": [x0, y0, x1, y1], "text": s,
    "score": f}`` in pixel coordinates of the media (x right, y down);
    ``redactions``: rectangles ``[x0, y0, x1, y1]`` a person drew (video) or
    ``{"frame_id": id, "box": [...]}`` (group).  ``path``: the anonymized video file relative to
    the data dir (None for a group).  ``sha256``: of that file (group: over its blanked frames).
    """

    id: int
    video_id: int | None
    group_id: int | None
    status: AnonStatus
    fov: Any
    text_boxes: list
    redactions: list
    residual: list
    sampled_frames: int
    path: str | None
    sha256: str
    validated_sha256: str | None
    reason: str | None
    created_at: datetime
    created_by: str | None
    decided_at: datetime | None
    decided_by: str | None

    @property
    def media(self) -> str:
        return f"video {self.video_id}" if self.video_id is not None else f"image group {self.group_id}"


def _record(r: dict[str, Any]) -> Anonymization:
    return Anonymization(
        id=r["id"], video_id=r["video_id"], group_id=r["group_id"], status=AnonStatus(r["status"]),
        fov=loads(r["fov"]), text_boxes=loads(r["text_boxes"]) or [],
        redactions=loads(r["redactions"]) or [], residual=loads(r["residual"]) or [],
        sampled_frames=r["sampled_frames"], path=r["path"], sha256=r["sha256"],
        validated_sha256=r["validated_sha256"], reason=r["reason"], created_at=r["created_at"],
        created_by=r["created_by"], decided_at=r["decided_at"], decided_by=r["decided_by"])


def _where(video_id: int | None, group_id: int | None) -> tuple[str, list[Any]]:
    if (video_id is None) == (group_id is None):
        raise ValueError("name exactly one of video_id / group_id")
    return ("video_id = ?", [video_id]) if video_id is not None else ("group_id = ?", [group_id])


def get(con: duckdb.DuckDBPyConnection, *, video_id: int | None = None,
        group_id: int | None = None) -> Anonymization | None:
    where, params = _where(video_id, group_id)
    rows = fetch_dicts(con, f"SELECT * FROM anonymizations WHERE {where}", params)
    return _record(rows[0]) if rows else None


def status_of(con: duckdb.DuckDBPyConnection, *, video_id: int | None = None,
              group_id: int | None = None) -> AnonStatus:
    row = get(con, video_id=video_id, group_id=group_id)
    return row.status if row else AnonStatus.RAW


def all_rows(con: duckdb.DuckDBPyConnection) -> list[Anonymization]:
    return [_record(r) for r in fetch_dicts(con, "SELECT * FROM anonymizations ORDER BY id")]


def save(con: duckdb.DuckDBPyConnection, *, video_id: int | None = None, group_id: int | None = None,
         fov: Any, text_boxes: list, redactions: list, residual: list, sampled_frames: int,
         path: str | None, sha256: str, created_by: str | None) -> Anonymization:
    """Insert or replace the media's anonymization; status anonymized, validation cleared.
    The caller runs this inside its transaction (with the ``anonymized_frames`` rows)."""
    where, params = _where(video_id, group_id)
    con.execute(f"DELETE FROM anonymizations WHERE {where}", params)
    con.execute(
        "INSERT INTO anonymizations (video_id, group_id, status, fov, text_boxes, redactions, "
        "residual, sampled_frames, path, sha256, created_by, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, current_localtimestamp())",
        [video_id, group_id, str(AnonStatus.ANONYMIZED), dumps(fov), dumps(text_boxes),
         dumps(redactions), dumps(residual), int(sampled_frames), path, sha256, created_by])
    return get(con, video_id=video_id, group_id=group_id)  # type: ignore[return-value]


def decide(con: duckdb.DuckDBPyConnection, *, video_id: int | None = None, group_id: int | None = None,
           validated: bool, reason: str | None, decided_by: str) -> Anonymization:
    """Validate (``validated_sha256`` := ``sha256``) or reject (with ``reason``)."""
    where, params = _where(video_id, group_id)
    status = AnonStatus.VALIDATED if validated else AnonStatus.REJECTED
    con.execute(
        f"UPDATE anonymizations SET status = ?, validated_sha256 = CASE WHEN ? THEN sha256 END, "
        f"reason = ?, decided_at = current_localtimestamp(), decided_by = ? WHERE {where}",
        [str(status), validated, reason, decided_by, *params])
    return get(con, video_id=video_id, group_id=group_id)  # type: ignore[return-value]


def set_frames(con: duckdb.DuckDBPyConnection, rows: list[tuple[int, str, str]]) -> None:
    """Record blanked frame copies ``(frame_id, relative path, sha256)`` (replacing old ones)."""
    if not rows:
        return
    ids = [r[0] for r in rows]
    con.execute("DELETE FROM anonymized_frames WHERE list_contains(?, frame_id)", [ids])
    con.executemany("INSERT INTO anonymized_frames (frame_id, path, sha256) VALUES (?, ?, ?)",
                    [list(r) for r in rows])


def frames(con: duckdb.DuckDBPyConnection, frame_ids: list[int]) -> dict[int, tuple[str, str]]:
    """``frame_id -> (relative path, sha256)`` of the blanked copies that exist."""
    rows = con.execute("SELECT frame_id, path, sha256 FROM anonymized_frames "
                       "WHERE list_contains(?, frame_id)", [list(frame_ids)]).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def group_digest(frame_hashes: Iterable[tuple[int, str]]) -> str:
    """An image group's anonymization hash: sha256 (hex) of the lines ``"<frame_id> <sha256>\n"``
    of its blanked frames, sorted by frame id (pure)."""
    text = "".join(f"{int(fid)} {sha}\n" for fid, sha in sorted(frame_hashes))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
