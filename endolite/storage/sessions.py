"""Browser sessions (``sessions``, migration 0009): the sha256 of each session token, never the
token itself; who, from where, when last seen, when it expires, whether and why it was revoked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from endolite.storage.rows import fetch_dicts

_COLUMNS = "id, user_id, client, created_at, last_seen, expires_at, revoked_at, revoked_why"


@dataclass(frozen=True)
class SessionRow:
    id: int
    user_id: int
    client: str
    created_at: datetime
    last_seen: datetime
    expires_at: datetime
    revoked_at: datetime | None
    revoked_why: str | None


def _row(r: dict) -> SessionRow:
    return SessionRow(**r)


def add(con: duckdb.DuckDBPyConnection, *, token_sha256: str, user_id: int, client: str,
        expires_at: datetime) -> int:
    row = con.execute("INSERT INTO sessions (token_sha256, user_id, client, expires_at) "
                      "VALUES (?, ?, ?, ?) RETURNING id",
                      [token_sha256, user_id, client, expires_at]).fetchone()
    return int(row[0])


def get(con: duckdb.DuckDBPyConnection, session_id: int) -> SessionRow | None:
    rows = fetch_dicts(con, f"SELECT {_COLUMNS} FROM sessions WHERE id = ?", [session_id])
    return _row(rows[0]) if rows else None


def by_digest(con: duckdb.DuckDBPyConnection, token_sha256: str) -> SessionRow | None:
    rows = fetch_dicts(con, f"SELECT {_COLUMNS} FROM sessions WHERE token_sha256 = ?", [token_sha256])
    return _row(rows[0]) if rows else None


def touch(con: duckdb.DuckDBPyConnection, session_id: int) -> None:
    con.execute("UPDATE sessions SET last_seen = current_localtimestamp() WHERE id = ?", [session_id])


def revoke(con: duckdb.DuckDBPyConnection, session_id: int, *, why: str) -> bool:
    """Revoke one live session; False when it was already revoked or is unknown."""
    row = con.execute("UPDATE sessions SET revoked_at = current_localtimestamp(), revoked_why = ? "
                      "WHERE id = ? AND revoked_at IS NULL RETURNING id", [why, session_id]).fetchall()
    return bool(row)


def revoke_user(con: duckdb.DuckDBPyConnection, user_id: int, *, why: str,
                keep: int | None = None) -> int:
    """Revoke every live session of ``user_id`` (except ``keep``); the number revoked."""
    rows = con.execute("UPDATE sessions SET revoked_at = current_localtimestamp(), revoked_why = ? "
                       "WHERE user_id = ? AND revoked_at IS NULL AND id IS DISTINCT FROM ? "
                       "RETURNING id", [why, user_id, keep]).fetchall()
    return len(rows)
