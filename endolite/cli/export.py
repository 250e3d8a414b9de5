"""``endolite export``: one export zip of validated, anonymized media.

    endolite export --format lx-csv|lx-json|ai-dataset|coco|yolo|visual-layer --out FILE.zip
        [--video ID ...] [--group ID ...] [--frames] [--videos] [--frame-id-paths]
        [--transcode-fps F [--transcode-ext jpg|png] [--transcode-quality Q]] [--only-true|--only-false] [--segments ID,...] [--use-export-flags]
        [--encrypt-to RECIPIENT] [--name N] [--description D] [--dataset-type T] [--model-type T]
        [--yolo-task detect|segment]

The zip is written to ``data/exports/`` (recorded there) and copied to ``--out``.  Exit 1 with
the reason when the gate or a pre-handover check refuses; 2 for other errors.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from endolite.errors import ExportRefused
from endolite.export.formats import FORMATS, ExportOptions, parse_segment_ids


def cmd_export(args, out) -> int:
    import sys

    from endolite.cli.common import context
    from endolite.services import exports

    ctx = context(args)
    only = "true" if args.only_true else "false" if args.only_false else "all"
    options = ExportOptions(
        frames=args.frames, videos=args.videos, frame_id_paths=args.frame_id_paths, only=only,
        segment_ids=parse_segment_ids(args.segments), use_export_flags=args.use_export_flags,
        transcode_fps=args.transcode_fps, transcode_ext=args.transcode_ext,
        transcode_quality=args.transcode_quality, name=args.name, description=args.description,
        dataset_type=args.dataset_type, ai_model_type=args.model_type,
        extra={"task": args.yolo_task} if args.format == "yolo" else {})
    try:
        record = exports.export(ctx, args.format, video_ids=args.video or (),
                                group_ids=args.group or (), options=options,
                                encrypt_to=args.encrypt_to)
    except ExportRefused as exc:
        out.emit({"error": str(exc), "refused": True}, [])
        print(f"error: {exc}", file=sys.stderr)
        return 1
    target = Path(args.out).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".tmp-{uuid.uuid4().hex}-{target.name}")
    try:
        shutil.copyfile(exports.file_of(ctx, record), part)
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
    out.emit({"id": record.id, "format": record.format, "out": str(target),
              "server_path": record.path, "size_bytes": record.size_bytes,
              "sha256": record.sha256, "encrypted_to": record.encrypted_to},
             [f"export {record.id}: {target} ({record.size_bytes} bytes, sha256 {record.sha256})"])
    return 0


def add_export_commands(sub) -> None:
    """Register ``export`` on the top-level subparsers."""
    s = sub.add_parser("export", help="export validated, anonymized media and annotations as a zip")
    s.add_argument("--format", required=True, choices=FORMATS)
    s.add_argument("--out", required=True, help="where to copy the zip (also kept in data/exports)")
    s.add_argument("--video", type=int, action="append", help="a validated video (repeatable)")
    s.add_argument("--group", type=int, action="append", help="a validated image group (repeatable)")
    s.add_argument("--frames", action="store_true", help="ship the (blanked) frame images")
    s.add_argument("--videos", action="store_true", help="ship the anonymized videos")
    s.add_argument("--frame-id-paths", action="store_true",
                   help="lx tables: frame_relative_path = frame_<frame_id>.jpg")
    s.add_argument("--transcode-fps", type=float,
                   help="lx tables: frames decoded from the anonymized video at this rate")
    s.add_argument("--transcode-ext", default="jpg", choices=("jpg", "png"),
                   help="lx tables: image type of transcoded frames")
    s.add_argument("--transcode-quality", type=int, default=90,
                   help="lx tables: JPEG quality of transcoded frames (1-100)")
    which = s.add_mutually_exclusive_group()
    which.add_argument("--only-true", action="store_true", help="only present (True) rows")
    which.add_argument("--only-false", action="store_true", help="only absent (False) rows")
    s.add_argument("--segments", action="append", help="only annotations inside these segments (ID,...)")
    s.add_argument("--use-export-flags", action="store_true",
                   help="only annotations inside segments marked for export")
    s.add_argument("--encrypt-to", help="age X25519 public key (age1...): the zip is encrypted to it")
    s.add_argument("--name", default="endolite export", help="AI dataset: name")
    s.add_argument("--description", default="", help="AI dataset: description")
    s.add_argument("--dataset-type", default="image", help="AI dataset: dataset_type")
    s.add_argument("--model-type", default="image_multilabel_classification",
                   help="AI dataset: ai_model_type")
    s.add_argument("--yolo-task", default="detect", choices=("detect", "segment"),
                   help="YOLO: boxes (detect) or polygons (segment)")
    s.set_defaults(func=cmd_export)
