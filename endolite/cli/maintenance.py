"""``endolite check`` / ``backup`` / ``restore``: does the database agree with data/, and copies
of a data directory.

    endolite [--data DIR] check [--repair] [--quick] [--json]
        exit 0: the database and data/ agree; 1: the disagreements are listed (stdout).
        --repair fixes what is safe (orphaned files, tmp/ leftovers, mask PNGs, stale jobs),
        says what it did, and exits 0 when nothing is left to fix.
        Orphan time-segment rows (orphan_segment: a segment whose video / label is NULL or
        gone; orphan_segment_frame_label: a frame-label row made from a segment whose frame is
        NULL or whose frame / video / segment is gone) are listed one line per row id and
        counted, but only reported: --repair never deletes or rewrites a row, and which fix is
        right (restore a backup, materialize again, delete the row) is a person's call.
        --json: {ok, checked, counts (problems per kind, before any repair), problems,
        repaired, remaining, recovered_on_open}; each problem has kind, path_or_id, detail,
        record_id, repairable.
    endolite [--data DIR] backup DEST      DEST new or empty, outside the data directory
    endolite [--data DIR] restore SRC      into --data, which must be new or empty;
                                            exit 1 if the restored copy does not check clean

Each command makes exactly one call into ``endolite.maintenance`` (marked below): that is
where a role check of the service layer goes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from endolite.cli.common import Output, context
from endolite.config import Settings


def _problem(p) -> dict[str, Any]:
    return {"kind": str(p.kind), "path_or_id": p.path_or_id, "detail": p.detail,
            "record_id": p.record_id, "repairable": p.repairable}


def _problem_line(p) -> str:
    return f"{p.kind:<17} {p.path_or_id}  {p.detail}"


def _summary(report) -> str:
    c = report.checked
    seen = (f"{c.get('frames', 0)} frames, {c.get('videos', 0)} videos, {c.get('masks', 0)} masks, "
            f"{c.get('segments', 0)} segments, {c.get('files', 0)} files")
    if report.ok:
        return f"ok: the database and data/ agree ({seen} checked)"
    fixable = len(report.repairable)
    hint = f"; {fixable} can be fixed with: endolite check --repair" if fixable else ""
    by_kind = ", ".join(f"{n} {kind}" for kind, n in report.counts.items())
    return f"{len(report.problems)} problem(s): {by_kind} ({seen} checked){hint}"


def cmd_check(args, out: Output) -> int:
    from endolite.services.maintenance import run_check
    from endolite.storage.db import last_recovery

    ctx = context(args)
    settings = ctx.settings
    try:
        # the one call into maintenance (role checked there); grace 0: this process holds
        # the database alone, so no write of another thread can be in flight
        run = run_check(ctx, fix=args.repair, grace_s=0, hashes=not args.quick)
    finally:
        ctx.con.close()
    opened = last_recovery(settings)
    lines = []
    if opened is not None:
        lines += [f"on opening: marked job {j.id} ({j.kind}) failed: {j.message}" for j in opened.jobs]
        if opened.tmp_removed:
            lines.append(f"on opening: removed {len(opened.tmp_removed)} leftover(s) from tmp/")
    if args.repair:
        lines += [_problem_line(p) for p in run.report.problems]
        lines += [f"repaired: {line}" for line in run.repaired]
        if run.repaired:
            lines.append("after repair:")
            lines += [_problem_line(p) for p in run.final.problems]
    else:
        lines += [_problem_line(p) for p in run.report.problems]
    lines.append(_summary(run.final))
    data = {"ok": run.final.ok, "checked": run.final.checked, "counts": run.report.counts,
            "problems": [_problem(p) for p in run.report.problems],
            "repaired": list(run.repaired),
            "remaining": [_problem(p) for p in run.final.problems],
            "recovered_on_open": {"jobs": [j.id for j in opened.jobs] if opened else [],
                                  "tmp_removed": list(opened.tmp_removed) if opened else []}}
    out.emit(data, lines)
    return 0 if run.final.ok else 1


def cmd_backup(args, out: Output) -> int:
    from endolite.services.maintenance import backup

    ctx = context(args)
    try:
        result = backup(ctx, Path(args.dest))        # the one call (role checked there)
    finally:
        ctx.con.close()
    rows = sum(result.tables.values())
    lines = [f"backup in {result.dest}: database {result.database_bytes} bytes ({rows} rows in "
             f"{len(result.tables)} tables), {result.files} files, {result.bytes} bytes"]
    lines += [f"warning: {rel} is referenced by the database but missing; not in the backup "
              "(run endolite check)" for rel in result.missing]
    out.emit({"dest": str(result.dest), "tables": result.tables, "files": result.files,
              "bytes": result.bytes, "database_bytes": result.database_bytes,
              "missing": list(result.missing), "seconds": round(result.seconds, 3)}, lines)
    return 0


def cmd_restore(args, out: Output) -> int:
    from endolite.maintenance import restore

    target = Settings.resolve(args.data).data_dir       # not opened: it must be new or empty
    result = restore(Path(args.src), target)              # the one call (role check here)
    report = result.report
    lines = [f"restored {Path(args.src).resolve()} into {result.data_dir}: "
             f"{sum(result.tables.values())} rows, {result.files} files, {result.bytes} bytes"]
    lines += [_problem_line(p) for p in report.problems]
    lines.append(_summary(report))
    out.emit({"data_dir": str(result.data_dir), "tables": result.tables, "files": result.files,
              "bytes": result.bytes, "ok": report.ok,
              "problems": [_problem(p) for p in report.problems]}, lines)
    return 0 if report.ok else 1


def _json_flag(parser: argparse.ArgumentParser) -> None:
    """``--json`` after the sub-command too (the global flag goes before it)."""
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable output (same as the global --json)")


def add_maintenance_commands(sub) -> None:
    """Register the maintenance sub-commands on the main parser."""
    s = sub.add_parser("check", help="does the database agree with the files of data/, and do "
                                     "segment rows point at rows that exist? (exit 0 yes, 1 no: "
                                     "the problems are listed)")
    s.add_argument("--repair", action="store_true",
                   help="remove orphaned files and tmp/ leftovers, rewrite mask PNGs from the "
                        "database, mark stale jobs failed; never deletes a row or a file a row "
                        "uses, so orphan segment rows (orphan_segment, orphan_segment_frame_label) "
                        "are only reported")
    s.add_argument("--quick", action="store_true",
                   help="existence only: skip the frame sha256 and mask PNG pixel comparisons")
    _json_flag(s)
    s.set_defaults(func=cmd_check)

    s = sub.add_parser("backup", help="copy the database and its files into DEST (new or empty)")
    s.add_argument("dest")
    _json_flag(s)
    s.set_defaults(func=cmd_backup)

    s = sub.add_parser("restore", help="copy backup SRC into --data (new or empty) and check it")
    s.add_argument("src")
    _json_flag(s)
    s.set_defaults(func=cmd_restore)
