"""Review decisions on likely mislabels: ``model_decisions`` rows of kind ``'mislabel'``.

A lead marks a (run, frame, label) the model disputes as ``confirmed`` (the annotation is wrong)
or ``dismissed`` (the annotation stands).  One live decision per (run, frame, label): a new
decision replaces the old one.  The list itself is computed from the run's files
(``endolite.train.mislabels``); the service layer checks roles and writes the audit entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import duckdb

from endolite.errors import InvalidInput
from endolite.storage.rows import fetch_dicts

KIND = "mislabel"
DECISIONS = ("confirmed", "dismissed")


@dataclass(frozen=True)
class MislabelDecision:
    """What ``decided_by`` decided about (run, frame, label) at ``decided_at`` (naive local
    time, as the table stores it)."""

    run_id: int
    frame_id: int
    label_id: int
    decision: str
    decided_by: str
    decided_at: datetime


def set_decision(con: duckdb.DuckDBPyConnection, *, run_id: int, frame_id: int, label_id: int,
                 decision: str, decided_by: str) -> MislabelDecision:
    """Record ``decision`` (confirmed | dismissed), replacing an earlier one on the same
    (run, frame, label).  Call inside a transaction for atomicity."""
    if decision not in DECISIONS:
        raise InvalidInput(f"decision: {decision!r} is not one of {', '.join(DECISIONS)}")
    key = [KIND, int(run_id), int(frame_id), int(label_id)]
    con.execute("DELETE FROM model_decisions WHERE kind = ? AND run_id = ? AND frame_id = ? "
                "AND label_id = ?", key)
    con.execute("INSERT INTO model_decisions (kind, run_id, frame_id, label_id, decision, "
                "decided_by) VALUES (?, ?, ?, ?, ?, ?)", [*key, decision, decided_by])
    return decisions_of(con, run_id, frame_ids=[frame_id])[(int(frame_id), int(label_id))]


def decisions_of(con: duckdb.DuckDBPyConnection, run_id: int, *,
                 frame_ids: Iterable[int] | None = None) -> dict[tuple[int, int], MislabelDecision]:
    """``{(frame_id, label_id): MislabelDecision}`` of run ``run_id`` (all frames, or only
    ``frame_ids``); pairs nobody reviewed are absent."""
    sql = ("SELECT run_id, frame_id, label_id, decision, decided_by, decided_at "
           "FROM model_decisions WHERE kind = ? AND run_id = ?")
    params: list = [KIND, int(run_id)]
    if frame_ids is not None:
        ids = [int(i) for i in frame_ids]
        if not ids:
            return {}
        sql += " AND list_contains(?, frame_id)"
        params.append(ids)
    out = {}
    for r in fetch_dicts(con, sql + " ORDER BY decided_at", params):
        out[(int(r["frame_id"]), int(r["label_id"]))] = MislabelDecision(
            run_id=int(r["run_id"]), frame_id=int(r["frame_id"]), label_id=int(r["label_id"]),
            decision=r["decision"], decided_by=r["decided_by"], decided_at=r["decided_at"])
    return out


__all__ = ["KIND", "DECISIONS", "MislabelDecision", "set_decision", "decisions_of"]
