"""``endolite label | mask | masks | frame-label | segment | propagate``: labels and annotations."""

from __future__ import annotations

import sys
from typing import Any

from endolite.cli.common import Output, _open, as_job, context
from endolite.errors import EndoliteError
from endolite.records import LabelKind, to_dict


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
    from endolite.frame_labels import parse_assignment
    from endolite.services import annotations

    rows = annotations.set_frame_labels(context(args), args.frame_id,
                                        [parse_assignment(a) for a in args.set],
                                        annotator=args.annotator)
    out.emit([to_dict(r) for r in rows], [f"frame {r.frame_id}: {r.label}={r.value}" for r in rows])
    for warning in getattr(rows, "warnings", []):     # saved, but contradicting the frame's masks
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_segment_add(args, out: Output) -> int:
    from endolite.services import annotations

    seg = annotations.add_segment(context(args), args.video_id, label=args.label, start=args.start,
                                  end=args.end, annotator=args.annotator)
    out.emit(to_dict(seg), [f"segment {seg.id}: {seg.label} frames [{seg.start_frame}, {seg.end_frame})"])
    return 0


def cmd_segment_list(args, out: Output) -> int:
    from endolite.storage import annotations

    _, con = _open(args)
    segs = annotations.segments_of(con, video_id=args.video_id)
    out.emit([to_dict(s) for s in segs], [f"{s.id:>4} {s.label:<16} [{s.start_frame}, {s.end_frame}) "
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


def add_annotation_commands(sub) -> None:
    """Register these commands on the main parser's subparsers."""
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
    s = sg.add_parser("add", help="a segment of frames start <= n < end (end exclusive)")
    s.add_argument("video_id", type=int)
    s.add_argument("--label", required=True)
    s.add_argument("--start", type=int, required=True, help="first frame number of the segment")
    s.add_argument("--end", type=int, required=True,
                   help="frame number after the last one (exclusive; at most the frame count)")
    s.add_argument("--annotator")
    s.set_defaults(func=cmd_segment_add)
    s = sg.add_parser("list")
    s.add_argument("video_id", type=int)
    s.set_defaults(func=cmd_segment_list)
    s = sg.add_parser("export", help="mark a segment for export (on) or not (off)")
    s.add_argument("segment_id", type=int)
    s.add_argument("flag", choices=["on", "off"])
    s.set_defaults(func=cmd_segment_export)
    s = sg.add_parser("materialize", help="create the missing frame-label rows (present) of the "
                      "extracted frames in exported segments; running it again adds only what is missing")
    s.add_argument("video_id", type=int)
    s.add_argument("--dry-run", action="store_true")
    s.set_defaults(func=cmd_segment_materialize)
