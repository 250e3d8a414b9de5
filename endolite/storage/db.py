"""The DuckDB connection and the numbered migrations.

One read-write connection per process (DuckDB lets only one process write a file).  Threads
share it through ``con.cursor()``.  Migrations ``migrations/NNNN_name.sql`` are applied in
order at connect time and recorded in ``schema_version``; an applied file is never edited.

Opening read-write also recovers from a stopped process (see ``connect``): jobs it left
queued / running are marked failed, and ``tmp/`` (staging folders, partial files) is emptied.
"""

from __future__ import annotations

import errno
import re
import shutil
import threading
import weakref
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from endolite.config import Settings
from endolite.errors import DatabaseBusy, StorageError
from endolite.records import Job

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


@dataclass(frozen=True)
class Recovery:
    """What a read-write open cleaned up after a stopped process."""

    jobs: tuple[Job, ...] = ()            # jobs marked failed ("interrupted")
    tmp_removed: tuple[str, ...] = ()     # entries of tmp/ removed (paths relative to the data dir)


_lock = threading.Lock()
_open_connections: dict[Path, list[weakref.ref]] = {}
_recoveries: dict[Path, Recovery] = {}

# strerror texts DuckDB puts in its IO errors -> the cause a person can act on
_CAUSES = (
    ("no space left", "the disk is full"),
    ("disk quota", "the disk quota is exhausted"),
    ("file too large", "a file size limit was reached (disk full or RLIMIT_FSIZE)"),
    ("read-only file system", "the data directory is on a read-only file system"),
    ("permission denied", "permission denied: the data directory is not writable by this process"),
    ("operation not permitted", "operation not permitted on the data directory"),
)


def _storage_error(settings: Settings, exc: BaseException, doing: str) -> StorageError:
    """A StorageError naming the database file and the cause of a DuckDB / OS error."""
    text = str(exc)
    lower = text.lower()
    cause = next((c for key, c in _CAUSES if key in lower), None)
    if cause is None and isinstance(exc, OSError):
        cause = {errno.ENOSPC: "the disk is full", errno.EFBIG: _CAUSES[2][1],
                 errno.EROFS: _CAUSES[3][1], errno.EACCES: _CAUSES[4][1]}.get(exc.errno)
    if cause is None:
        cause = text.splitlines()[0] if text else type(exc).__name__
    return StorageError(f"the database {settings.db_path} {doing}: {cause}")


def _busy(settings: Settings, text: str) -> DatabaseBusy:
    pid = _LOCK_PID.search(text)
    holder = f"process {pid.group(1)}" if pid else "another process"
    return DatabaseBusy(
        f"The database {settings.db_path} is in use by {holder} (usually the running "
        "endolite dashboard; DuckDB allows one writing process). Stop that process, or "
        "do this from the dashboard."
    )


def connect(settings: Settings, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the data directory's database (creating directories and schema as needed).

    Read-write, after the migrations: jobs another (stopped) process left queued / running
    are marked failed (``endolite.jobs.recover_jobs``), and, when no other connection of this
    process has the file open, every entry of ``tmp/`` is removed (staging folders and
    partial files are never valid after a restart).  ``last_recovery(settings)`` says what
    was done.

    Raises DatabaseBusy with the holder's PID when another process has the file open, and
    StorageError naming the database file and the cause when it cannot be opened or written
    (permission denied, read-only file system, disk full, file size limit, not a database).
    """
    settings.ensure_dirs()
    try:
        con = duckdb.connect(str(settings.db_path), read_only=read_only)
    except duckdb.Error as exc:
        text = str(exc)
        if isinstance(exc, duckdb.IOException) and "lock" in text.lower():
            raise _busy(settings, text) from None
        raise _storage_error(settings, exc, "cannot be opened"
                             + ("" if read_only else " for writing")) from None
    if read_only:
        return con
    try:
        migrate(con)
        _recover(con, settings)
    except (duckdb.Error, OSError) as exc:
        con.close()
        raise _storage_error(settings, exc, "cannot be written") from None
    return con


def _recover(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    from endolite.jobs import recover_jobs

    key = settings.db_path
    with _lock:
        refs = [r for r in _open_connections.get(key, []) if r() is not None]
        first = not refs                 # no connection of this process holds the file
        refs.append(weakref.ref(con))
        _open_connections[key] = refs
    jobs = recover_jobs(con)
    removed = clear_tmp(settings) if first else []
    if jobs or removed:
        from endolite.storage import audit

        audit.record(con, username=None, action="recover", entity="job",
                     entity_id=jobs[0].id if len(jobs) == 1 else None,
                     details={"interrupted_jobs": [j.id for j in jobs],
                              "tmp_removed": len(removed)})
    _recoveries[key] = Recovery(jobs=tuple(jobs), tmp_removed=tuple(removed))


def last_recovery(settings: Settings) -> Recovery | None:
    """What the latest read-write ``connect`` of this process to the data dir cleaned up."""
    return _recoveries.get(settings.db_path)


def clear_tmp(settings: Settings) -> list[str]:
    """Remove every entry of ``tmp/`` (not the folder); returns them relative to the data dir.

    Only for when nothing of this process is staging there (``connect`` calls it on the
    first open of a process).  Symbolic links are removed, never followed.
    """
    folder = settings.tmp_dir
    removed = []
    if not folder.is_dir():
        return removed
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        if not entry.exists() and not entry.is_symlink():
            removed.append(f"{folder.name}/{entry.name}")
    return removed


SMALL_INSERT = 32     # up to this many rows: one parameterised INSERT ... VALUES (no DataFrame)


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert rows: a few through one parameterised ``INSERT ... VALUES`` (a DataFrame costs
    ~15 ms to build, most of a single mask save), many in bulk through a DataFrame (hundreds of
    times faster than executemany).

    ``table`` is an internal constant, never user input; every row has the same keys.
    """
    if not rows:
        return
    if len(rows) <= SMALL_INSERT:
        names = list(rows[0])
        one = "(" + ", ".join("?" * len(names)) + ")"
        con.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES " + ", ".join([one] * len(rows)),
                    [row[name] for row in rows for name in names])
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
