"""Jobs: progress of long work, persisted so any page (or a restarted server) can show it."""

from __future__ import annotations

from typing import Any

import duckdb

from endolite.errors import NotFound
from endolite.records import Job, JobStatus
from endolite.storage.rows import dumps, fetch_dicts, loads


def _record(r: dict) -> Job:
    return Job(id=r["id"], kind=r["kind"], status=JobStatus(r["status"]), progress=r["progress"],
               message=r["message"], params=loads(r["params"]), result=loads(r["result"]),
               created_at=r["created_at"], updated_at=r["updated_at"], created_by=r["created_by"])


def create(con: duckdb.DuckDBPyConnection, kind: str, *, params: dict[str, Any] | None = None,
           created_by: str | None = None) -> Job:
    row = con.execute(
        "INSERT INTO jobs (kind, status, params, created_by) VALUES (?, ?, ?, ?) RETURNING id",
        [kind, str(JobStatus.QUEUED), dumps(params), created_by],
    ).fetchone()
    return get(con, row[0])


def update(con: duckdb.DuckDBPyConnection, job_id: int, *, status: JobStatus | None = None,
           progress: float | None = None, message: str | None = None,
           result: dict[str, Any] | None = None) -> None:
    sets, params = ["updated_at = current_localtimestamp()"], []
    if status is not None:
        sets.append("status = ?")
        params.append(str(status))
    if progress is not None:
        sets.append("progress = ?")
        params.append(float(min(max(progress, 0.0), 1.0)))
    if message is not None:
        sets.append("message = ?")
        params.append(message)
    if result is not None:
        sets.append("result = ?")
        params.append(dumps(result))
    con.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?", [*params, job_id])


def get(con: duckdb.DuckDBPyConnection, job_id: int) -> Job:
    rows = fetch_dicts(con, "SELECT * FROM jobs WHERE id = ?", [job_id])
    if not rows:
        raise NotFound(f"no job with id {job_id}")
    return _record(rows[0])


def recent(con: duckdb.DuckDBPyConnection, *, kind: str | None = None, limit: int = 20) -> list[Job]:
    sql, params = "SELECT * FROM jobs", []
    if kind:
        sql += " WHERE kind = ?"
        params.append(kind)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit)
    return [_record(r) for r in fetch_dicts(con, sql, params)]
