"""Repository for benchmarks, their per-(user, frame) tasks and saved report runs."""

from __future__ import annotations

from typing import Any

import duckdb

from endolite.errors import InvalidInput, NotFound
from endolite.records import Benchmark, Task, TaskStatus
from endolite.storage.db import insert_rows
from endolite.storage.rows import dumps, fetch_dicts, loads


def create(con: duckdb.DuckDBPyConnection, *, name: str, gold: str, annotators: list[str],
           label_ids: list[int], frame_ids: list[int], iou_threshold: float = 0.5,
           created_by: str | None = None) -> Benchmark:
    if not name.strip():
        raise InvalidInput("benchmark name: empty")
    if gold in annotators:
        raise InvalidInput(f"{gold} is the gold annotator and cannot also be evaluated")
    row = con.execute(
        "INSERT INTO benchmarks (name, gold, label_ids, iou_threshold, created_by) "
        "VALUES (?, ?, ?, ?, ?) RETURNING id",
        [name.strip(), gold, list(label_ids), iou_threshold, created_by]).fetchone()
    add_tasks(con, row[0], [gold, *annotators], frame_ids)
    return get(con, row[0])


def add_tasks(con: duckdb.DuckDBPyConnection, benchmark_id: int, users: list[str], frame_ids: list[int]) -> int:
    """Create the missing todo tasks for every (user, frame); returns how many were new."""
    existing = {(r[0], r[1]) for r in con.execute(
        "SELECT annotator, frame_id FROM benchmark_tasks WHERE benchmark_id = ?", [benchmark_id]).fetchall()}
    rows = [{"benchmark_id": benchmark_id, "annotator": u, "frame_id": f, "status": str(TaskStatus.TODO)}
            for u in dict.fromkeys(users) for f in dict.fromkeys(frame_ids) if (u, f) not in existing]
    insert_rows(con, "benchmark_tasks", rows)
    return len(rows)


def get(con: duckdb.DuckDBPyConnection, benchmark_id: int) -> Benchmark:
    rows = fetch_dicts(con, "SELECT * FROM benchmarks WHERE id = ?", [benchmark_id])
    if not rows:
        raise NotFound(f"no benchmark with id {benchmark_id}")
    r = rows[0]
    users = [u for (u,) in con.execute(
        "SELECT DISTINCT annotator FROM benchmark_tasks WHERE benchmark_id = ? ORDER BY annotator",
        [benchmark_id]).fetchall() if u != r["gold"]]
    frames = [f for (f,) in con.execute(
        "SELECT DISTINCT frame_id FROM benchmark_tasks WHERE benchmark_id = ? ORDER BY frame_id",
        [benchmark_id]).fetchall()]
    return Benchmark(id=r["id"], name=r["name"], gold=r["gold"], annotators=tuple(users),
                     label_ids=tuple(r["label_ids"]), frame_ids=tuple(frames),
                     iou_threshold=r["iou_threshold"], created_at=r["created_at"], created_by=r["created_by"])


def list_all(con: duckdb.DuckDBPyConnection) -> list[Benchmark]:
    return [get(con, i) for (i,) in con.execute("SELECT id FROM benchmarks ORDER BY id").fetchall()]


def tasks(con: duckdb.DuckDBPyConnection, *, benchmark_id: int | None = None,
          annotator: str | None = None) -> list[Task]:
    sql, params = "SELECT * FROM benchmark_tasks WHERE 1 = 1", []
    if benchmark_id is not None:
        sql += " AND benchmark_id = ?"
        params.append(benchmark_id)
    if annotator is not None:
        sql += " AND annotator = ?"
        params.append(annotator)
    return [Task(benchmark_id=r["benchmark_id"], annotator=r["annotator"], frame_id=r["frame_id"],
                 status=TaskStatus(r["status"]))
            for r in fetch_dicts(con, sql + " ORDER BY benchmark_id, frame_id", params)]


def set_status(con: duckdb.DuckDBPyConnection, benchmark_id: int, annotator: str, status: TaskStatus | str,
               *, frame_ids: list[int] | None = None) -> int:
    """Set the status of ``annotator``'s tasks (all, or those on ``frame_ids``); returns how many."""
    status = TaskStatus(status)
    where = "WHERE benchmark_id = ? AND annotator = ?"
    params: list[Any] = [benchmark_id, annotator]
    if frame_ids is not None:
        where += " AND list_contains(?, frame_id)"
        params.append(list(frame_ids))
    count = con.execute(f"SELECT count(*) FROM benchmark_tasks {where}", params).fetchone()[0]
    if count == 0:
        raise NotFound(f"{annotator} has no tasks in benchmark {benchmark_id}"
                       + (" on those frames" if frame_ids is not None else ""))
    con.execute(f"UPDATE benchmark_tasks SET status = ?, updated_at = current_localtimestamp() {where}",
                [str(status), *params])
    return int(count)


def status_table(con: duckdb.DuckDBPyConnection, benchmark_id: int) -> list[dict[str, Any]]:
    """Per user: todo / in_progress / complete counts."""
    return fetch_dicts(con, """
        SELECT annotator,
               count(*) FILTER (WHERE status = 'todo') AS todo,
               count(*) FILTER (WHERE status = 'in_progress') AS in_progress,
               count(*) FILTER (WHERE status = 'complete') AS complete,
               count(*) AS total
        FROM benchmark_tasks WHERE benchmark_id = ? GROUP BY annotator ORDER BY annotator
    """, [benchmark_id])


def benchmark_frames_for(con: duckdb.DuckDBPyConnection, annotator: str) -> set[int]:
    """Frames that are in some benchmark where ``annotator`` is not the gold (blind frames)."""
    return {f for (f,) in con.execute(
        "SELECT DISTINCT t.frame_id FROM benchmark_tasks t JOIN benchmarks b ON b.id = t.benchmark_id "
        "WHERE t.annotator = ? AND b.gold <> ?", [annotator, annotator]).fetchall()}


def start_task(con: duckdb.DuckDBPyConnection, benchmark_id: int, annotator: str, frame_id: int) -> None:
    """A todo task becomes in_progress (other statuses are left as they are)."""
    con.execute("UPDATE benchmark_tasks SET status = ?, updated_at = current_localtimestamp() "
                "WHERE benchmark_id = ? AND annotator = ? AND frame_id = ? AND status = ?",
                [str(TaskStatus.IN_PROGRESS), benchmark_id, annotator, frame_id, str(TaskStatus.TODO)])


def task_queue(con: duckdb.DuckDBPyConnection, annotator: str, *, benchmark_id: int | None = None,
               include_complete: bool = False) -> list[tuple[int, str, int, str, list[int], str]]:
    """``annotator``'s tasks as ``(benchmark id, benchmark name, frame id, status, label ids,
    gold)`` in queue order: benchmark, then video / group, then frame number."""
    sql = ("SELECT t.benchmark_id, b.name, t.frame_id, t.status, b.label_ids, b.gold "
           "FROM benchmark_tasks t JOIN benchmarks b ON b.id = t.benchmark_id "
           "JOIN frames f ON f.id = t.frame_id WHERE t.annotator = ?")
    params: list[Any] = [annotator]
    if not include_complete:
        sql += " AND t.status <> ?"
        params.append(str(TaskStatus.COMPLETE))
    if benchmark_id is not None:
        sql += " AND t.benchmark_id = ?"
        params.append(benchmark_id)
    return con.execute(sql + " ORDER BY t.benchmark_id, f.video_id NULLS LAST, f.group_id, "
                             "f.frame_number, f.id", params).fetchall()


_REPORT_INPUTS = (
    "SELECT annotator, frame_id, status FROM benchmark_tasks WHERE benchmark_id = ? ORDER BY ALL",
    "SELECT id, label_ids, gold, iou_threshold FROM benchmarks WHERE id = ?",
    "SELECT m.id, m.frame_id, m.label_id, m.annotator, m.created_at FROM masks m WHERE m.deleted_at IS NULL "
    "AND m.frame_id IN (SELECT frame_id FROM benchmark_tasks WHERE benchmark_id = ?) ORDER BY m.id",
    "SELECT fl.id, fl.value, fl.updated_at FROM frame_labels fl WHERE fl.frame_id IN "
    "(SELECT frame_id FROM benchmark_tasks WHERE benchmark_id = ?) ORDER BY fl.id",
    "SELECT s.id, s.start_frame, s.end_frame, s.label_id, s.annotator FROM segments s "
    "WHERE s.deleted_at IS NULL AND s.video_id IN (SELECT f.video_id FROM frames f JOIN benchmark_tasks t "
    "ON t.frame_id = f.id WHERE t.benchmark_id = ?) ORDER BY s.id",
    "SELECT id, name FROM labels ORDER BY id",
)


def report_inputs_snapshot(con: duckdb.DuckDBPyConnection, benchmark_id: int) -> list[str]:
    """Everything a benchmark's report depends on (task statuses, live masks, frame labels,
    segments of its frames, label names), one ``repr`` of the rows per table."""
    return [repr(con.execute(sql, [benchmark_id] if "?" in sql else []).fetchall())
            for sql in _REPORT_INPUTS]


def add_run(con: duckdb.DuckDBPyConnection, benchmark_id: int, *, iou_threshold: float,
            summary: list[dict[str, Any]], created_by: str | None) -> int:
    return con.execute(
        "INSERT INTO benchmark_runs (benchmark_id, iou_threshold, summary, created_by) "
        "VALUES (?, ?, ?, ?) RETURNING id",
        [benchmark_id, iou_threshold, dumps(summary), created_by]).fetchone()[0]


def runs(con: duckdb.DuckDBPyConnection, benchmark_id: int) -> list[dict[str, Any]]:
    return [{**r, "summary": loads(r["summary"])} for r in fetch_dicts(
        con, "SELECT * FROM benchmark_runs WHERE benchmark_id = ? ORDER BY id", [benchmark_id])]
