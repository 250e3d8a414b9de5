"""The DuckDB connection and the numbered migrations.

One read-write connection per process (DuckDB lets only one process write a file).  Threads
share it through ``con.cursor()``.  Migrations ``migrations/NNNN_name.sql`` are applied in
order at connect time and recorded in ``schema_version``; an applied file is never edited.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import duckdb

from endolite.config import Settings
from endolite.errors import DatabaseBusy

_LOCK_PID = re.compile(r"PID (\d+)")


def _migrations() -> list[tuple[int, str, str]]:
    """(version, file name, sql) for every packaged migration, in version order."""
    folder = resources.files("endolite.storage") / "migrations"
    out = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_[\w-]+\.sql", entry.name)
        if match:
            out.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(out)


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply the migrations not yet recorded; return the versions applied now."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
        "name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp())"
    )
    done = {row[0] for row in con.execute("SELECT version FROM schema_version").fetchall()}
    applied = []
    for version, name, sql in _migrations():
        if version in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            con.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)", [version, name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied


def connect(settings: Settings, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the data directory's database (creating directories and schema as needed).

    Raises DatabaseBusy with the holder's PID when another process has the file open.
    """
    settings.ensure_dirs()
    try:
        con = duckdb.connect(str(settings.db_path), read_only=read_only)
    except duckdb.IOException as exc:
        text = str(exc)
        if "lock" in text.lower():
            pid = _LOCK_PID.search(text)
            holder = f"process {pid.group(1)}" if pid else "another process"
            raise DatabaseBusy(
                f"The database {settings.db_path} is in use by {holder} (usually the running "
                "endolite dashboard; DuckDB allows one writing process). Stop that process, or "
                "do this from the dashboard."
            ) from None
        raise
    if not read_only:
        migrate(con)
    return con


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]]) -> None:
    """Bulk insert through a DataFrame (hundreds of times faster than executemany).

    ``table`` is an internal constant, never user input; every row has the same keys.
    """
    if not rows:
        return
    import pandas as pd

    frame = pd.DataFrame(rows)
    columns = ", ".join(frame.columns)
    con.register("_endolite_rows", frame)
    try:
        con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _endolite_rows")
    finally:
        con.unregister("_endolite_rows")


def reserve_ids(con: duckdb.DuckDBPyConnection, sequence: str, count: int) -> list[int]:
    """Take ``count`` ids from a sequence (so files can be named before rows are inserted)."""
    if count <= 0:
        return []
    rows = con.execute(f"SELECT nextval('{sequence}') FROM range(?)", [count]).fetchall()
    return [int(r[0]) for r in rows]
