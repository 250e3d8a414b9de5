"""Frame tags: a user's short free-text marks on frames ("reviewed", "needs-second-look", ...).

One row per (frame, tag, user) in ``frame_tags``; this repository keeps that unique (DuckDB's
unique indexes trip on updates), so ``add`` is idempotent.  Names arrive here already checked
by ``services.tags.clean_tag``; the service layer checks roles and writes the audit entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import duckdb

from endolite.errors import InvalidInput
from endolite.storage.rows import fetch_dicts


@dataclass(frozen=True)
class FrameTag:
    """One user's tag on a frame; ``created_at`` is naive UTC (when the user first set it)."""

    tag: str
    username: str
    created_at: datetime


def add(con: duckdb.DuckDBPyConnection, frame_id: int, tag: str, *, username: str) -> bool:
    """Tag ``frame_id`` with ``tag`` as ``username``; True if a row was added, False if the user
    had already set that tag (nothing changes then)."""
    exists = con.execute("SELECT 1 FROM frame_tags WHERE frame_id = ? AND tag = ? AND username = ?",
                         [int(frame_id), tag, username]).fetchone()
    if exists:
        return False
    con.execute("INSERT INTO frame_tags (frame_id, tag, username) VALUES (?, ?, ?)",
                [int(frame_id), tag, username])
    return True


def remove(con: duckdb.DuckDBPyConnection, frame_id: int, tag: str, *, username: str) -> bool:
    """Remove ``username``'s ``tag`` from ``frame_id``; True if there was one to remove."""
    row = con.execute("DELETE FROM frame_tags WHERE frame_id = ? AND tag = ? AND username = ? "
                      "RETURNING id", [int(frame_id), tag, username]).fetchall()
    return bool(row)


def tags_of(con: duckdb.DuckDBPyConnection, frame_ids: Iterable[int]) -> dict[int, list[FrameTag]]:
    """``{frame_id: [FrameTag, ...]}`` for the given frames, each list ordered by tag, then time,
    then user; frames without tags are absent from the dict."""
    ids = [int(i) for i in frame_ids]
    if not ids:
        return {}
    out: dict[int, list[FrameTag]] = {}
    for r in fetch_dicts(con, "SELECT frame_id, tag, username, created_at FROM frame_tags "
                              "WHERE list_contains(?, frame_id) ORDER BY frame_id, tag, created_at, "
                              "username", [ids]):
        out.setdefault(r["frame_id"], []).append(
            FrameTag(tag=r["tag"], username=r["username"], created_at=r["created_at"]))
    return out


def _scope(video_id: int | None, group_id: int | None) -> tuple[str, list]:
    """The SQL condition (on frames ``f``) and parameters for one video's / group's frames."""
    sql, params = "", []
    if video_id is not None:
        sql += " AND f.video_id = ?"
        params.append(int(video_id))
    if group_id is not None:
        sql += " AND f.group_id = ?"
        params.append(int(group_id))
    return sql, params


def frames_with_tag(con: duckdb.DuckDBPyConnection, tag: str | None, *, video_id: int | None = None,
                    group_id: int | None = None, username: str | None = None) -> list[int]:
    """Ids (ascending, int) of frames that carry ``tag`` (None: any tag), set by anyone or by
    ``username``, optionally only frames of ``video_id`` or of ``group_id`` (not both)."""
    if video_id is not None and group_id is not None:
        raise InvalidInput("frames_with_tag: give a video or an image group, not both")
    sql = ("SELECT DISTINCT t.frame_id FROM frame_tags t JOIN frames f ON f.id = t.frame_id "
           "WHERE (? IS NULL OR t.tag = ?)")
    scope, scope_params = _scope(video_id, group_id)
    sql += scope
    params: list = [tag, tag, *scope_params]
    if username is not None:
        sql += " AND t.username = ?"
        params.append(username)
    return [int(r[0]) for r in con.execute(sql + " ORDER BY t.frame_id", params).fetchall()]


def tag_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every tag name in use (on any frame, by anyone), sorted case-insensitively."""
    return [r[0] for r in con.execute(
        "SELECT DISTINCT tag FROM frame_tags ORDER BY lower(tag), tag").fetchall()]


def tag_counts(con: duckdb.DuckDBPyConnection, *, video_id: int | None = None,
               group_id: int | None = None) -> dict[str, int]:
    """``{tag: number of distinct frames carrying it}`` over all frames, or one video's / one
    image group's."""
    sql = ("SELECT t.tag, count(DISTINCT t.frame_id) FROM frame_tags t JOIN frames f "
           "ON f.id = t.frame_id WHERE 1 = 1")
    scope, params = _scope(video_id, group_id)
    sql += scope
    return {r[0]: int(r[1]) for r in con.execute(sql + " GROUP BY t.tag ORDER BY t.tag",
                                                 params).fetchall()}
