"""Getting media in: browser uploads, server-side imports (leads, import folders only) and frame
extraction.  Paths a browser names are never trusted: uploads are staged under ``data/tmp``
with a safe base name, and a server path (typed into the page or listed in an uploaded
manifest) must resolve, symlinks followed, below an import folder."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from endolite.records import IngestResult, IngestStatus
from endolite.services.access import Action, Ctx
from endolite.services.settings import import_roots


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    real = Path(os.path.realpath(path))
    return any(real == r or r in real.parents for r in roots)


def checked_server_paths(ctx: Ctx, paths: Sequence[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Split server ``paths`` into (allowed, [(path, reason)] refused): the server's shell user
    reads what its shell can; everyone else only below the import folders."""
    if ctx.actor.shell:
        return [Path(p) for p in paths], []
    roots = import_roots(ctx, ctx.settings)
    allowed, refused = [], []
    for raw in paths:
        text = str(raw)
        if text.startswith("file:"):
            text = text[5:].lstrip("/")
            text = "/" + text
        if _inside(Path(text), roots):
            allowed.append(Path(text))
        else:
            refused.append((str(raw), f"{raw}: outside the allowed import folders "
                                      f"({', '.join(map(str, roots))}); refused"))
    return allowed, refused


def _summary(ctx: Ctx, action: Action, results: list[IngestResult], **details: Any) -> None:
    """One audit entry per import: what came in (kind, id, title, frames), what was a
    duplicate of what, and what was rejected with its reason."""
    ctx.record(action, entity="media", **details,
               imported=[{"kind": str(r.kind), "id": r.id, "title": r.title,
                          "frames": len(r.frame_ids)} for r in results
                         if r.status == IngestStatus.IMPORTED],
               duplicates=[r.reason for r in results if r.status == IngestStatus.DUPLICATE],
               rejected=[r.reason for r in results if r.status == IngestStatus.REJECTED])


def upload(ctx: Ctx, staged: Sequence[Path], *, names: Mapping[str, str], progress=None) -> list[IngestResult]:
    """Import files a browser uploaded (already staged under data/tmp by
    ``endolite.ingest.upload.stage_upload``).  A manifest among them may reference server
    files only when the actor is a lead or admin, and then only below the import folders."""
    from endolite.ingest import ingest_paths

    ctx.check(Action.MEDIA_UPLOAD)
    tmp = Path(os.path.realpath(ctx.settings.tmp_dir))
    for path in staged:
        if not _inside(path, [tmp]):
            raise ValueError(f"{path}: not a staged upload")   # programming error, not user input
    roots = sorted({Path(os.path.realpath(p)).parent for p in staged})   # this upload's own folders
    if ctx.may(Action.MEDIA_IMPORT_SERVER):
        roots += import_roots(ctx, ctx.settings)
    results = ingest_paths(ctx.con, ctx.settings, [str(p) for p in staged], user=ctx.actor.name,
                           progress=progress, display_names=names, roots=roots)
    _summary(ctx, Action.MEDIA_UPLOAD, results, files=[names.get(str(p), p.name) for p in staged])
    return results


def import_server(ctx: Ctx, paths: Sequence[str | Path], *, progress=None) -> list[IngestResult]:
    """Import files / folders / zips / manifests already on the server (leads and admins; only
    below the import folders, except for the server's shell user)."""
    from endolite.ingest import ingest_paths

    ctx.check(Action.MEDIA_IMPORT_SERVER)
    roots = None if ctx.actor.shell else import_roots(ctx, ctx.settings)
    results = ingest_paths(ctx.con, ctx.settings, [str(p) for p in paths], user=ctx.actor.name,
                           progress=progress, roots=roots)      # ingest refuses what is outside
    _summary(ctx, Action.MEDIA_IMPORT_SERVER, results, paths=[str(p) for p in paths])
    return results


def extract(ctx: Ctx, video_id: int, **options: Any):
    """Pick frames of a video (leads and admins); see endolite.extract.extract_frames.  When the
    video was anonymized, the new frames get blanked copies with the same redaction."""
    from endolite.extract import extract_frames

    from endolite.anonymize.pipeline import blank_new_frames

    ctx.check(Action.EXTRACT)
    result = extract_frames(ctx.con, ctx.settings, video_id, user=ctx.actor.name, **options)
    # an anonymized video: blank the new frames with its stored redaction (validation stands);
    # if that fails the frames stay unblanked, which the export gate refuses
    blanked, failure = [], None
    try:
        blanked = blank_new_frames(ctx.con, ctx.settings, video_id,
                                   [f.id for f in result.picked + result.context])
    except Exception as exc:  # noqa: BLE001 - recorded below, then raised
        failure = exc
    ctx.record(Action.EXTRACT, entity="video", entity_id=video_id,
               extraction_id=result.extraction_id, method=str(result.method),
               picked=[f.id for f in result.picked], context=len(result.context),
               frames_decoded=result.frames_decoded, blanked=len(blanked),
               **({"blank_error": str(failure)} if failure else {}))
    if failure is not None:
        raise failure
    return result
