"""The ``endolite`` command: every page's job is also scriptable.

    endolite [--data DIR] [--json] [--user NAME] COMMAND ...

``--data`` defaults to $ENDOLITE_DATA, else ./data.  ``--json`` prints machine-readable output
(one JSON document).  Errors print ``error: ...`` to stderr and exit 2; ``ingest`` exits 1 when
any input was rejected.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from endolite.allocator import with_environment
from endolite.config import ENV_DATA, Settings
from endolite.errors import EndoliteError
from endolite.records import IngestStatus, LabelKind, Role, SampleMethod, to_dict

APP_PATH = Path(__file__).resolve().parents[2] / "app.py"


from endolite.cli.common import Output, _acting_user, _open, context  # noqa: E402


# --- commands ---------------------------------------------------------------------------------

def cmd_serve(args, out: Output) -> int:
    from endolite import auth
    from endolite.storage import connect

    settings = Settings.resolve(args.data)
    con = connect(settings)            # migrations, and jobs a crash left running marked failed
    try:
        if auth.needs_setup(con):
            code = auth.ensure_setup_code(settings)
            print(f"\n  endolite: fresh data directory {settings.data_dir}\n"
                  f"  one-time setup code for the first admin account: {code}\n"
                  f"  (also in {settings.setup_code_path}; `endolite setup-code` prints it)\n",
                  flush=True)
    finally:
        con.close()
    # one malloc arena, so SAM's big tensors stay in the heap in job threads too (allocator.py)
    env = with_environment(dict(os.environ, **{ENV_DATA: str(settings.data_dir)}))
    command = [sys.executable, "-m", "streamlit", "run", str(APP_PATH),
               "--server.port", str(args.port), "--server.address", args.address,
               "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--server.maxUploadSize", str(args.max_upload_mb),
               "--client.toolbarMode", "minimal", "--server.enableXsrfProtection", "true",
               "--server.fileWatcherType", "none",        # no code reloads on a lab server
               "--global.developmentMode", "false"]
    os.execve(sys.executable, command, env)  # the dashboard replaces this process (signals reach it)
    return 0  # not reached


def cmd_ingest(args, out: Output) -> int:
    from endolite.services import media

    results = media.import_server(context(args), args.paths)
    lines = [f"{r.status:<9} {r.kind:<11} id={r.id if r.id is not None else '-':<5} {r.path}"
             + (f"  ({r.reason})" if r.reason else "") for r in results]
    out.emit([to_dict(r) for r in results], lines)
    return 1 if any(r.status == IngestStatus.REJECTED for r in results) else 0


def as_job(ctx, kind: str, params: dict[str, Any], work) -> Any:
    """Run ``work(ctx, progress)`` as a recorded job of this process (so a killed command leaves
    a job row that the next start marks failed); returns what ``work`` returned and raises the
    error it raised."""
    from dataclasses import replace

    from endolite import jobs

    box: dict[str, Any] = {}

    def run(cur, progress):
        try:
            box["value"] = work(replace(ctx, con=cur), progress)
        except BaseException as exc:
            box["error"] = exc
            raise
        return {"ok": True}

    jobs.start(ctx.con, kind, run, params=params, created_by=ctx.actor.name, background=False)
    if "error" in box:
        raise box["error"]
    return box["value"]


def cmd_extract(args, out: Output) -> int:
    from endolite.services import media

    ctx = context(args)
    options = dict(method=args.method, count=args.count, start=args.start, end=args.end,
                   context=args.context, seed=args.seed, fmt=args.format, quality=args.quality)
    result = as_job(ctx, "extract", {"video_id": args.video_id, **options},
                    lambda c, progress: media.extract(c, args.video_id, progress=progress, **options))
    data = {"extraction_id": result.extraction_id, "video_id": result.video_id,
            "method": str(result.method),
            "picked": [{"id": f.id, "frame_number": f.frame_number} for f in result.picked],
            "context": [{"id": f.id, "frame_number": f.frame_number, "parent_id": f.parent_id}
                        for f in result.context],
            "frames_decoded": result.frames_decoded}
    lines = [f"extraction {result.extraction_id}: {len(result.picked)} picked, "
             f"{len(result.context)} context frames ({result.frames_decoded} decoded)",
             "picked:  " + " ".join(str(f.id) for f in result.picked),
             "context: " + " ".join(str(f.id) for f in result.context)]
    out.emit(data, lines)
    return 0


def cmd_frames(args, out: Output) -> int:
    from endolite.storage import media

    _, con = _open(args)
    if args.video is not None:
        media.get_video(con, args.video)      # NotFound names a wrong id
    else:
        media.get_group(con, args.group)
    frames = media.frames_of(con, video_id=args.video, group_id=args.group)
    keys = ("id", "frame_number", "timestamp", "path", "original_name", "is_context", "parent_id")
    data = [{k: getattr(f, k) for k in keys} for f in frames]
    lines = [f"{f.id:>6} #{f.frame_number:<6} t={'' if f.timestamp is None else f'{f.timestamp:.3f}':<9} "
             f"{'context ' if f.is_context else 'label   '}{f.path}"
             + (f"  ({f.original_name})" if f.original_name else "") for f in frames]
    out.emit(data, lines)
    return 0


def cmd_videos(args, out: Output) -> int:
    from endolite.storage import media

    _, con = _open(args)
    videos = media.list_videos(con)
    out.emit([to_dict(v) for v in videos],
             [f"{v.id:>4} {v.title}  {v.width}x{v.height} {v.codec} {v.fps:.2f} fps "
              f"{v.frame_count} frames {v.duration:.1f} s" for v in videos])
    return 0


def cmd_groups(args, out: Output) -> int:
    from endolite.storage import media

    _, con = _open(args)
    groups = media.list_groups(con)
    out.emit([to_dict(g) for g in groups],
             [f"{g.id:>4} {g.title}  ({g.source}, {g.frame_count} frames)" for g in groups])
    return 0


def _read_password(prompt: str, *, confirm: bool = True) -> str:
    if sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if confirm and getpass.getpass("repeat: ") != first:
            raise EndoliteError("passwords differ")
        return first
    return sys.stdin.readline().rstrip("\n")


def cmd_user_add(args, out: Output) -> int:
    from endolite.services import users

    ctx = context(args)
    password = _read_password(f"password for {args.name}: ")
    user = users.add_user(ctx, args.name, args.role, password)
    out.emit(to_dict(user), [f"user {user.name} ({user.role}) created, id {user.id}"])
    return 0


def cmd_user_passwd(args, out: Output) -> int:
    """Reset NAME's password (admins), or change one's own (``--user NAME`` = NAME: asks for
    the current password first)."""
    from endolite.services import users

    ctx = context(args)
    if not ctx.actor.shell and ctx.actor.name == args.name:
        old = _read_password("current password: ", confirm=False)
        new = _read_password(f"new password for {args.name}: ")
        users.change_password(ctx, old, new)
    else:
        users.reset_password(ctx, args.name, _read_password(f"new password for {args.name}: "))
    out.emit({"name": args.name, "password": "changed"}, [f"password of {args.name} changed"])
    return 0


def cmd_user_active(args, out: Output) -> int:
    from endolite.services import users

    user = users.set_active(context(args), args.name, args.user_command == "activate")
    out.emit(to_dict(user), [f"user {user.name} is now {'active' if user.active else 'deactivated'}"])
    return 0


def cmd_user_role(args, out: Output) -> int:
    from endolite.services import users

    user = users.set_role(context(args), args.name, args.role)
    out.emit(to_dict(user), [f"user {user.name} is now {user.role}"])
    return 0


def cmd_user_list(args, out: Output) -> int:
    from endolite.storage import users

    _, con = _open(args)
    items = users.list_all(con)
    out.emit([to_dict(u) for u in items], [f"{u.id:>4} {u.name} ({u.role})"
                                           + ("" if u.active else " deactivated") for u in items])
    return 0


def cmd_label_add(args, out: Output) -> int:
    from endolite.services import labels

    label = labels.add(context(args), args.name, kind=LabelKind(args.kind), color=args.color)
    out.emit(to_dict(label), [f"label {label.name} ({label.kind}, {label.color}) id {label.id}"])
    return 0


def cmd_label_list(args, out: Output) -> int:
    from endolite.storage import labels

    _, con = _open(args)
    items = labels.list_all(con)
    out.emit([to_dict(lb) for lb in items],
             [f"{lb.id:>4} {lb.name:<20} {lb.kind:<10} {lb.color} {','.join(lb.allowed)}" for lb in items])
    return 0


def cmd_label_rename(args, out: Output) -> int:
    from endolite.services import labels

    label = labels.rename(context(args), args.name, args.new_name)
    out.emit(to_dict(label), [f"label {label.id} is now {label.name}"])
    return 0


def cmd_label_recolor(args, out: Output) -> int:
    from endolite.services import labels

    label = labels.recolor(context(args), args.name, args.color)
    out.emit(to_dict(label), [f"label {label.name} is now {label.color}"])
    return 0


def cmd_setup_code(args, out: Output) -> int:
    from endolite import auth

    settings, con = _open(args)
    if not auth.needs_setup(con):
        raise EndoliteError("setup is done already: this data directory has users")
    code = auth.ensure_setup_code(settings)
    out.emit({"setup_code": code}, [code])
    return 0


def _mask_dict(m) -> dict[str, Any]:
    return {"id": m.id, "frame_id": m.frame_id, "label": m.label, "annotator": m.annotator,
            "source": str(m.source), "kind": str(m.kind), "confidence": m.confidence,
            "flagged": m.flagged, "area": m.area, "bbox": list(m.bbox),
            "rle": {"size": [m.height, m.width], "counts": m.rle}}


def cmd_mask_import(args, out: Output) -> int:
    from endolite.services import masks

    results = masks.import_files(context(args), args.paths, label=args.label, annotator=args.annotator)
    out.emit(results, [f"{r['status']:<9} {r['path']}" + (f" -> frame {r['frame_id']} mask {r['mask_id']}"
                                                          if r["mask_id"] else f"  ({r['reason']})")
                       for r in results])
    return 1 if any(r["status"] == "rejected" for r in results) else 0


def cmd_masks(args, out: Output) -> int:
    from endolite.storage import annotations

    _, con = _open(args)
    items = annotations.masks_of(con, frame_ids=[args.frame] if args.frame is not None else None,
                                 video_id=args.video, group_id=args.group, annotator=args.annotator)
    out.emit([_mask_dict(m) for m in items],
             [f"{m.id:>6} frame {m.frame_id:<6} {m.label:<16} {m.annotator:<12} {m.source:<10} "
              f"conf={'' if m.confidence is None else f'{m.confidence:.2f}'} area={m.area}" for m in items])
    return 0


def cmd_frame_label(args, out: Output) -> int:
    from endolite.annotate import parse_assignment
    from endolite.services import annotations

    rows = annotations.set_frame_labels(context(args), args.frame_id,
                                        [parse_assignment(a) for a in args.set],
                                        annotator=args.annotator)
    out.emit([to_dict(r) for r in rows], [f"frame {r.frame_id}: {r.label}={r.value}" for r in rows])
    return 0


def cmd_segment_add(args, out: Output) -> int:
    from endolite.services import annotations

    seg = annotations.add_segment(context(args), args.video_id, label=args.label, start=args.start,
                                  end=args.end, annotator=args.annotator)
    out.emit(to_dict(seg), [f"segment {seg.id}: {seg.label} frames {seg.start_frame}-{seg.end_frame}"])
    return 0


def cmd_segment_list(args, out: Output) -> int:
    from endolite.storage import annotations

    _, con = _open(args)
    segs = annotations.segments_of(con, video_id=args.video_id)
    out.emit([to_dict(s) for s in segs], [f"{s.id:>4} {s.label:<16} {s.start_frame}-{s.end_frame} "
                                          f"{s.annotator}{'' if s.for_export else ' (not exported)'}"
                                          for s in segs])
    return 0


def cmd_segment_materialize(args, out: Output) -> int:
    from endolite.services import annotations

    n = annotations.materialize(context(args), args.video_id, dry_run=args.dry_run)
    verb = "would create" if args.dry_run else "created"
    out.emit({"video_id": args.video_id, "dry_run": args.dry_run, "rows": n},
             [f"{verb} {n} frame-label rows"])
    return 0


def cmd_segment_export(args, out: Output) -> int:
    from endolite.services import annotations

    seg = annotations.set_segment_export(context(args), args.segment_id, args.flag == "on")
    out.emit(to_dict(seg), [f"segment {seg.id}: {'exported' if seg.for_export else 'not exported'}"])
    return 0


def cmd_propagate(args, out: Output) -> int:
    from endolite.segment import engine_for
    from endolite.services import masks

    ctx = context(args)
    if args.annotator and args.annotator != ctx.actor.name:
        raise EndoliteError("--annotator: propagated masks belong to whoever runs the propagation; "
                            f"use --user {args.annotator}")
    settings = ctx.settings
    refine = None
    if args.refine:
        from endolite.propagate import SegmenterRefiner

        engine = engine_for(settings)
        refine = SegmenterRefiner(engine, lambda _i, image: engine.embed(image))
    made = as_job(ctx, "propagate", {"mask_id": args.mask_id, "direction": args.direction,
                                     "to_frame_id": args.to},
                  lambda c, progress: masks.propagate(c, args.mask_id, direction=args.direction,
                                                      to_frame_id=args.to, refine=refine,
                                                      progress=progress,
                                                      replace=not args.keep_earlier))
    out.emit([{"id": m.id, "frame_id": m.frame_id, "confidence": m.confidence, "flagged": m.flagged}
              for m in made],
             [f"mask {m.id} on frame {m.frame_id} confidence {m.confidence:.2f}"
              + (" (flagged)" if m.flagged else "") for m in made] or ["no stored frame reached"])
    return 0


# --- parser -----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="endolite", description="endoscopy labeling workbench")
    p.add_argument("--data", help=f"data directory (default ${ENV_DATA} or ./data)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--user", help="act as this user, with their role (default $ENDOLITE_USER; "
                                  "neither: the server's shell user, with admin rights)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="start the dashboard")
    s.add_argument("--port", type=int, default=8501)
    s.add_argument("--address", default="0.0.0.0",
                   help="bind address (127.0.0.1 behind a reverse proxy)")
    s.add_argument("--max-upload-mb", type=int, default=4096)
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("ingest", help="import videos, images, folders, zips of frames, JSON manifests")
    s.add_argument("paths", nargs="+")
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("extract", help="pick frames worth labeling from a video")
    s.add_argument("video_id", type=int)
    s.add_argument("--method", choices=[m.value for m in SampleMethod], default="uniform")
    s.add_argument("--count", type=int, default=20)
    s.add_argument("--start", help="fraction in [0,1] or seconds with an s suffix (e.g. 12s)")
    s.add_argument("--end", help="fraction in [0,1] or seconds with an s suffix")
    s.add_argument("--context", type=int, default=2, help="context frames either side (default 2)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--format", choices=["jpg", "png"], default="jpg")
    s.add_argument("--quality", type=int, default=90, help="JPEG quality")
    s.set_defaults(func=cmd_extract)

    s = sub.add_parser("frames", help="list the frames of a video or image group")
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--video", type=int)
    which.add_argument("--group", type=int)
    s.set_defaults(func=cmd_frames)

    sub.add_parser("videos", help="list videos").set_defaults(func=cmd_videos)
    sub.add_parser("groups", help="list image groups").set_defaults(func=cmd_groups)
    sub.add_parser("setup-code", help="print the one-time admin setup code of a fresh data dir"
                   ).set_defaults(func=cmd_setup_code)

    u = sub.add_parser("user", help="manage users").add_subparsers(dest="user_command", required=True)
    s = u.add_parser("add", help="add a user (password from stdin when not a terminal)")
    s.add_argument("name")
    s.add_argument("--role", choices=[r.value for r in Role], required=True)
    s.set_defaults(func=cmd_user_add)
    u.add_parser("list").set_defaults(func=cmd_user_list)
    s = u.add_parser("passwd", help="reset a user's password (admin) or change your own "
                                    "(--user NAME); new password from stdin when not a terminal")
    s.add_argument("name")
    s.set_defaults(func=cmd_user_passwd)
    for verb in ("deactivate", "activate"):
        s = u.add_parser(verb, help=f"{verb} a user (admin)")
        s.add_argument("name")
        s.set_defaults(func=cmd_user_active)
    s = u.add_parser("role", help="change a user's role (admin)")
    s.add_argument("name")
    s.add_argument("role", choices=[r.value for r in Role])
    s.set_defaults(func=cmd_user_role)

    lb = sub.add_parser("label", help="manage labels").add_subparsers(dest="label_command", required=True)
    s = lb.add_parser("add")
    s.add_argument("name")
    s.add_argument("--kind", choices=[k.value for k in LabelKind], default="other")
    s.add_argument("--color", help="#RRGGBB")
    s.set_defaults(func=cmd_label_add)
    lb.add_parser("list").set_defaults(func=cmd_label_list)
    s = lb.add_parser("rename")
    s.add_argument("name")
    s.add_argument("new_name")
    s.set_defaults(func=cmd_label_rename)
    s = lb.add_parser("recolor")
    s.add_argument("name")
    s.add_argument("color")
    s.set_defaults(func=cmd_label_recolor)

    m = sub.add_parser("mask", help="masks").add_subparsers(dest="mask_command", required=True)
    s = m.add_parser("import", help="binary mask images onto the frames whose file stem matches")
    s.add_argument("paths", nargs="+")
    s.add_argument("--label", required=True)
    s.add_argument("--annotator", required=True)
    s.set_defaults(func=cmd_mask_import)

    s = sub.add_parser("masks", help="list masks (COCO RLE) of a frame, image group or video")
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--frame", type=int)
    which.add_argument("--group", type=int)
    which.add_argument("--video", type=int)
    s.add_argument("--annotator")
    s.set_defaults(func=cmd_masks)

    s = sub.add_parser("frame-label", help="set frame-level labels: --set LABEL=1|0|unknown ...")
    s.add_argument("frame_id", type=int)
    s.add_argument("--set", action="extend", nargs="+", required=True, metavar="LABEL=VALUE",
                   help="one or more LABEL=1|0|unknown[:FLOAT]; --set may repeat")
    s.add_argument("--annotator")
    s.set_defaults(func=cmd_frame_label)

    s = sub.add_parser("propagate", help="carry a mask through its sequence (optical flow)")
    s.add_argument("mask_id", type=int)
    s.add_argument("--direction", choices=["forward", "backward", "both"], default="both")
    s.add_argument("--to", type=int, help="stop at this frame id")
    s.add_argument("--annotator")
    s.add_argument("--refine", action="store_true", help="re-segment each frame with the active engine")
    s.add_argument("--keep-earlier", action="store_true",
                   help="keep this user's earlier propagation of the same mask (default: replace it)")
    s.set_defaults(func=cmd_propagate)

    sg = sub.add_parser("segment", help="time segments of a video").add_subparsers(
        dest="segment_command", required=True)
    s = sg.add_parser("add")
    s.add_argument("video_id", type=int)
    s.add_argument("--label", required=True)
    s.add_argument("--start", type=int, required=True)
    s.add_argument("--end", type=int, required=True)
    s.add_argument("--annotator")
    s.set_defaults(func=cmd_segment_add)
    s = sg.add_parser("list")
    s.add_argument("video_id", type=int)
    s.set_defaults(func=cmd_segment_list)
    s = sg.add_parser("export", help="mark a segment for export (on) or not (off)")
    s.add_argument("segment_id", type=int)
    s.add_argument("flag", choices=["on", "off"])
    s.set_defaults(func=cmd_segment_export)
    s = sg.add_parser("materialize", help="create the missing frame-label rows of exported segments")
    s.add_argument("video_id", type=int)
    s.add_argument("--dry-run", action="store_true")
    s.set_defaults(func=cmd_segment_materialize)
    from endolite.cli.benchmark import add_benchmark_commands
    from endolite.cli.maintenance import add_maintenance_commands
    add_benchmark_commands(sub)
    add_maintenance_commands(sub)
    return p


GLOBAL_VALUED = ("--data", "--user")


def global_options_first(argv: Sequence[str]) -> list[str]:
    """Move the global options (``--data DIR``, ``--user NAME``, ``--json``) to the front, so
    ``endolite restore SRC --data NEW`` works like ``endolite --data NEW restore SRC``.
    (``--json`` after ``benchmark report`` is that command's own option and stays.)"""
    argv = list(argv)
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name = arg.split("=", 1)[0]
        if name in GLOBAL_VALUED:
            if "=" in arg:
                front.append(arg)
            elif i + 1 < len(argv):
                front += [arg, argv[i + 1]]
                i += 1
            else:
                rest.append(arg)
        elif arg == "--json" and "report" not in rest:
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(global_options_first(sys.argv[1:] if argv is None else argv))
    out = Output(args.json)
    try:
        return int(args.func(args, out) or 0)
    except OSError as exc:                 # disk full, read-only data dir, permissions
        from endolite.errors import describe_os_error

        exc = describe_os_error(exc)
        if args.json:
            print(json.dumps({"error": str(exc), "type": type(exc).__name__}))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EndoliteError as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "type": type(exc).__name__}))
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
