"""Jobs: progress of long work, persisted so any page (or a restarted server) can show it.

Every job row records its ``owner``, a token of the process that created it.  DuckDB lets one
process write the file, so when a process opens the database read-write, a queued or running
job owned by another process was left behind by a process that stopped (a crash, kill -9, a
restart): ``recover`` marks those failed.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

import duckdb

from endolite.errors import NotFound
from endolite.records import Job, JobStatus
from endolite.storage.rows import dumps, fetch_dicts, loads


def _record(r: dict) -> Job:
    return Job(id=r["id"], kind=r["kind"], status=JobStatus(r["status"]), progress=r["progress"],
               message=r["message"], params=loads(r["params"]), result=loads(r["result"]),
               created_at=r["created_at"], updated_at=r["updated_at"], created_by=r["created_by"])


_OWNER: tuple[int, str] | None = None


def process_owner() -> str:
    """This process's owner token ``host:pid:random`` (a new one in a forked child).

    The random part tells a restarted server from the dead one when the PID is reused (a
    container's server often gets the same PID each time).
    """
    global _OWNER
    pid = os.getpid()
    if _OWNER is None or _OWNER[0] != pid:
        _OWNER = (pid, f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:12]}")
    return _OWNER[1]


def create(con: duckdb.DuckDBPyConnection, kind: str, *, params: dict[str, Any] | None = None,
           created_by: str | None = None) -> Job:
    row = con.execute(
        "INSERT INTO jobs (kind, status, params, created_by, owner) VALUES (?, ?, ?, ?, ?) RETURNING id",
        [kind, str(JobStatus.QUEUED), dumps(params), created_by, process_owner()],
    ).fetchone()
    return get(con, row[0])


_UNFINISHED = (str(JobStatus.QUEUED), str(JobStatus.RUNNING))


def stale(con: duckdb.DuckDBPyConnection) -> list[Job]:
    """Queued / running jobs that no live process runs: owned by another process (or by none).

    Only meaningful on a read-write connection (then no other process can be writing).
    """
    rows = fetch_dicts(con, "SELECT * FROM jobs WHERE status IN (?, ?) "
                            "AND (owner IS NULL OR owner <> ?) ORDER BY id",
                       [*_UNFINISHED, process_owner()])
    return [_record(r) for r in rows]


def interrupted_message(job: Job) -> str:
    if job.status == JobStatus.QUEUED:
        return "interrupted: the server stopped before this job started; start it again"
    return (f"interrupted: the server stopped while this job was running "
            f"(at {round(100 * job.progress)}%); start it again")


def recover(con: duckdb.DuckDBPyConnection) -> list[Job]:
    """Mark every stale job (see ``stale``) failed with an "interrupted" message.

    Returns the jobs as they are now (status failed).  A job whose status changed meanwhile is
    left alone.  Safe to call any number of times.
    """
    out = []
    for job in stale(con):
        updated = con.execute(
            "UPDATE jobs SET status = ?, message = ?, updated_at = current_localtimestamp() "
            "WHERE id = ? AND status = ? RETURNING id",
            [str(JobStatus.FAILED), interrupted_message(job), job.id, str(job.status)]).fetchall()
        if updated:
            out.append(get(con, job.id))
    return out


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


def interrupted_of(con: duckdb.DuckDBPyConnection, created_by: str, *, hours: float = 24) -> list[Job]:
    """``created_by``'s jobs that a server stop interrupted in the last ``hours``, newest first."""
    rows = fetch_dicts(con, "SELECT * FROM jobs WHERE created_by = ? AND status = 'failed' "
                            "AND starts_with(message, 'interrupted') AND updated_at >= "
                            "current_localtimestamp() - to_seconds(?) ORDER BY id DESC",
                       [created_by, float(hours) * 3600])
    return [_record(r) for r in rows]


def unfinished(con: duckdb.DuckDBPyConnection, kind: str) -> list[Job]:
    """Every queued or running job of ``kind``, newest first (however many finished since)."""
    rows = fetch_dicts(con, "SELECT * FROM jobs WHERE kind = ? AND status IN ('queued', 'running') "
                            "ORDER BY id DESC", [kind])
    return [_record(r) for r in rows]


def recent(con: duckdb.DuckDBPyConnection, *, kind: str | None = None,
           created_by: str | None = None, limit: int = 20) -> list[Job]:
    """The newest ``limit`` jobs, of ``kind`` and / or by ``created_by`` when given."""
    where, params = [], []
    if kind:
        where.append("kind = ?")
        params.append(kind)
    if created_by is not None:
        where.append("created_by = ?")
        params.append(created_by)
    sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit)
    return [_record(r) for r in fetch_dicts(con, sql, params)]
