"""Training runs and their per-epoch metrics (tables of migration 0010).

``training_runs``: one row per run; ``status`` queued -> running -> done | failed | cancelled.
JSON columns (``labels``, ``label_ids``, ``config``, ``dataset``, ``result``) are decoded in the
record.  ``run_dir`` is relative to the data directory (``models/run_<id>``).

``training_metrics``: one value per (run, epoch, split, label, metric); label ``''`` = over all
labels (loss, macro_f1, images_per_s, seconds).  ``insert_metrics`` replaces the rows of one
run and epoch (and split, when given), so recording the same epoch twice changes nothing.

The app side of training (``endolite.train.runner``) is the only writer; the worker process
never opens the database (docs/TRAINING.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import duckdb

from endolite.errors import NotFound
from endolite.storage.db import insert_rows
from endolite.storage.rows import dumps, fetch_dicts, loads


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


UNFINISHED = (RunStatus.QUEUED, RunStatus.RUNNING)
FINISHED = (RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED)


@dataclass(frozen=True)
class TrainingRun:
    """One training run.  ``labels`` / ``label_ids``: the model's outputs, in order;
    ``config``: the run's options (config.json); ``dataset``: per-split counts and warnings
    (``DatasetSummary.to_dict()``); ``result``: the worker's result.json ({} until it ends);
    ``progress`` in [0, 1]; ``worker_pid`` / ``worker_host``: the worker (or torchrun launcher)
    process; ``owner``: the app process that started it (``storage.jobs.process_owner``)."""

    id: int
    status: RunStatus
    backbone: str
    labels: tuple[str, ...]
    label_ids: tuple[int, ...]
    config: dict[str, Any]
    dataset: dict[str, Any]
    run_dir: str
    nproc: int
    worker_pid: int | None
    worker_host: str | None
    owner: str | None
    progress: float
    message: str
    error: str | None
    best_epoch: int | None
    best_val_macro_f1: float | None
    result: dict[str, Any]
    created_at: datetime
    created_by: str | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def _record(r: dict) -> TrainingRun:
    return TrainingRun(
        id=r["id"], status=RunStatus(r["status"]), backbone=r["backbone"],
        labels=tuple(loads(r["labels"]) or ()), label_ids=tuple(loads(r["label_ids"]) or ()),
        config=loads(r["config"]), dataset=loads(r["dataset"]), run_dir=r["run_dir"],
        nproc=r["nproc"], worker_pid=r["worker_pid"], worker_host=r["worker_host"],
        owner=r["owner"], progress=r["progress"], message=r["message"], error=r["error"],
        best_epoch=r["best_epoch"], best_val_macro_f1=r["best_val_macro_f1"],
        result=loads(r["result"]), created_at=r["created_at"], created_by=r["created_by"],
        started_at=r["started_at"], finished_at=r["finished_at"], updated_at=r["updated_at"])


def create_run(con: duckdb.DuckDBPyConnection, *, backbone: str, labels: Sequence[str],
               label_ids: Sequence[int], config: dict[str, Any], dataset: dict[str, Any],
               nproc: int = 1, created_by: str | None = None, owner: str | None = None) -> TrainingRun:
    """Insert a queued run; its ``run_dir`` is ``models/run_<id>`` and ``config["run_id"]`` the id."""
    run_id = int(con.execute("SELECT nextval('seq_training_runs')").fetchone()[0])
    con.execute(
        "INSERT INTO training_runs (id, status, backbone, labels, label_ids, config, dataset, "
        "run_dir, nproc, created_by, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, str(RunStatus.QUEUED), backbone, dumps(list(labels)),
         dumps([int(i) for i in label_ids]), dumps({**config, "run_id": run_id}), dumps(dataset),
         f"models/run_{run_id}", int(nproc), created_by, owner])
    return get_run(con, run_id)


def get_run(con: duckdb.DuckDBPyConnection, run_id: int) -> TrainingRun:
    rows = fetch_dicts(con, "SELECT * FROM training_runs WHERE id = ?", [int(run_id)])
    if not rows:
        raise NotFound(f"no training run with id {run_id}")
    return _record(rows[0])


def list_runs(con: duckdb.DuckDBPyConnection, *, status: Iterable[RunStatus | str] | None = None,
              limit: int = 200) -> list[TrainingRun]:
    """Runs, newest first; ``status``: only runs in these states."""
    sql, params = "SELECT * FROM training_runs", []
    if status is not None:
        sql += " WHERE list_contains(?, status)"
        params.append([str(s) for s in status])
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(int(limit))
    return [_record(r) for r in fetch_dicts(con, sql, params)]


def unfinished_runs(con: duckdb.DuckDBPyConnection) -> list[TrainingRun]:
    """Queued or running runs, oldest first."""
    return list(reversed(list_runs(con, status=UNFINISHED, limit=10_000)))


_UNSET: Any = object()


def update_run(con: duckdb.DuckDBPyConnection, run_id: int, *, status: RunStatus | str | None = None,
               progress: float | None = None, message: str | None = None, error: str | None = _UNSET,
               result: dict[str, Any] | None = None, best_epoch: int | None = _UNSET,
               best_val_macro_f1: float | None = _UNSET, worker_pid: int | None = _UNSET,
               worker_host: str | None = _UNSET, started: bool = False, finished: bool = False,
               only_if: Iterable[RunStatus | str] | None = None) -> bool:
    """Change the named columns (``started`` / ``finished``: set started_at / finished_at to
    now).  ``only_if``: change nothing unless the run's status is one of these (so a final state
    is never overwritten by a late writer).  Returns whether a row changed."""
    sets, params = ["updated_at = current_localtimestamp()"], []
    for column, value, convert in (
            ("status", status, str), ("progress", progress, lambda v: float(min(max(v, 0.0), 1.0))),
            ("message", message, str), ("result", result, dumps)):
        if value is not None:
            sets.append(f"{column} = ?")
            params.append(convert(value))
    for column, value in (("error", error), ("best_epoch", best_epoch),
                          ("best_val_macro_f1", best_val_macro_f1), ("worker_pid", worker_pid),
                          ("worker_host", worker_host)):
        if value is not _UNSET:
            sets.append(f"{column} = ?")
            params.append(value)
    if started:
        sets.append("started_at = current_localtimestamp()")
    if finished:
        sets.append("finished_at = current_localtimestamp()")
    sql = f"UPDATE training_runs SET {', '.join(sets)} WHERE id = ?"
    params.append(int(run_id))
    if only_if is not None:
        sql += " AND list_contains(?, status)"
        params.append([str(s) for s in only_if])
    return bool(con.execute(sql + " RETURNING id", params).fetchall())


# --- metrics ----------------------------------------------------------------------------------

MetricRow = tuple[str, str, str, float | None]     # (split, label, metric, value)


def insert_metrics(con: duckdb.DuckDBPyConnection, run_id: int, epoch: int,
                   rows: Iterable[MetricRow], *, split: str | None = None) -> int:
    """Store one epoch's metric rows ``(split, label, metric, value)`` of a run, replacing what
    that run and epoch had (only the rows of ``split`` when given).  Returns the row count.
    Non-finite values are stored as NULL (undefined)."""
    import math

    rows = [(s, lab, m, None if v is None or not math.isfinite(float(v)) else float(v))
            for s, lab, m, v in rows]
    if split is None:
        con.execute("DELETE FROM training_metrics WHERE run_id = ? AND epoch = ?", [run_id, epoch])
    else:
        con.execute("DELETE FROM training_metrics WHERE run_id = ? AND epoch = ? AND split = ?",
                    [run_id, epoch, split])
    insert_rows(con, "training_metrics", [
        {"run_id": int(run_id), "epoch": int(epoch), "split": s, "label": lab, "metric": m,
         "value": v} for s, lab, m, v in rows])
    return len(rows)


def recorded_epochs(con: duckdb.DuckDBPyConnection, run_id: int, *, split: str | None = "val") -> set[int]:
    """Epochs of the run that have metric rows (of ``split``; None: of any split)."""
    sql, params = "SELECT DISTINCT epoch FROM training_metrics WHERE run_id = ?", [int(run_id)]
    if split is not None:
        sql += " AND split = ?"
        params.append(split)
    return {int(r[0]) for r in con.execute(sql, params).fetchall()}


def metrics(con: duckdb.DuckDBPyConnection, run_id: int, *, split: str | None = None,
            label: str | None = None, metric: str | None = None) -> list[dict[str, Any]]:
    """Metric rows ``{"epoch", "split", "label", "metric", "value"}`` of a run (value None =
    undefined), ordered by epoch, split, label, metric; optional filters."""
    sql, params = ("SELECT epoch, split, label, metric, value FROM training_metrics "
                   "WHERE run_id = ?"), [int(run_id)]
    for column, value in (("split", split), ("label", label), ("metric", metric)):
        if value is not None:
            sql += f" AND {column} = ?"
            params.append(value)
    return fetch_dicts(con, sql + " ORDER BY epoch, split, label, metric", params)
