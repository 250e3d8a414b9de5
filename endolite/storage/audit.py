"""Audit log: who did what to which records, and when; refusals and failed logins too."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from endolite.records import AuditEntry
from endolite.storage.rows import dumps, fetch_dicts, loads


def record(con: duckdb.DuckDBPyConnection, *, username: str | None, action: str, entity: str,
           entity_id: int | None = None, details: dict[str, Any] | None = None) -> None:
    con.execute(
        "INSERT INTO audit_log (username, action, entity, entity_id, details) VALUES (?, ?, ?, ?, ?)",
        [username, action, entity, entity_id, dumps(details)],
    )


def _entry(r: dict) -> AuditEntry:
    return AuditEntry(id=r["id"], at=r["created_at"], username=r["username"], action=r["action"],
                      entity=r["entity"], entity_id=r["entity_id"], details=loads(r["details"]))


def search(con: duckdb.DuckDBPyConnection, *, username: str | None = None, action: str | None = None,
           entity: str | None = None, since: datetime | None = None, until: datetime | None = None,
           limit: int = 200, offset: int = 0) -> list[AuditEntry]:
    """Newest first; ``action`` matches exactly or as a prefix ending in '.' ("mask." = all mask
    actions)."""
    sql, params = "SELECT * FROM audit_log WHERE TRUE", []
    if username:
        sql += " AND username = ?"
        params.append(username)
    if action:
        if action.endswith("."):
            sql += " AND starts_with(action, ?)"
        else:
            sql += " AND action = ?"
        params.append(action)
    if entity:
        sql += " AND entity = ?"
        params.append(entity)
    if since is not None:
        sql += " AND created_at >= ?"
        params.append(since)
    if until is not None:
        sql += " AND created_at < ?"
        params.append(until)
    sql += " ORDER BY id DESC LIMIT ? OFFSET ?"
    params += [int(limit), int(offset)]
    return [_entry(r) for r in fetch_dicts(con, sql, params)]


def recent(con: duckdb.DuckDBPyConnection, *, limit: int = 100, action: str | None = None) -> list[AuditEntry]:
    return search(con, action=action, limit=limit)


def actions(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT DISTINCT action FROM audit_log ORDER BY 1").fetchall()]
