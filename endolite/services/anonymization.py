"""Anonymization of videos and image groups (leads and admins), and the human decision on it.

``anonymize`` runs ``endolite.anonymize.pipeline`` (FOV + OCR -> static redaction -> blanked
copies -> residual OCR check) and records the result with status *anonymized* (clearing an
earlier validation).  ``validate`` / ``reject`` are a lead's decision after looking at the
copies: validating refuses media that was never anonymized and media whose anonymized file (or
set of blanked images) no longer has the hash that was checked.  ``report`` reads only.
Every change is audited with entity ``video`` or ``image_group``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from endolite.errors import InvalidInput
from endolite.services.access import Action, Ctx
from endolite.storage import anonymizations as anon
from endolite.storage import media as store
from endolite.storage.anonymizations import AnonStatus


def _which(video_id: int | None, group_id: int | None) -> tuple[str, int, str]:
    """(entity, id, "video 3" / "image group 2"); InvalidInput unless exactly one is given."""
    if (video_id is None) == (group_id is None):
        raise InvalidInput("name exactly one of a video id or an image group id")
    if video_id is not None:
        return "video", int(video_id), f"video {video_id}"
    return "image_group", int(group_id), f"image group {group_id}"   # type: ignore[arg-type]


def _exists(ctx: Ctx, video_id: int | None, group_id: int | None) -> None:
    """NotFound for an unknown video / image group."""
    if video_id is not None:
        store.get_video(ctx.con, video_id)
    else:
        store.get_group(ctx.con, group_id)   # type: ignore[arg-type]


def anonymize(ctx: Ctx, *, video_id: int | None = None, group_id: int | None = None,
              redactions: Iterable[Any] = (), samples: int = 50,
              progress: Callable[[float, str], None] | None = None) -> anon.Anonymization:
    """Anonymize one video or image group; returns the stored row (status anonymized).

    ``redactions``: extra rectangles ``[x0, y0, x1, y1]`` in pixels (x right, y down) to black
    out; for a group also ``{"frame_id": id, "box": [...]}`` for a single image.  ``samples``:
    raw video frames read for OCR and FOV (the residual check reads at least 50).  The residual
    text found is reported, not refused: validation is a person's decision.
    """
    from endolite.anonymize.pipeline import anonymize_group_media, anonymize_video_media

    ctx.check(Action.ANONYMIZE)
    entity, media_id, _ = _which(video_id, group_id)
    _exists(ctx, video_id, group_id)
    before = anon.status_of(ctx.con, video_id=video_id, group_id=group_id)
    redactions = list(redactions)
    if video_id is not None:
        row = anonymize_video_media(ctx.con, ctx.settings, video_id, redactions=redactions,
                                    samples=samples, created_by=ctx.actor.name, progress=progress)
    else:
        row = anonymize_group_media(ctx.con, ctx.settings, group_id, redactions=redactions,   # type: ignore[arg-type]
                                    created_by=ctx.actor.name, progress=progress)
    ctx.record(Action.ANONYMIZE, entity=entity, entity_id=media_id, status_before=str(before),
               sha256=row.sha256, path=row.path, text_boxes=len(row.text_boxes),
               redactions=row.redactions, residual=len(row.residual),
               sampled_frames=row.sampled_frames)
    return row


def _current_sha(ctx: Ctx, row: anon.Anonymization) -> str | None:
    """The hash of the anonymized media as it is on disk now (None: the video file is gone)."""
    from endolite.media import sha256_file

    if row.video_id is not None:
        path = ctx.settings.absolute(row.path) if row.path else None
        return sha256_file(path) if path is not None and path.is_file() else None
    ids = [f.id for f in store.frames_of(ctx.con, group_id=row.group_id)]
    copies = anon.frames(ctx.con, ids)
    hashes = []
    for fid in ids:
        if fid not in copies or not ctx.settings.absolute(copies[fid][0]).is_file():
            return None
        hashes.append((fid, sha256_file(ctx.settings.absolute(copies[fid][0]))))
    return anon.group_digest(hashes)


def _decide(ctx: Ctx, video_id: int | None, group_id: int | None, *, validated: bool,
            reason: str | None) -> anon.Anonymization:
    ctx.check(Action.ANONYMIZATION_DECIDE)
    entity, media_id, name = _which(video_id, group_id)
    _exists(ctx, video_id, group_id)
    row = anon.get(ctx.con, video_id=video_id, group_id=group_id)
    if row is None:
        raise InvalidInput(f"{name}: not anonymized (status raw); anonymize it first")
    if validated:
        now = _current_sha(ctx, row)
        if now != row.sha256:
            what = "is missing" if now is None else "changed on disk"
            raise InvalidInput(f"{name}: its anonymized copy {what} since it was checked "
                               f"(sha256 {row.sha256[:12]}...); anonymize it again before validating")
    row = anon.decide(ctx.con, video_id=video_id, group_id=group_id, validated=validated,
                      reason=reason, decided_by=ctx.actor.name)
    ctx.record(Action.ANONYMIZATION_DECIDE, entity=entity, entity_id=media_id,
               status=str(row.status), sha256=row.sha256, reason=reason,
               residual=len(row.residual))
    return row


def validate(ctx: Ctx, *, video_id: int | None = None, group_id: int | None = None) -> anon.Anonymization:
    """A lead's approval of the anonymized copy (exports may then carry it).  InvalidInput when
    it is not anonymized or its file / blanked images changed since the check."""
    return _decide(ctx, video_id, group_id, validated=True, reason=None)


def reject(ctx: Ctx, *, video_id: int | None = None, group_id: int | None = None,
           reason: str) -> anon.Anonymization:
    """Send the anonymization back with ``reason`` (required: it tells the next person what to
    fix, e.g. a rectangle to add)."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("reason: say why the anonymization is sent back")
    return _decide(ctx, video_id, group_id, validated=False, reason=reason)


def text_regions(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Text box entries merged into regions of overlapping boxes (pure): ``[{"box": [x0, y0,
    x1, y1] (union), "texts": the 3 most frequent readings, "frames": frames it was found on,
    "boxes": entries}]``, top to bottom.  A line found on 50 frames is one region.  Entries
    marked ``ignored`` (not taken for text) are left out."""
    regions: list[dict[str, Any]] = []
    for e in entries:
        if "ignored" in e:
            continue
        x0, y0, x1, y1 = e["box"]
        regions.append({"box": [x0, y0, x1, y1], "items": [e]})
    merged = True
    while merged:
        merged = False
        out: list[dict[str, Any]] = []
        for r in regions:
            for o in out:
                a, b = r["box"], o["box"]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    o["box"] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    o["items"] += r["items"]
                    merged = True
                    break
            else:
                out.append(r)
        regions = out
    result = []
    for r in sorted(regions, key=lambda r: (r["box"][1], r["box"][0])):
        counts: dict[str, int] = {}
        for e in r["items"]:
            counts[e["text"]] = counts.get(e["text"], 0) + 1
        texts = sorted(counts, key=lambda t: -counts[t])[:3]
        result.append({"box": r["box"], "texts": texts, "boxes": len(r["items"]),
                       "frames": len({e.get("frame_id", e["frame"]) for e in r["items"]})})
    return result


def report(ctx: Ctx, *, video_id: int | None = None, group_id: int | None = None) -> dict[str, Any]:
    """What the anonymization found and left (reads only): ``status``, ``fov``, ``text_boxes``
    (on the raw media; entries with ``"round": k`` were found by check k on the anonymized copy
    and added), ``regions`` (those merged where they overlap, see ``text_regions``), ``ignored`` (boxes
    too tall for a text line, not blanked), ``redactions``, ``residual`` and ``residual_by_frame`` (``{frame number:
    [entries]}`` for a video, ``{frame id: [entries]}`` for an image group),
    ``sampled_frames``, ``path``, ``sha256``, ``validated_sha256``, who created / decided, when,
    and the ``reason`` of a rejection.  Status ``raw`` and nothing else when never anonymized."""
    _, media_id, name = _which(video_id, group_id)
    _exists(ctx, video_id, group_id)
    row = anon.get(ctx.con, video_id=video_id, group_id=group_id)
    base: dict[str, Any] = {"media": name, "video_id": video_id, "group_id": group_id}
    if row is None:
        return {**base, "status": str(AnonStatus.RAW)}
    by_frame: dict[int, list] = {}
    for entry in row.residual:
        by_frame.setdefault(int(entry.get("frame_id", entry["frame"])), []).append(entry)
    fov = row.fov
    if row.video_id is not None and isinstance(fov, dict):
        fov = {k: v for k, v in fov.items() if k != "redaction"} | {
            "polygon": (fov.get("redaction") or {}).get("fov_polygon", [])}
    return {**base, "status": str(row.status), "fov": fov, "text_boxes": row.text_boxes,
            "regions": text_regions(row.text_boxes),
            "ignored": [e for e in row.text_boxes if "ignored" in e],
            "redactions": row.redactions, "residual": row.residual,
            "residual_by_frame": by_frame, "sampled_frames": row.sampled_frames,
            "path": row.path, "sha256": row.sha256, "validated_sha256": row.validated_sha256,
            "created_by": row.created_by, "created_at": row.created_at,
            "decided_by": row.decided_by, "decided_at": row.decided_at, "reason": row.reason}


__all__ = ["anonymize", "reject", "report", "text_regions", "validate"]
