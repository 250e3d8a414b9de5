"""``endolite benchmark ...``: create annotator benchmarks, assign, complete tasks, report.

    endolite benchmark create NAME --gold USER --annotators U1,U2 --labels L1,L2 \\
        (--frames ID,ID | --group ID | --video ID | --extraction ID) [--sample N --seed S]
        [--sample-method random|stratified] [--iou-threshold T]
    endolite benchmark add-frames BENCHMARK_ID --frames ID,ID
    endolite benchmark assign BENCHMARK_ID --annotators U3,U4
    endolite benchmark complete BENCHMARK_ID --annotator USER [--frames ID,ID]
    endolite benchmark status BENCHMARK_ID
    endolite benchmark report BENCHMARK_ID [--csv FILE] [--summary-csv FILE] [--json FILE]
        [--iou-threshold T]
    endolite benchmark list

Registered on the main parser by ``add_benchmark_commands``; errors exit 2 through
``endolite.cli.main``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from endolite.errors import InvalidInput


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _cli():
    from endolite.cli import common

    return common


def cmd_create(args, out) -> int:
    from endolite.benchmark import service

    from endolite.services import benchmarks

    ctx = _cli().context(args)
    con = ctx.con
    if args.sample is None and args.seed is not None:
        raise InvalidInput("--seed goes with --sample N")
    frame_ids = service.select_frames(
        con, frame_ids=service.parse_ids(args.frames) if args.frames is not None else None,
        group_id=args.group, video_id=args.video, extraction_id=args.extraction, sample=args.sample,
        seed=args.seed or 0, method=args.sample_method)
    bench = benchmarks.create(
        ctx, name=args.name, gold=args.gold, annotators=service.parse_names(args.annotators),
        labels=service.parse_names(args.labels), frame_ids=frame_ids,
        iou_threshold=args.iou_threshold)
    out.emit({"id": bench.id, "name": bench.name, "frames": list(bench.frame_ids),
              "annotators": list(bench.annotators), "gold": bench.gold},
             [str(bench.id)])
    return 0


def _new_tasks(args, out, change) -> int:
    """Run ``change(ctx)`` (returns how many tasks it created) and print that count."""
    n = change(_cli().context(args))
    out.emit({"benchmark_id": args.benchmark_id, "new_tasks": n}, [f"{n} new tasks"])
    return 0


def cmd_add_frames(args, out) -> int:
    from endolite.benchmark import service
    from endolite.services import benchmarks

    return _new_tasks(args, out, lambda ctx: benchmarks.add_frames(
        ctx, args.benchmark_id, service.parse_ids(args.frames)))


def cmd_assign(args, out) -> int:
    from endolite.benchmark import service
    from endolite.services import benchmarks

    return _new_tasks(args, out, lambda ctx: benchmarks.assign(
        ctx, args.benchmark_id, service.parse_names(args.annotators)))


def cmd_complete(args, out) -> int:
    from endolite.benchmark import service

    from endolite.services import benchmarks

    frames = service.parse_ids(args.frames) if args.frames is not None else None
    n = benchmarks.complete(_cli().context(args), args.benchmark_id, annotator=args.annotator,
                            frame_ids=frames)
    out.emit({"benchmark_id": args.benchmark_id, "annotator": args.annotator, "completed": n},
             [f"{n} tasks of {args.annotator} marked complete"])
    return 0


def cmd_status(args, out) -> int:
    from endolite.benchmark import service

    _, con = _cli()._open(args)
    rows = service.status_rows(con, args.benchmark_id)
    lines = [f"{'user':<16} {'role':<10} {'todo':>5} {'in_progress':>11} {'complete':>8} {'total':>5}"]
    lines += [f"{r['annotator']:<16} {r['role']:<10} {r['todo']:>5} {r['in_progress']:>11} "
              f"{r['complete']:>8} {r['total']:>5}" for r in rows]
    out.emit(rows, lines)
    return 0


LEADERBOARD_LINE = ("annotator", "tasks_done", "evaluated", "mean_iou", "class_score", "f1",
                    "missing", "extra")


def cmd_report(args, out) -> int:
    from endolite.benchmark import service

    from endolite.services import benchmarks

    result = benchmarks.report(_cli().context(args), args.benchmark_id, iou_threshold=args.iou_threshold)
    files = result.files()
    written = {}
    for option, name in ((args.csv, service.IOU_RESULTS_CSV), (args.summary_csv, service.SUMMARY_CSV),
                         (args.json_file, service.REPORT_JSON)):
        if option:
            path = Path(option)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(files[name])
            written[name] = str(path)
    bench = result.benchmark
    lines = [f"benchmark {bench.id} {bench.name!r}: gold {bench.gold}, IoU threshold "
             f"{result.report.iou_threshold:g}",
             "  ".join(f"{c:>11}" if i else f"{c:<16}" for i, c in enumerate(LEADERBOARD_LINE))]
    lines += ["  ".join(f"{_fmt(row[c]):>11}" if i else f"{row[c]:<16}" for i, c in enumerate(LEADERBOARD_LINE))
              for row in result.leaderboard]
    lines += [f"wrote {path}" for path in written.values()]
    out.emit({"benchmark_id": bench.id, "iou_threshold": result.report.iou_threshold,
              "leaderboard": list(result.leaderboard), "files": written}, lines)
    return 0


def cmd_list(args, out) -> int:
    from endolite.records import to_dict
    from endolite.storage import benchmarks

    _, con = _cli()._open(args)
    items = benchmarks.list_all(con)
    out.emit([to_dict(b) for b in items],
             [f"{b.id:>4} {b.name:<24} gold={b.gold} annotators={','.join(b.annotators)} "
              f"frames={len(b.frame_ids)} labels={len(b.label_ids)}" for b in items])
    return 0


def add_benchmark_commands(sub) -> None:
    """Register ``benchmark`` and its subcommands on the main parser's subparsers."""
    bp = sub.add_parser("benchmark", help="annotator benchmarks against a gold standard")
    b = bp.add_subparsers(dest="benchmark_command", required=True)

    s = b.add_parser("create", help="create a benchmark; prints its id")
    s.add_argument("name")
    s.add_argument("--gold", required=True, help="the trusted expert's user name")
    s.add_argument("--annotators", required=True, help="users to evaluate, comma-separated")
    s.add_argument("--labels", required=True, help="labels in scope, comma-separated names")
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--frames", help="frame ids, comma-separated")
    which.add_argument("--group", type=int, help="an image group's labeling frames")
    which.add_argument("--video", type=int, help="a video's labeling (non-context) frames")
    which.add_argument("--extraction", type=int, help="the frames an extraction picked")
    s.add_argument("--sample", type=int, help="keep a random sample of N of those frames")
    s.add_argument("--seed", type=int, help="seed of the sample (default 0)")
    s.add_argument("--sample-method", choices=["random", "stratified"], default="random")
    s.add_argument("--iou-threshold", type=float, default=0.5)
    s.set_defaults(func=cmd_create)

    s = b.add_parser("add-frames", help="add frames (tasks for every user of the benchmark)")
    s.add_argument("benchmark_id", type=int)
    s.add_argument("--frames", required=True)
    s.set_defaults(func=cmd_add_frames)

    s = b.add_parser("assign", help="evaluate more annotators on the benchmark's frames")
    s.add_argument("benchmark_id", type=int)
    s.add_argument("--annotators", required=True)
    s.set_defaults(func=cmd_assign)

    s = b.add_parser("complete", help="mark a user's tasks complete")
    s.add_argument("benchmark_id", type=int)
    s.add_argument("--annotator", required=True)
    s.add_argument("--frames", help="only these frame ids (default: all of the user's tasks)")
    s.set_defaults(func=cmd_complete)

    s = b.add_parser("status", help="todo / in_progress / complete per user")
    s.add_argument("benchmark_id", type=int)
    s.set_defaults(func=cmd_status)

    s = b.add_parser("report", help="print the leaderboard; write iou_results / summary CSV / JSON")
    s.add_argument("benchmark_id", type=int)
    s.add_argument("--csv", help="write iou_results.csv here")
    s.add_argument("--summary-csv", help="write the per-label summary CSV here")
    s.add_argument("--json", dest="json_file", help="write the full report as JSON here")
    s.add_argument("--iou-threshold", type=float, help="default: the benchmark's")
    s.set_defaults(func=cmd_report)

    b.add_parser("list", help="list benchmarks").set_defaults(func=cmd_list)


__all__ = ["add_benchmark_commands"]
