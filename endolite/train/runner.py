"""The app side of a training run: start the worker process, watch it, record what it writes.

The worker never opens the database (docs/TRAINING.md).  This module writes ``config.json`` and
``manifest.json`` into ``data/models/run_<id>/``, starts ``python -m endolite.train.worker
RUN_DIR`` (``nproc > 1``: ``python -m torch.distributed.run --standalone --nproc_per_node N -m
endolite.train.worker RUN_DIR``) in a process group of its own with stdout / stderr in
``worker.out``, and turns the files it writes back into database rows:

- ``sync(con, settings, run_id)``: progress.json -> status / progress / message;
  metrics.jsonl -> ``training_metrics`` (each epoch once); result.json -> the final state, best
  epoch, result and the test metrics.  A worker that is gone without a result.json is marked
  failed with the tail of its log as the error (cancelled, when a cancel was asked).
  Idempotent; when no file changed it reads one row and writes nothing.
- ``cancel``: writes the ``cancel`` file; the process group gets SIGTERM after a grace period
  if it is still alive (SIGKILL after another).
- ``recover``: for a restarted app, the runs left queued / running: recorded from result.json
  when there is one, kept (and watched) when their worker still runs on this host, else failed
  ("the worker stopped while the dashboard was down").
- ``watch``: one daemon thread per process and database that syncs the unfinished runs every
  ``interval`` seconds on a cursor of its own, and ends when none is left.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb

from endolite.config import Settings
from endolite.storage import training as repo
from endolite.storage.training import FINISHED, UNFINISHED, RunStatus, TrainingRun
from endolite.train import runstate
from endolite.train.runstate import (block_rows, epoch_rows, error_tail, finite, read_json,
                                     run_path)
from endolite.train.runstate import log_tail, tail, write_json_atomic

__all__ = ["cancel", "epoch_rows", "launch", "log_tail", "pid_alive", "prepare", "read_json",
           "recover", "stop_watchers", "sync", "tail", "watch", "worker_alive", "worker_command",
           "worker_env", "write_json_atomic"]

CONFIG, MANIFEST, PROGRESS, METRICS = "config.json", "manifest.json", "progress.json", "metrics.jsonl"
RESULT, CANCEL, HELDOUT = "result.json", "cancel", "heldout.json"
OUT = runstate.OUT
WORKER_MODULE = "endolite.train.worker"
STALE_OTHER_HOST_S = 600.0      # a worker on another host: failed when progress.json is this old

_children: dict[int, subprocess.Popen] = {}
_seen: dict[tuple[str, int], tuple[Any, ...]] = {}
_lock = threading.Lock()
_watchers: dict[str, threading.Thread] = {}
_stop = threading.Event()         # set at interpreter exit: watchers leave DuckDB before it ends


# --- the worker process -----------------------------------------------------------------------

def worker_command(folder: Path, nproc: int = 1) -> list[str]:
    if nproc > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", str(int(nproc)), "-m", WORKER_MODULE, str(folder)]
    return [sys.executable, "-m", WORKER_MODULE, str(folder)]


def worker_env(nproc: int = 1) -> dict[str, str]:
    """The environment of the worker: this one, with the endolite package importable and
    OMP_NUM_THREADS and ENDOLITE_TRAIN_THREADS = the CPUs this process may use / nproc (unless
    already set)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    threads = str(max(1, cpus // max(1, int(nproc))))
    env.setdefault("OMP_NUM_THREADS", threads)
    env.setdefault("ENDOLITE_TRAIN_THREADS", threads)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def prepare(settings: Settings, run: TrainingRun, manifest_doc: dict[str, Any]) -> Path:
    """Create the run directory with config.json (the run's config) and manifest.json."""
    folder = run_path(settings, run)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / MANIFEST, manifest_doc)
    write_json_atomic(folder / CONFIG, {**run.config, "run_id": run.id})
    return folder


def launch(con: duckdb.DuckDBPyConnection, settings: Settings, run_id: int) -> TrainingRun:
    """Start the worker of a prepared, queued run; record its pid and host (status running).
    A worker that cannot be started marks the run failed (and the error is re-raised)."""
    run = repo.get_run(con, run_id)
    folder = run_path(settings, run)
    try:
        with open(folder / OUT, "ab") as out:
            proc = subprocess.Popen(worker_command(folder, run.nproc), cwd=folder,
                                    env=worker_env(run.nproc), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        repo.update_run(con, run_id, status=RunStatus.FAILED, message="failed",
                        error=f"the worker could not be started: {exc}", finished=True)
        raise
    with _lock:
        _children[proc.pid] = proc
    repo.update_run(con, run_id, status=RunStatus.RUNNING, message="starting",
                    worker_pid=proc.pid, worker_host=socket.gethostname(), started=True,
                    only_if=[RunStatus.QUEUED])
    return repo.get_run(con, run_id)


def pid_alive(pid: int | None) -> bool:
    """Is ``pid`` a live (not zombie) training worker of this host?  Children of this process
    are polled (reaped); other PIDs are checked through /proc, and a PID reused by a process
    that is not an endolite worker counts as dead."""
    if not pid:
        return False
    with _lock:
        proc = _children.get(pid)
    if proc is not None:
        if proc.poll() is None:
            return True
        with _lock:
            _children.pop(pid, None)      # reaped: its PID may be reused from now on
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    proc_dir = Path(f"/proc/{pid}")
    try:
        state = (proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
        return WORKER_MODULE.encode() in (proc_dir / "cmdline").read_bytes()
    except (OSError, IndexError):
        return True          # no /proc: the signal said it exists


def worker_alive(run: TrainingRun, folder: Path) -> bool | None:
    """True / False when it can be told; a worker on another host: judged by the age of its
    progress.json (older than STALE_OTHER_HOST_S: gone)."""
    if run.worker_host and run.worker_host != socket.gethostname():
        try:
            age = time.time() - (folder / PROGRESS).stat().st_mtime
        except OSError:
            age = time.time() - run.updated_at.timestamp()
        return age < STALE_OTHER_HOST_S
    return pid_alive(run.worker_pid)


# --- recording what the worker wrote ----------------------------------------------------------

def _record_epochs(con: duckdb.DuckDBPyConnection, run_id: int, folder: Path) -> None:
    try:
        text = (folder / METRICS).read_text(encoding="utf-8")
    except OSError:
        return
    done = repo.recorded_epochs(con, run_id, split=None)
    for line in text.splitlines():
        try:
            record = json.loads(line)
            epoch = int(record["epoch"])
        except (ValueError, KeyError, TypeError):
            continue          # a half-written last line: read next time
        if epoch not in done:
            repo.insert_metrics(con, run_id, epoch, epoch_rows(record))
            done.add(epoch)


def _finish(con: duckdb.DuckDBPyConnection, run: TrainingRun, result: dict[str, Any],
            folder: Path) -> None:
    state = result.get("state")
    if state == "done":
        best = result.get("best_epoch")
        f1 = finite(result.get("best_val_macro_f1"))
        if result.get("test") is not None:
            repo.insert_metrics(con, run.id, int(best or 0), block_rows("test", result["test"]),
                                split="test")
        message = f"done: best epoch {best}"
        train_f1 = finite(result.get("best_train_macro_f1"))
        if f1 is not None:
            message += f", validation macro F1 {f1:.3f}"
        elif train_f1 is not None:         # no validation frames: chosen on train
            message += f", train macro F1 {train_f1:.3f} (no validation frames)"
        repo.update_run(con, run.id, status=RunStatus.DONE, progress=1.0, message=message,
                        result=result, best_epoch=None if best is None else int(best),
                        best_val_macro_f1=f1, error=None, finished=True, only_if=UNFINISHED)
    elif state == "cancelled":
        repo.update_run(con, run.id, status=RunStatus.CANCELLED, message="cancelled",
                        result=result, finished=True, only_if=UNFINISHED)
    else:
        error = str(result.get("error") or "") or error_tail(folder)
        repo.update_run(con, run.id, status=RunStatus.FAILED, message="failed", result=result,
                        error=error, finished=True, only_if=UNFINISHED)


def _gone(con: duckdb.DuckDBPyConnection, run: TrainingRun, folder: Path, why: str) -> None:
    """The worker is gone without a result.json: cancelled when a cancel was asked, else failed."""
    if (folder / CANCEL).exists():
        repo.update_run(con, run.id, status=RunStatus.CANCELLED, message="cancelled",
                        result={"state": "cancelled"}, finished=True, only_if=UNFINISHED)
        return
    repo.update_run(con, run.id, status=RunStatus.FAILED, message="failed",
                    result={"state": "failed", "error": why}, finished=True, only_if=UNFINISHED,
                    error=f"{why}\n{error_tail(folder)}")


def sync(con: duckdb.DuckDBPyConnection, settings: Settings, run_id: int) -> TrainingRun:
    """Record what the run's worker has written since the last call; returns the run as stored."""
    run = repo.get_run(con, run_id)
    if run.status in FINISHED:
        return run
    folder = run_path(settings, run)
    if run.status == RunStatus.QUEUED and not run.worker_pid:
        return run                      # not started yet (``launch`` is on its way)
    key = (str(settings.db_path), run.id)
    stamp = tuple(_stat(folder / name) for name in (PROGRESS, METRICS, RESULT))
    alive = worker_alive(run, folder)
    if _seen.get(key) == stamp and alive and stamp[2] is None:
        return run
    _record_epochs(con, run.id, folder)
    result = read_json(folder / RESULT)
    if result is None and not alive:
        result = read_json(folder / RESULT)       # written just before it exited?
    if result is not None and result.get("state") in ("done", "failed", "cancelled"):
        _record_epochs(con, run.id, folder)
        _finish(con, run, result, folder)
    elif not alive:
        _gone(con, run, folder, "the worker process stopped without a result")
    else:
        progress = read_json(folder / PROGRESS) or {}
        fraction = finite(progress.get("fraction"))
        repo.update_run(con, run.id, status=RunStatus.RUNNING,
                        progress=fraction if fraction is not None else run.progress,
                        message=str(progress.get("message") or run.message),
                        only_if=UNFINISHED)
    _seen[key] = stamp
    return repo.get_run(con, run.id)


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


# --- cancel, recover, watch -------------------------------------------------------------------

def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)              # the worker leads its own process group
    except (ProcessLookupError, PermissionError):
        pass


def _terminate_later(pid: int, grace: float) -> None:
    def stop() -> None:
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.2)
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.2)
        _signal_group(pid, signal.SIGKILL)
        pid_alive(pid)                    # reap it

    threading.Thread(target=stop, name=f"endolite-train-stop-{pid}", daemon=True).start()


def cancel(con: duckdb.DuckDBPyConnection, settings: Settings, run_id: int, *,
           grace: float = 10.0) -> TrainingRun:
    """Ask the run's worker to stop (the ``cancel`` file); its process group gets SIGTERM after
    ``grace`` seconds if it is still alive, SIGKILL ``grace`` seconds later.  A run whose worker
    never started is cancelled at once.  A finished run is returned unchanged."""
    run = repo.get_run(con, run_id)
    if run.status in FINISHED:
        return run
    folder = run_path(settings, run)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CANCEL).write_text("cancel\n", encoding="utf-8")
    if run.worker_pid and worker_alive(run, folder) and run.worker_host in (None, socket.gethostname()):
        repo.update_run(con, run.id, message="cancelling", only_if=UNFINISHED)
        _terminate_later(run.worker_pid, grace)
    elif run.worker_pid:
        sync(con, settings, run.id)       # gone already: recorded as cancelled (or its result)
    else:
        repo.update_run(con, run.id, status=RunStatus.CANCELLED, message="cancelled",
                        result={"state": "cancelled"}, finished=True, only_if=UNFINISHED)
    return repo.get_run(con, run.id)


def recover(con: duckdb.DuckDBPyConnection, settings: Settings) -> list[TrainingRun]:
    """Give every queued / running run its true state (call when an app process opens the
    database): result.json recorded; a live worker on this host kept running; otherwise failed
    ("the worker stopped while the dashboard was down" + the log's tail).  Returns the runs that
    were unfinished, as they are now."""
    out = []
    for run in repo.unfinished_runs(con):
        folder = run_path(settings, run)
        if read_json(folder / RESULT) is not None:
            out.append(sync(con, settings, run.id))
            continue
        if not run.worker_pid:
            if run.status == RunStatus.QUEUED and run.owner and run.owner == _owner():
                out.append(run)           # this process is starting it
                continue
            repo.update_run(con, run.id, status=RunStatus.FAILED, message="failed", finished=True,
                            error="the app stopped before the worker started; start the run again",
                            only_if=UNFINISHED)
        elif worker_alive(run, folder):
            sync(con, settings, run.id)
        else:
            _gone(con, run, folder, "the worker stopped while the dashboard was down")
        out.append(repo.get_run(con, run.id))
    return out


def _owner() -> str:
    from endolite.storage.jobs import process_owner

    return process_owner()


def watch(con: duckdb.DuckDBPyConnection, settings: Settings, *, interval: float = 1.0) -> bool:
    """Make sure one daemon thread of this process syncs the unfinished runs of this database
    every ``interval`` s (on its own cursor) while there are any.  Returns whether one runs.

    The thread ends when no run is left unfinished, when its connection is closed (a later
    call starts a new one), and at interpreter exit (joined by an ``atexit`` hook, so it is
    never inside DuckDB when the process ends)."""
    key = str(settings.db_path)
    with _lock:
        thread = _watchers.get(key)
        if thread is not None and thread.is_alive():
            return True
        if _stop.is_set() or not repo.unfinished_runs(con):
            return False
        thread = threading.Thread(target=_watch_loop, args=(con.cursor(), settings, interval, key),
                                  name="endolite-train-watch", daemon=True)
        _watchers[key] = thread
        thread.start()
    return True


def stop_watchers(timeout: float = 5.0, *, restartable: bool = True) -> None:
    """Stop this process's watcher threads (waits up to ``timeout`` s for each); with
    ``restartable`` a later ``watch`` may start one again (at exit: not)."""
    _stop.set()
    with _lock:
        threads = list(_watchers.values())
    for thread in threads:
        if thread is not threading.current_thread():
            thread.join(timeout)
    if restartable:
        _stop.clear()


atexit.register(stop_watchers, restartable=False)


def _watch_loop(cur: duckdb.DuckDBPyConnection, settings: Settings, interval: float, key: str) -> None:
    try:
        while not _stop.is_set():
            try:
                runs = repo.unfinished_runs(cur)
            except duckdb.Error:
                return                    # the connection was closed
            if not runs:
                with _lock:
                    if not repo.unfinished_runs(cur):
                        _watchers.pop(key, None)
                        return
                continue
            for run in runs:
                if _stop.is_set():
                    return
                try:
                    sync(cur, settings, run.id)
                except duckdb.ConnectionException:
                    return
                except Exception:  # noqa: BLE001 - one bad run must not stop the others' records
                    pass
            _stop.wait(interval)
    finally:
        with _lock:
            if _watchers.get(key) is threading.current_thread():
                _watchers.pop(key, None)
