"""endolite.jobs progress writes: throttled, the held-back last message written by a timer
before a long silent phase, shown while the work is inside a transaction, and never after the
final status."""

from __future__ import annotations

import threading
import time

from endolite import jobs
from endolite.records import JobStatus
from endolite.storage import jobs as repo
from endolite.storage.tx import transaction


def test_the_message_before_a_long_phase_shows_and_done_is_last(con):
    seen: list[tuple[float, str]] = []
    release = threading.Event()

    def work(cur, progress):
        for i in range(50):                  # a fast walk: most calls held back
            progress(0.9 * i / 50, f"frame {i}")
        progress(0.9, "storing 50 masks")    # within 0.5 s of the last write: held back
        with transaction(cur):               # a long silent phase inside a transaction
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS t (i INT)")
            release.wait(10)
        return {"made": 50}

    job = jobs.start(con, "test", work)
    poll = con.cursor()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        row = repo.get(poll, job.id)
        seen.append((row.progress, row.message))
        if row.message == "storing 50 masks":
            break
        time.sleep(0.05)
    assert seen[-1] == (0.9, "storing 50 masks"), seen[-3:]
    release.set()
    done = jobs.wait(con, job.id, timeout=10)
    assert (done.status, done.progress, done.message) == (JobStatus.DONE, 1.0, "done")
    time.sleep(0.8)                           # no late timer write after the final status
    assert repo.get(poll, job.id).message == "done"


def test_a_failed_job_stops_its_progress_timer(con):
    def work(cur, progress):
        progress(0.1, "a")
        progress(0.2, "b")                    # held back, timer pending
        raise RuntimeError("broken")

    job = jobs.start(con, "test", work, background=False)
    assert job.status == JobStatus.FAILED and "broken" in job.message
    time.sleep(0.8)
    assert repo.get(con, job.id).message == "RuntimeError: broken"
