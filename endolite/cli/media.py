"""``endolite ingest | extract | frames | videos | groups``: getting media in and listing it."""

from __future__ import annotations

from endolite.cli.common import Output, _open, as_job, context
from endolite.records import IngestStatus, SampleMethod, to_dict

#: Extraction methods: the SampleMethod values and ``uncertain`` (``endolite.sampling``).
METHODS = list(dict.fromkeys([*(m.value for m in SampleMethod), "uncertain"]))


def cmd_ingest(args, out: Output) -> int:
    from endolite.services import media

    results = media.import_server(context(args), args.paths)
    lines = [f"{r.status:<9} {r.kind:<11} id={r.id if r.id is not None else '-':<5} {r.path}"
             + (f"  ({r.reason})" if r.reason else "") for r in results]
    out.emit([to_dict(r) for r in results], lines)
    return 1 if any(r.status == IngestStatus.REJECTED for r in results) else 0


def cmd_extract(args, out: Output) -> int:
    from endolite.services import media

    ctx = context(args)
    options = dict(method=args.method, count=args.count, start=args.start, end=args.end,
                   context=args.context, seed=args.seed, fmt=args.format, quality=args.quality)
    if args.model is not None:
        options["model"] = args.model
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


def add_media_commands(sub) -> None:
    """Register these commands on the main parser's subparsers."""
    s = sub.add_parser("ingest", help="import videos, images, folders, zips of frames, JSON manifests")
    s.add_argument("paths", nargs="+")
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("extract", help="pick frames worth labeling from a video")
    s.add_argument("video_id", type=int)
    s.add_argument("--method", choices=METHODS, default="uniform",
                   help="uncertain: active learning with a trained model (needs --model)")
    s.add_argument("--count", type=int, default=20)
    s.add_argument("--start", help="fraction in [0,1] or seconds with an s suffix (e.g. 12s)")
    s.add_argument("--end", help="fraction in [0,1] or seconds with an s suffix")
    s.add_argument("--context", type=int, default=2, help="context frames either side (default 2)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--format", choices=["jpg", "png"], default="jpg")
    s.add_argument("--quality", type=int, default=90, help="JPEG quality")
    s.add_argument("--model", type=int, metavar="RUN_ID",
                   help="for --method uncertain: the done training run whose model scores frames")
    s.set_defaults(func=cmd_extract)

    s = sub.add_parser("frames", help="list the frames of a video or image group")
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--video", type=int)
    which.add_argument("--group", type=int)
    s.set_defaults(func=cmd_frames)

    sub.add_parser("videos", help="list videos").set_defaults(func=cmd_videos)
    sub.add_parser("groups", help="list image groups").set_defaults(func=cmd_groups)
