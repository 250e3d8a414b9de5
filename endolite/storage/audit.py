"""Audit log: who imported, extracted, deleted, exported what, and when."""

from __future__ import annotations

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


def recent(con: duckdb.DuckDBPyConnection, *, limit: int = 100, action: str | None = None) -> list[AuditEntry]:
    sql = "SELECT * FROM audit_log"
    params: list[Any] = []
    if action:
        sql += " WHERE action = ?"
        params.append(action)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit)
    return [AuditEntry(id=r["id"], at=r["created_at"], username=r["username"], action=r["action"],
                       entity=r["entity"], entity_id=r["entity_id"], details=loads(r["details"]))
            for r in fetch_dicts(con, sql, params)]
