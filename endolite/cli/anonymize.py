"""``endolite anonymize / validate / anonymization-report``: blank patient text out of videos and
image groups, and record a lead's decision on the result.

    endolite anonymize (VIDEO_ID | --group ID) [--redact x0,y0,x1,y1 ...] [--samples N]
    endolite validate (VIDEO_ID | --group ID) [--reject REASON]
    endolite anonymization-report (VIDEO_ID | --group ID)

``anonymize`` succeeds whether or not the residual check still finds text; it prints the count
(validation is a person's decision).  Errors exit 2 through ``endolite.cli.main``.
"""

from __future__ import annotations

from typing import Any

from endolite.errors import InvalidInput


def _cli():
    from endolite.cli import common

    return common


def _target(args) -> dict[str, int]:
    if (args.video_id is None) == (args.group is None):
        raise InvalidInput("name a video id or --group ID (one of them)")
    return {"video_id": args.video_id} if args.video_id is not None else {"group_id": args.group}


def _box(entry: dict[str, Any]) -> str:
    where = f"frame {entry['frame']}" + (f" (id {entry['frame_id']})" if "frame_id" in entry else "")
    return f"  {where}: {entry['box']} {entry['text']!r} {entry['score']:.2f}"


def _summary(row) -> dict[str, Any]:
    return {"media": row.media, "status": str(row.status), "path": row.path, "sha256": row.sha256,
            "text_boxes": len(row.text_boxes), "residual": len(row.residual),
            "sampled_frames": row.sampled_frames, "redactions": row.redactions,
            "decided_by": row.decided_by, "reason": row.reason}


def cmd_anonymize(args, out) -> int:
    from endolite.services import anonymization

    target = _target(args)
    ctx = _cli().context(args)
    row = _cli().as_job(ctx, "anonymize", {**target, "samples": args.samples},
                        lambda c, progress: anonymization.anonymize(
                            c, **target, redactions=list(args.redact or []),
                            samples=args.samples, progress=progress))
    out.emit(_summary(row), [
        f"{row.media}: {row.status}; {len(row.text_boxes)} text boxes found on the raw media, "
        f"{len(row.residual)} left on {row.sampled_frames} "
        f"{'frames' if row.video_id is not None else 'images'} of the anonymized copy",
        f"copy: {row.path or 'anonymized/group_' + str(row.group_id)}  sha256 {row.sha256}",
        *([_box(e) for e in row.residual]),
        "check the copy, then: endolite validate ... (or --reject REASON)"])
    return 0


def cmd_validate(args, out) -> int:
    from endolite.services import anonymization

    target = _target(args)
    ctx = _cli().context(args)
    if args.reject is not None:
        row = anonymization.reject(ctx, **target, reason=args.reject)
    else:
        row = anonymization.validate(ctx, **target)
    why = f": {row.reason}" if row.reason else ""
    out.emit(_summary(row), [f"{row.media}: {row.status} by {row.decided_by}{why}"])
    return 0


def cmd_report(args, out) -> int:
    from endolite.services import anonymization

    rep = anonymization.report(_cli().context(args), **_target(args))
    lines = [f"{rep['media']}: {rep['status']}"]
    if rep["status"] != "raw":
        fov = rep["fov"]
        if rep["video_id"] is not None:
            lines.append(f"field of view: bbox {fov.get('bbox')} "
                         f"({100 * fov.get('area_fraction', 0):.1f}% of the frame)")
        else:
            lines.append(f"field of view: detected per image ({len(fov)} images)")
        lines.append(f"text found: {len(rep['text_boxes'])} boxes (raw media, and checks of "
                     f"earlier rounds) in {len(rep['regions'])} regions")
        lines += [f"  {r['box']} on {r['frames']} frames, read as "
                  + ", ".join(repr(t) for t in r["texts"]) for r in rep["regions"]]
        if rep["ignored"]:
            lines.append(f"not taken for text (taller than a text line, not blanked): "
                         f"{len(rep['ignored'])} boxes")
            lines += [_box(e) for e in rep["ignored"][:10]]
        lines.append(f"rectangles drawn: {rep['redactions'] or 'none'}")
        lines.append(f"residual text on the anonymized copy: {len(rep['residual'])} boxes on "
                     f"{len(rep['residual_by_frame'])} of {rep['sampled_frames']} frames read")
        if rep["residual"]:
            from endolite.services.anonymization import text_regions

            lines += [f"  {r['box']} on {r['frames']} frames, read as "
                      + ", ".join(repr(t) for t in r["texts"]) for r in text_regions(rep["residual"])]
            lines.append("  frames with residual text: "
                         + ", ".join(str(f) for f in sorted(rep["residual_by_frame"])))
        if rep["decided_by"]:
            why = f": {rep['reason']}" if rep["reason"] else ""
            lines.append(f"decided by {rep['decided_by']} at {rep['decided_at']}{why}")
    out.emit(rep, lines)
    return 0


def _media_args(s) -> None:
    s.add_argument("video_id", type=int, nargs="?", help="the video's id")
    s.add_argument("--group", type=int, help="an image group's id instead of a video")


def add_anonymize_commands(sub) -> None:
    """Register ``anonymize``, ``validate`` and ``anonymization-report``."""
    s = sub.add_parser("anonymize", help="black out patient text and everything outside the "
                                         "field of view; writes data/anonymized/...")
    _media_args(s)
    s.add_argument("--redact", action="append", metavar="x0,y0,x1,y1",
                   help="also black out this rectangle (pixels, x right, y down); repeatable")
    s.add_argument("--samples", type=int, default=50,
                   help="raw frames read for OCR and field of view (default 50)")
    s.set_defaults(func=cmd_anonymize)

    s = sub.add_parser("validate", help="approve an anonymized copy (or --reject REASON)")
    _media_args(s)
    s.add_argument("--reject", metavar="REASON", help="send it back with this reason")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("anonymization-report",
                       help="field of view, text found, residual text, decision")
    _media_args(s)
    s.set_defaults(func=cmd_report)


__all__ = ["add_anonymize_commands"]
