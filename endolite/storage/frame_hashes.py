"""Repository of cached perceptual hashes (table ``frame_phash``, migration 0007)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import duckdb

from endolite.storage.db import insert_rows


def get(con: duckdb.DuckDBPyConnection, frame_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """``frame_id -> (sha256, phash)`` of the cached rows among ``frame_ids``."""
    ids = [int(f) for f in frame_ids]
    if not ids:
        return {}
    rows = con.execute("SELECT frame_id, sha256, phash FROM frame_phash WHERE list_contains(?, frame_id)",
                       [ids]).fetchall()
    return {int(f): (str(s), str(p)) for f, s, p in rows}


def put(con: duckdb.DuckDBPyConnection, rows: Mapping[int, tuple[str, str]]) -> None:
    """Store ``frame_id -> (sha256, phash)``, replacing each frame's earlier row (one statement
    pair; the caller owns the transaction if it wants one)."""
    if not rows:
        return
    ids = [int(f) for f in rows]
    con.execute("DELETE FROM frame_phash WHERE list_contains(?, frame_id)", [ids])
    insert_rows(con, "frame_phash", [{"frame_id": int(f), "sha256": s, "phash": p}
                                     for f, (s, p) in rows.items()])
