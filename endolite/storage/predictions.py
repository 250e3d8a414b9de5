"""Model predictions: prediction sets (one pass of a run over a video or image group), the
probability of each predicted frame and label, the segments found in a set, and what people
decided about a model's suggestions (``model_decisions``), and the labels suggested on a frame.
``services.predictions`` writes them; the Training page, the annotation page and the timeline
read them.

Frame numbers are the video's decoded frame index (0-based) or an image-group frame's number;
segments are ``[start_frame, end_frame)`` (end exclusive).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import numpy as np

from endolite.errors import InvalidInput, NotFound
from endolite.storage.db import insert_rows
from endolite.storage.rows import fetch_dicts


@dataclass(frozen=True)
class PredictionSet:
    """A pass of run ``run_id`` over a video (every ``every``-th frame) or an image group.
    ``frames``: rows predicted; ``fps``: rows per second the pass ran at; ``precision``: the
    inference form (float32, bfloat16+cl, ...)."""

    id: int
    run_id: int
    video_id: int | None
    group_id: int | None
    every: int
    frames: int
    fps: float | None
    precision: str | None
    job_id: int | None
    created_at: datetime | None
    created_by: str | None


@dataclass(frozen=True)
class PredictedSegment:
    """A segment the model proposes: ``[start_frame, end_frame)`` of label ``label_id`` (name
    ``label``).  ``status``: proposed | accepted | rejected; ``segment_id``: the real segment an
    acceptance created."""

    id: int
    set_id: int
    run_id: int
    video_id: int
    label_id: int
    label: str
    start_frame: int
    end_frame: int
    mean_probability: float
    status: str
    segment_id: int | None
    decided_by: str | None
    decided_at: datetime | None


@dataclass(frozen=True)
class Track:
    """A set's probabilities as arrays: ``frame_numbers`` int64 ``(N,)`` increasing,
    ``frame_ids`` int64 ``(N,)`` (-1 where no extracted frame), ``label_ids`` the column order,
    ``labels`` their names, ``probs`` float32 ``(N, L)``."""

    frame_numbers: np.ndarray
    frame_ids: np.ndarray
    label_ids: tuple[int, ...]
    labels: tuple[str, ...]
    probs: np.ndarray


def _set(r: dict) -> PredictionSet:
    return PredictionSet(id=r["id"], run_id=r["run_id"], video_id=r["video_id"],
                         group_id=r["group_id"], every=r["every"], frames=r["frames"], fps=r["fps"],
                         precision=r["precision"], job_id=r["job_id"], created_at=r["created_at"],
                         created_by=r["created_by"])


def _where(video_id: int | None, group_id: int | None) -> tuple[str, list[Any]]:
    if (video_id is None) == (group_id is None):
        raise InvalidInput("name exactly one of a video id or an image group id")
    return ("video_id = ?", [video_id]) if video_id is not None else ("group_id = ?", [group_id])


def create_set(con: duckdb.DuckDBPyConnection, *, run_id: int, video_id: int | None = None,
               group_id: int | None = None, every: int = 1, job_id: int | None = None,
               created_by: str | None = None) -> PredictionSet:
    _where(video_id, group_id)
    set_id = con.execute(
        "INSERT INTO prediction_sets (run_id, video_id, group_id, every, job_id, created_by) "
        "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        [run_id, video_id, group_id, every, job_id, created_by]).fetchone()[0]
    return get_set(con, set_id)


def finish_set(con: duckdb.DuckDBPyConnection, set_id: int, *, frames: int, fps: float | None,
               precision: str | None) -> PredictionSet:
    con.execute("UPDATE prediction_sets SET frames = ?, fps = ?, precision = ? WHERE id = ?",
                [frames, fps, precision, set_id])
    return get_set(con, set_id)


def get_set(con: duckdb.DuckDBPyConnection, set_id: int) -> PredictionSet:
    rows = fetch_dicts(con, "SELECT * FROM prediction_sets WHERE id = ?", [set_id])
    if not rows:
        raise NotFound(f"no prediction set with id {set_id}")
    return _set(rows[0])


def sets_of(con: duckdb.DuckDBPyConnection, *, video_id: int | None = None,
            group_id: int | None = None, run_id: int | None = None) -> list[PredictionSet]:
    """Sets of a video / image group (newest first), optionally of one run."""
    where, params = _where(video_id, group_id)
    if run_id is not None:
        where += " AND run_id = ?"
        params.append(run_id)
    return [_set(r) for r in fetch_dicts(
        con, f"SELECT * FROM prediction_sets WHERE {where} ORDER BY id DESC", params)]


def latest_set(con: duckdb.DuckDBPyConnection, *, video_id: int | None = None,
               group_id: int | None = None, run_id: int | None = None) -> PredictionSet | None:
    """The newest set of a video / image group (of one run when given), None if there is none."""
    found = sets_of(con, video_id=video_id, group_id=group_id, run_id=run_id)
    return found[0] if found else None


def insert_predictions(con: duckdb.DuckDBPyConnection, pset: PredictionSet, *,
                       frame_numbers: np.ndarray, frame_ids: np.ndarray, label_ids: list[int],
                       probs: np.ndarray) -> int:
    """Store ``probs`` float ``(N, L)`` (column ``j`` = ``label_ids[j]``) for the rows'
    ``frame_numbers`` ``(N,)`` and ``frame_ids`` ``(N,)`` (-1 / None = no extracted frame), source
    'model'.  Returns the number of rows stored (N * L)."""
    probs = np.asarray(probs, dtype=np.float32)
    nums = np.asarray(frame_numbers, dtype=np.int64).reshape(-1)
    ids = np.asarray([-1 if f is None else f for f in frame_ids], dtype=np.int64).reshape(-1)
    if probs.shape != (nums.size, len(label_ids)) or ids.size != nums.size:
        raise InvalidInput(f"predictions: probabilities {probs.shape} do not match "
                           f"{nums.size} frames x {len(label_ids)} labels")
    rows = [{"set_id": pset.id, "run_id": pset.run_id, "video_id": pset.video_id,
             "group_id": pset.group_id, "frame_number": int(n),
             "frame_id": None if f < 0 else int(f), "label_id": int(lid),
             "probability": float(probs[i, j]), "source": "model"}
            for i, (n, f) in enumerate(zip(nums, ids)) for j, lid in enumerate(label_ids)]
    insert_rows(con, "predictions", rows)
    return len(rows)


def track(con: duckdb.DuckDBPyConnection, set_id: int) -> Track:
    """The set's probabilities as arrays (see ``Track``); labels in label-id order.  A set
    without rows gives empty arrays."""
    cols = con.execute(
        "SELECT p.frame_number, coalesce(p.frame_id, -1) AS frame_id, p.label_id, p.probability "
        "FROM predictions p WHERE p.set_id = ?", [set_id]).fetchnumpy()
    if len(cols["frame_number"]) == 0:
        return Track(np.zeros(0, np.int64), np.zeros(0, np.int64), (), (),
                     np.zeros((0, 0), np.float32))
    numbers, row = np.unique(np.asarray(cols["frame_number"], np.int64), return_inverse=True)
    label_ids, col = np.unique(np.asarray(cols["label_id"], np.int64), return_inverse=True)
    probs = np.full((numbers.size, label_ids.size), np.nan, dtype=np.float32)
    probs[row, col] = np.asarray(cols["probability"], np.float32)
    frame_ids = np.full(numbers.size, -1, dtype=np.int64)
    np.maximum.at(frame_ids, row, np.asarray(cols["frame_id"], np.int64))
    names = dict(con.execute("SELECT id, name FROM labels WHERE list_contains(?, id)",
                             [label_ids.tolist()]).fetchall())
    return Track(numbers, frame_ids, tuple(int(i) for i in label_ids),
                 tuple(names.get(int(i), str(i)) for i in label_ids), probs)


def frame_predictions(con: duckdb.DuckDBPyConnection, frame_id: int) -> list[dict[str, Any]]:
    """Every stored prediction of one extracted frame, newest set first: dicts with set_id,
    run_id, label_id, label, probability."""
    return fetch_dicts(con, """
        SELECT p.set_id, p.run_id, p.label_id, l.name AS label, p.probability
        FROM predictions p JOIN labels l ON l.id = p.label_id
        WHERE p.frame_id = ? ORDER BY p.set_id DESC, p.label_id""", [frame_id])


# --- predicted segments ---------------------------------------------------------------------

_PS_SELECT = ("SELECT ps.*, l.name AS label FROM predicted_segments ps "
              "JOIN labels l ON l.id = ps.label_id")


def _pseg(r: dict) -> PredictedSegment:
    return PredictedSegment(id=r["id"], set_id=r["set_id"], run_id=r["run_id"],
                            video_id=r["video_id"], label_id=r["label_id"], label=r["label"],
                            start_frame=r["start_frame"], end_frame=r["end_frame"],
                            mean_probability=r["mean_probability"], status=r["status"],
                            segment_id=r["segment_id"], decided_by=r["decided_by"],
                            decided_at=r["decided_at"])


def insert_predicted_segments(con: duckdb.DuckDBPyConnection, pset: PredictionSet,
                              rows: list[dict[str, Any]]) -> int:
    """Store proposed segments: dicts with label_id, start_frame, end_frame, mean_probability."""
    insert_rows(con, "predicted_segments", [
        {"set_id": pset.id, "run_id": pset.run_id, "video_id": pset.video_id,
         "label_id": int(r["label_id"]), "start_frame": int(r["start_frame"]),
         "end_frame": int(r["end_frame"]), "mean_probability": float(r["mean_probability"]),
         "status": "proposed"} for r in rows])
    return len(rows)


def predicted_segments(con: duckdb.DuckDBPyConnection, set_id: int, *,
                       status: str | None = None) -> list[PredictedSegment]:
    """A set's predicted segments in frame order (optionally of one status)."""
    sql, params = _PS_SELECT + " WHERE ps.set_id = ?", [set_id]
    if status is not None:
        sql += " AND ps.status = ?"
        params.append(status)
    return [_pseg(r) for r in fetch_dicts(con, sql + " ORDER BY ps.start_frame, ps.label_id, ps.id",
                                          params)]


def get_predicted_segment(con: duckdb.DuckDBPyConnection, predicted_id: int) -> PredictedSegment:
    rows = fetch_dicts(con, _PS_SELECT + " WHERE ps.id = ?", [predicted_id])
    if not rows:
        raise NotFound(f"no predicted segment with id {predicted_id}")
    return _pseg(rows[0])


def decide_predicted_segment(con: duckdb.DuckDBPyConnection, predicted_id: int, *, status: str,
                             decided_by: str, segment_id: int | None = None) -> PredictedSegment:
    if status not in ("accepted", "rejected"):
        raise InvalidInput(f"predicted segment status {status!r}: use accepted or rejected")
    con.execute("UPDATE predicted_segments SET status = ?, segment_id = ?, decided_by = ?, "
                "decided_at = current_localtimestamp() WHERE id = ?",
                [status, segment_id, decided_by, predicted_id])
    return get_predicted_segment(con, predicted_id)


# --- suggestions and decisions on them ------------------------------------------------------

def record_decision(con: duckdb.DuckDBPyConnection, *, kind: str, run_id: int, frame_id: int,
                    label_id: int, decision: str, decided_by: str) -> None:
    """One person's decision on a model's suggestion (kind 'suggestion': accepted | rejected;
    'mislabel': confirmed | dismissed)."""
    con.execute("INSERT INTO model_decisions (kind, run_id, frame_id, label_id, decision, decided_by) "
                "VALUES (?, ?, ?, ?, ?, ?)", [kind, run_id, frame_id, label_id, decision, decided_by])


def decisions_of(con: duckdb.DuckDBPyConnection, frame_id: int, *, kind: str = "suggestion",
                 decided_by: str | None = None) -> list[dict[str, Any]]:
    """Decisions on one frame (oldest first): dicts with kind, run_id, frame_id, label_id,
    decision, decided_by, decided_at."""
    sql = "SELECT * FROM model_decisions WHERE frame_id = ? AND kind = ?"
    params: list[Any] = [frame_id, kind]
    if decided_by is not None:
        sql += " AND decided_by = ?"
        params.append(decided_by)
    return fetch_dicts(con, sql + " ORDER BY decided_at, label_id", params)


def suggested_labels(con: duckdb.DuckDBPyConnection, frame_id: int, *, threshold: float,
                     user: str | None = None) -> list[dict[str, Any]]:
    """Labels predicted at or above ``threshold`` on an extracted frame, most probable first
    (ties by label id): dicts with set_id, run_id, label_id, label, probability (the highest of
    the frame's rows for that label), all from the newest set holding this frame of the most
    recent *done* run that predicted it.  With ``user``: without the labels that user decided
    (``model_decisions`` kind 'suggestion') for that run or set as a frame label (any value).
    No predictions: an empty list."""
    rows = fetch_dicts(con, """
        WITH latest AS (
            SELECT p.set_id, p.run_id FROM predictions p
            JOIN training_runs r ON r.id = p.run_id AND r.status = 'done'
            WHERE p.frame_id = ? ORDER BY p.run_id DESC, p.set_id DESC LIMIT 1)
        SELECT p.set_id, p.run_id, p.label_id, l.name AS label, max(p.probability) AS probability
        FROM predictions p JOIN latest ON latest.set_id = p.set_id
        JOIN labels l ON l.id = p.label_id
        WHERE p.frame_id = ? AND p.probability >= ?
        GROUP BY ALL ORDER BY probability DESC, p.label_id""",
        [frame_id, frame_id, threshold])
    if user is None or not rows:
        return rows
    decided = {(d["run_id"], d["label_id"])
               for d in decisions_of(con, frame_id, kind="suggestion", decided_by=user)}
    labelled = {r[0] for r in con.execute(
        "SELECT label_id FROM frame_labels WHERE frame_id = ? AND annotator = ?",
        [frame_id, user]).fetchall()}
    return [r for r in rows if (r["run_id"], r["label_id"]) not in decided
            and r["label_id"] not in labelled]
