"""Administrator settings kept in the database (``app_settings``: key -> JSON value)."""

from __future__ import annotations

from typing import Any

import duckdb

from endolite.storage.rows import dumps, loads


def get(con: duckdb.DuckDBPyConnection, key: str, default: Any = None) -> Any:
    row = con.execute("SELECT value FROM app_settings WHERE key = ?", [key]).fetchone()
    return default if row is None else loads(row[0])


def put(con: duckdb.DuckDBPyConnection, key: str, value: Any, *, by: str | None) -> None:
    con.execute("INSERT OR REPLACE INTO app_settings (key, value, updated_at, updated_by) "
                "VALUES (?, ?, current_localtimestamp(), ?)", [key, dumps(value), by])
