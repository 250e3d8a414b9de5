"""``endolite import coco FILE.json --annotator NAME``: masks, polygons and boxes from another
tool's COCO file onto the frames its images name (``endolite.services.coco_import``).

    endolite import coco FILE.json --annotator NAME [--group ID | --video ID]

Prints what was imported (counts per kind, frames, new labels).  A refused file (unknown image,
image size mismatch, bad segmentation, unknown category; no such annotator; not a lead) stores
nothing and exits 1 with the reason on stderr.
"""

from __future__ import annotations

import json
import sys

from endolite.errors import EndoliteError


def cmd_import_coco(args, out) -> int:
    from endolite.cli import common
    from endolite.services import coco_import

    try:
        ctx = common.context(args)
        result = coco_import.import_coco(ctx, args.file, annotator=args.annotator,
                                         group_id=args.group, video_id=args.video)
    except EndoliteError as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "type": type(exc).__name__}))
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out.emit(coco_import.summary(result), result.lines())
    return 0


def add_import_commands(sub) -> None:
    """Register ``import`` and its subcommands on the top-level subparsers."""
    ip = sub.add_parser("import", help="import annotations from other tools")
    i = ip.add_subparsers(dest="import_command", required=True)
    s = i.add_parser("coco", help="COCO masks / polygons / boxes onto frames matched by file name "
                                  "(all or nothing)")
    s.add_argument("file", help="the COCO .json file")
    s.add_argument("--annotator", required=True, help="store the masks as this user's")
    scope = s.add_mutually_exclusive_group()
    scope.add_argument("--group", type=int, help="match names only among this image group's frames")
    scope.add_argument("--video", type=int, help="match names only among this video's frames")
    s.set_defaults(func=cmd_import_coco)


__all__ = ["add_import_commands"]
