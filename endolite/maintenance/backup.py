"""A consistent copy of a data directory while the dashboard runs (``backup``), and putting one
back into an empty data directory (``restore``).

``backup(con, settings, dest)`` works on the live connection:

1. the database, through DuckDB: ``ATTACH '<dest>/endolite.duckdb'``, ``COPY FROM DATABASE``,
   ``DETACH``.  The copy is one snapshot (one transaction): writes of other threads either
   are in it entirely or not at all.  Sequences keep their positions.
2. the files the *copied* rows refer to (frames, videos, mask PNGs, soft-deleted masks too,
   the anonymized videos and blanked frames under ``anonymized/``), read from the copy, so a file written after the snapshot is not carried as an orphan;
   then ``models/`` and ``cache/`` except ``cache/sam`` (embeddings are recomputed on demand).
   ``exports/`` (made again from the data) and ``tmp/`` are left out.
3. ``manifest.json`` last (written atomically): time, source, row counts per table, file
   count and bytes, files that rows refer to but that were missing.  A folder without it is
   an unfinished backup, and ``restore`` refuses it.

``restore(src, data_dir)`` copies a backup into a new or empty ``data_dir`` (through a
staging folder beside it that is renamed into place, so a failed restore leaves no half data
directory), opens it (migrations of a newer endolite apply; stale jobs are recovered) and runs
``check`` on it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from endolite.config import Settings
from endolite.errors import InvalidInput, StorageError
from endolite.maintenance.check import CheckReport, check

MANIFEST = "manifest.json"
DB_NAME = "endolite.duckdb"
SKIPPED_CACHE = ("sam",)            # cache/<name> folders left out (recomputed on demand)


@dataclass(frozen=True)
class BackupResult:
    """``tables``: rows per table in the copy; ``files`` / ``bytes``: files copied (the
    database not included); ``missing``: files rows refer to that were not in the data dir."""

    dest: Path
    tables: dict[str, int]
    files: int
    bytes: int
    database_bytes: int
    missing: tuple[str, ...] = ()
    seconds: float = 0.0


@dataclass(frozen=True)
class RestoreResult:
    data_dir: Path
    tables: dict[str, int]
    files: int
    bytes: int
    report: CheckReport
    manifest: dict[str, Any] = field(default_factory=dict)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _copy(source: Path, target: Path) -> int:
    """Copy one file through a temporary name beside the target; returns its size."""
    from endolite.media import copy_file_atomic

    return copy_file_atomic(source, target).stat().st_size


def _table_counts(cur: duckdb.DuckDBPyConnection, database: str) -> dict[str, int]:
    names = [r[0] for r in cur.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? ORDER BY table_name",
        [database]).fetchall()]
    return {name: int(cur.execute(f"SELECT count(*) FROM {_quote_ident(database)}.main."
                                  f"{_quote_ident(name)}").fetchone()[0]) for name in names}


def _copied_files(cur: duckdb.DuckDBPyConnection, database: str) -> list[str]:
    """The file paths (relative to the data dir) rows of the copy refer to."""
    db = _quote_ident(database)
    paths: set[str] = set()
    for path, original in cur.execute(f"SELECT path, original_path FROM {db}.main.frames").fetchall():
        paths.update(p for p in (path, original) if p)
    paths.update(r[0] for r in cur.execute(f"SELECT path FROM {db}.main.videos").fetchall())
    for mask_id, frame_id in cur.execute(f"SELECT id, frame_id FROM {db}.main.masks").fetchall():
        paths.add(f"masks/frame_{frame_id}/mask_{mask_id}.png")
    for table in ("anonymizations", "anonymized_frames"):      # anonymized/: validated copies
        paths.update(r[0] for r in cur.execute(
            f"SELECT path FROM {db}.main.{table} WHERE path IS NOT NULL").fetchall())
    return sorted(paths)


def _check_dest(settings: Settings, dest: Path) -> Path:
    dest = Path(dest).expanduser().resolve()
    data = settings.data_dir.resolve()
    if _inside(dest, data) or _inside(data, dest):
        raise InvalidInput(f"backup destination {dest}: it must lie outside the data directory {data}")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InvalidInput(f"backup destination {dest}: not empty; choose a new or empty folder")
    return dest


def backup(con: duckdb.DuckDBPyConnection, settings: Settings, dest: Path) -> BackupResult:
    """Copy the database (a DuckDB snapshot) and the files its rows use into ``dest``.

    ``dest`` must be new or empty and outside the data directory (InvalidInput otherwise).
    Works while other threads keep writing on cursors of ``con``.  OSErrors while writing
    ``dest`` (disk full, permissions) become StorageError; a failed backup has no manifest.
    """
    began = time.monotonic()
    dest = _check_dest(settings, dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        cur = con.cursor()
        source_db = cur.execute("SELECT current_database()").fetchone()[0]
        alias = f"endolite_backup_{uuid.uuid4().hex[:12]}"
        cur.execute(f"ATTACH {_quote_text(str(dest / DB_NAME))} AS {_quote_ident(alias)}")
        try:
            cur.execute(f"COPY FROM DATABASE {_quote_ident(source_db)} TO {_quote_ident(alias)}")
            tables = _table_counts(cur, alias)
            wanted = _copied_files(cur, alias)
        finally:
            cur.execute(f"DETACH {_quote_ident(alias)}")

        files = total = 0
        missing = []
        for rel in wanted:
            source = settings.absolute(rel)
            if not source.is_file():
                missing.append(rel)
                continue
            total += _copy(source, dest / rel)
            files += 1
        for top in (settings.models_dir, settings.cache_dir):
            for source in _files_below(top):
                rel = source.relative_to(settings.data_dir)
                if top == settings.cache_dir and rel.parts[1] in SKIPPED_CACHE:
                    continue
                total += _copy(source, dest / rel)
                files += 1

        database_bytes = (dest / DB_NAME).stat().st_size
        manifest = {"format": "endolite-backup", "version": 1,
                    "created_at": datetime.now().astimezone().isoformat(timespec="seconds"),
                    "source": str(settings.data_dir), "database": DB_NAME,
                    "database_bytes": database_bytes, "duckdb": duckdb.__version__,
                    "tables": tables, "files": files, "bytes": total, "missing": missing,
                    "skipped": ["cache/sam", "exports", "tmp"]}
        _write_json_atomic(dest / MANIFEST, manifest)
    except OSError as exc:
        raise StorageError(f"backup to {dest}: {_cause(exc)}; the backup is incomplete "
                           f"(no {MANIFEST}) and can be deleted") from None
    except duckdb.Error as exc:
        raise StorageError(f"backup to {dest}: the database copy failed: "
                           f"{str(exc).splitlines()[0]}; the backup is incomplete") from None
    return BackupResult(dest=dest, tables=tables, files=files, bytes=total,
                        database_bytes=database_bytes, missing=tuple(missing),
                        seconds=time.monotonic() - began)


def _files_below(folder: Path) -> list[Path]:
    """Regular files below ``folder`` (symbolic links and temporary ``.tmp-*`` files left out)."""
    out = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            if not name.startswith(".tmp-") and path.is_file() and not path.is_symlink():
                out.append(path)
    return out


def _write_json_atomic(target: Path, data: dict[str, Any]) -> None:
    tmp = target.with_name(f".tmp-{target.name}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, target)


def _cause(exc: OSError) -> str:
    from endolite.errors import describe_os_error

    text = str(describe_os_error(exc))
    return text.split("; nothing already stored")[0]


# --- restore ----------------------------------------------------------------------------------

def read_manifest(src: Path) -> dict[str, Any]:
    """The manifest of backup folder ``src``; InvalidInput when it is not a finished backup."""
    src = Path(src)
    if not src.is_dir():
        raise InvalidInput(f"restore: {src} is not a folder")
    manifest = src / MANIFEST
    if not manifest.is_file() or not (src / DB_NAME).is_file():
        raise InvalidInput(f"restore: {src} is not a finished endolite backup (it needs {MANIFEST} "
                           f"and {DB_NAME}; a backup that stopped midway has no {MANIFEST})")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"restore: {manifest} cannot be read: {exc}") from None
    if data.get("format") != "endolite-backup":
        raise InvalidInput(f"restore: {manifest} is not an endolite backup manifest")
    return data


def restore(src: Path, data_dir: Path) -> RestoreResult:
    """Copy backup ``src`` into ``data_dir`` (new or empty), open it and check it.

    Refuses (InvalidInput) a ``data_dir`` that holds anything, and a ``src`` that is not a
    finished backup.  Returns the row counts and files restored and the ``check`` report of
    the restored directory (``report.ok`` when the copy is whole).
    """
    from endolite.storage import connect

    src = Path(src).expanduser().resolve()
    data_dir = Path(data_dir).expanduser().resolve()
    manifest = read_manifest(src)
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise InvalidInput(f"restore: the data directory {data_dir} is not empty; restore into a new "
                           "or empty folder (move the current one aside first)")
    if _inside(data_dir, src) or _inside(src, data_dir):
        raise InvalidInput(f"restore: {data_dir} and the backup {src} must not contain each other")

    staging = data_dir.parent / f".{data_dir.name}.restoring-{uuid.uuid4().hex[:8]}"
    files = total = 0
    try:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
        _copy(src / DB_NAME, staging / DB_NAME)
        if (src / f"{DB_NAME}.wal").is_file():
            _copy(src / f"{DB_NAME}.wal", staging / f"{DB_NAME}.wal")
        for source in _files_below(src):
            rel = source.relative_to(src)
            if rel.as_posix() in (MANIFEST, DB_NAME) or len(rel.parts) < 2:
                continue                          # only the data dir's folders
            total += _copy(source, staging / rel)
            files += 1
        if data_dir.exists():
            data_dir.rmdir()                     # empty (checked above)
        os.replace(staging, data_dir)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise StorageError(f"restore into {data_dir}: {_cause(exc)}; nothing was restored") from None

    settings = Settings.resolve(data_dir)
    con = connect(settings)
    try:
        report = check(con, settings, grace_s=0)
        tables = _table_counts(con, con.execute("SELECT current_database()").fetchone()[0])
    finally:
        con.close()
    return RestoreResult(data_dir=data_dir, tables=tables, files=files, bytes=total, report=report,
                         manifest=manifest)


__all__ = ["BackupResult", "RestoreResult", "backup", "read_manifest", "restore"]
