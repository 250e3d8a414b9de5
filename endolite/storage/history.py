"""Each user's own mask actions per frame (create / delete / edit), newest last: what the
annotation page's undo reverts.  Undo is per user and per frame, so one person can never undo
another's work, and it survives a browser reload but not a change of user."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from endolite.storage.rows import fetch_dicts


@dataclass(frozen=True)
class MaskAction:
    id: int
    frame_id: int
    username: str
    action: str                 # create | delete | edit
    added: tuple[int, ...]      # masks the action created
    removed: tuple[int, ...]    # masks the action soft-deleted


def record(con: duckdb.DuckDBPyConnection, *, frame_id: int, username: str, action: str,
           added: Sequence[int] = (), removed: Sequence[int] = ()) -> None:
    con.execute("INSERT INTO mask_history (frame_id, username, action, added, removed) "
                "VALUES (?, ?, ?, ?, ?)",
                [frame_id, username, action, [int(i) for i in added], [int(i) for i in removed]])



def record_many(con: duckdb.DuckDBPyConnection, steps: Sequence[tuple[int, Sequence[int], Sequence[int]]], *,
                username: str, action: str) -> None:
    """One action per frame for many frames in one statement: ``steps`` ``(frame_id, added,
    removed)`` (a propagation records thousands of frames; row by row took seconds)."""
    if not steps:
        return
    con.execute("INSERT INTO mask_history (frame_id, username, action, added, removed) "
                "SELECT unnest(?), ?, ?, unnest(?), unnest(?)",
                [[int(f) for f, _, _ in steps], username, action,
                 [[int(i) for i in a] for _, a, _ in steps], [[int(i) for i in r] for _, _, r in steps]])

def last(con: duckdb.DuckDBPyConnection, *, frame_id: int, username: str) -> MaskAction | None:
    """The user's newest action on the frame that is not undone yet."""
    rows = fetch_dicts(con, "SELECT * FROM mask_history WHERE frame_id = ? AND username = ? "
                            "AND NOT undone ORDER BY id DESC LIMIT 1", [frame_id, username])
    if not rows:
        return None
    r = rows[0]
    return MaskAction(id=r["id"], frame_id=r["frame_id"], username=r["username"], action=r["action"],
                      added=tuple(r["added"]), removed=tuple(r["removed"]))


def mark_undone(con: duckdb.DuckDBPyConnection, action_id: int) -> None:
    con.execute("UPDATE mask_history SET undone = TRUE WHERE id = ?", [action_id])


def _action(r: dict) -> MaskAction:
    return MaskAction(id=r["id"], frame_id=r["frame_id"], username=r["username"], action=r["action"],
                      added=tuple(r["added"]), removed=tuple(r["removed"]))


def last_undone(con: duckdb.DuckDBPyConnection, *, frame_id: int, username: str) -> MaskAction | None:
    """The user's action on the frame that redo would re-apply: the most recently undone one,
    and only while no newer action of theirs is live (a new action after undo clears redo).
    Undo walks down the stack, so that is the lowest undone id above the newest live one."""
    rows = fetch_dicts(
        con, "SELECT * FROM mask_history WHERE frame_id = ? AND username = ? AND undone "
             "AND id > coalesce((SELECT max(id) FROM mask_history WHERE frame_id = ? "
             "AND username = ? AND NOT undone), -1) ORDER BY id ASC LIMIT 1",
        [frame_id, username, frame_id, username])
    return _action(rows[0]) if rows else None


def mark_redone(con: duckdb.DuckDBPyConnection, action_id: int) -> None:
    con.execute("UPDATE mask_history SET undone = FALSE WHERE id = ?", [action_id])
