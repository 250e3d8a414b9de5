"""Shared helpers for repository modules: row dicts and JSON columns."""

from __future__ import annotations

import json
from typing import Any

import duckdb


def fetch_dicts(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """Run parameterised ``sql`` and return each row as a column-name -> value dict."""
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def dumps(value: Any) -> str:
    return json.dumps(value if value is not None else {}, sort_keys=True, default=str)


def loads(text: str | None) -> Any:
    return json.loads(text) if text else {}
