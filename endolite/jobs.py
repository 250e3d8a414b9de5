"""Background jobs with progress persisted in the database.

``start(con, kind, work, ...)`` records a job row and runs ``work(cursor, progress)`` in a daemon
thread on its own cursor of the shared connection; ``progress(fraction, message)`` updates the
row (at most every 0.5 s), and the result dict (or the error message) is stored at the end.
Pages poll ``storage.jobs.get`` to show a progress bar.  CPU-heavy work that must not share the
server process (training) will run as a worker process instead (see DESIGN.md).

Jobs are threads, so they die with the process.  Each row records the process that owns it;
``recover_jobs`` (called by ``storage.connect`` on every read-write open) marks the queued /
running jobs of any other process failed with an "interrupted ... start it again" message.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import duckdb

from endolite.errors import EndoliteError
from endolite.records import Job, JobStatus
from endolite.storage import jobs as repo

Progress = Callable[[float, str], None]
Work = Callable[[duckdb.DuckDBPyConnection, Progress], dict[str, Any] | None]


class _Progress:
    """The job's ``progress(fraction, message)``: throttled writes (at most one every
    ``interval`` seconds, and every ``fraction >= 1``) on a cursor of its own, so progress shows
    while the work is inside a transaction.  A call the throttle holds back is written by a
    timer ``interval`` later unless a newer call came first: the message before a long silent
    phase ("storing N masks") shows instead of the last one before it.  ``close()`` stops the
    timer before the job's final status is written, so no late progress write follows it."""

    def __init__(self, con: duckdb.DuckDBPyConnection, job_id: int, *, interval: float = 0.5):
        self.cur, self.job_id, self.interval = con.cursor(), job_id, interval
        self.lock = threading.Lock()
        self.last = float("-inf")
        self.pending: tuple[float, str] | None = None
        self.timer: threading.Timer | None = None
        self.closed = False

    def __call__(self, fraction: float, message: str = "") -> None:
        with self.lock:
            if self.closed:
                return
            now = time.monotonic()
            if now - self.last >= self.interval or fraction >= 1.0:
                self._write(fraction, message, now)
                return
            self.pending = (fraction, message)
            if self.timer is None:
                self.timer = threading.Timer(self.interval - (now - self.last), self._flush)
                self.timer.daemon = True
                self.timer.start()

    def _write(self, fraction: float, message: str, now: float) -> None:   # under the lock
        self.pending, self.last = None, now
        repo.update(self.cur, self.job_id, progress=fraction, message=message)

    def _flush(self) -> None:
        with self.lock:
            self.timer = None
            if self.pending is not None and not self.closed:
                self._write(*self.pending, time.monotonic())

    def close(self) -> None:
        with self.lock:
            self.closed = True
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None


def run(con: duckdb.DuckDBPyConnection, job_id: int, work: Work) -> Job:
    """Run ``work`` for an existing job row in this thread; returns the finished job.  The
    final status (done with progress 1.0, or failed) is written after the progress writer has
    stopped: a poller never sees a progress write land after it."""
    cur = con.cursor()
    repo.update(cur, job_id, status=JobStatus.RUNNING, progress=0.0, message="started")
    progress = _Progress(con, job_id)
    try:
        result = work(cur, progress) or {}
    except EndoliteError as exc:
        progress.close()
        repo.update(cur, job_id, status=JobStatus.FAILED, message=str(exc))
    except Exception as exc:  # noqa: BLE001 - a job must record why it died
        progress.close()
        repo.update(cur, job_id, status=JobStatus.FAILED,
                    message=f"{type(exc).__name__}: {exc}",
                    result={"traceback": traceback.format_exc(limit=8)})
    else:
        progress.close()
        repo.update(cur, job_id, status=JobStatus.DONE, progress=1.0, message="done", result=result)
    return repo.get(cur, job_id)


def recover_jobs(con: duckdb.DuckDBPyConnection) -> list[Job]:
    """Mark jobs left queued / running by a stopped process failed; returns them (now failed).

    Call on a read-write connection only: DuckDB allows one writing process per file, so a
    job owned by another process cannot be running.  Jobs of this process are left alone.
    """
    return repo.recover(con)


def start(con: duckdb.DuckDBPyConnection, kind: str, work: Work, *, params: dict[str, Any] | None = None,
          created_by: str | None = None, background: bool = True) -> Job:
    """Create a job row and run ``work`` in a daemon thread (or inline when background=False)."""
    return launch(con, repo.create(con, kind, params=params, created_by=created_by), work,
                  background=background)


def launch(con: duckdb.DuckDBPyConnection, job: Job, work: Work, *, background: bool = True) -> Job:
    """Run ``work`` for the job row ``job`` (already created: a service that needs the job's id
    inside its work, or checks and creates under a lock, makes the row itself) in a daemon
    thread, or inline when ``background`` is False (then the finished job is returned)."""
    if not background:
        return run(con, job.id, work)
    threading.Thread(target=run, args=(con, job.id, work), name=f"endolite-job-{job.id}",
                     daemon=True).start()
    return job


def wait(con: duckdb.DuckDBPyConnection, job_id: int, *, timeout: float = 600.0) -> Job:
    """Poll until the job is done or failed (for the CLI and tests)."""
    deadline = time.monotonic() + timeout
    cur = con.cursor()
    while True:
        job = repo.get(cur, job_id)
        if job.status in (JobStatus.DONE, JobStatus.FAILED) or time.monotonic() > deadline:
            return job
        time.sleep(0.1)
