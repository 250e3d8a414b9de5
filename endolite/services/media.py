"""Getting media in: browser uploads, server-side imports (leads, import folders only) and frame
extraction.  Paths a browser names are never trusted: uploads are staged under ``data/tmp``
with a safe base name, and a server path (typed into the page or listed in an uploaded
manifest) must resolve, symlinks followed, below an import folder.

Extraction runs inline (``extract``, the CLI) or as a background job of kind "extract"
(``start_extract``, the dashboard): one at a time per video, its result found again by
``extraction_job`` / ``extraction_of`` when the user comes back to the page."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from endolite.records import ExtractionResult, IngestResult, IngestStatus, Job, JobStatus, SampleMethod
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


# --- extraction as a background job ------------------------------------------------------------

EXTRACT_JOB = "extract"         # the jobs table's kind
RECENT_JOBS = 200               # the user's newest extraction jobs looked at for the page's last one
SHOWN_FOR_S = 3600.0            # a finished job is offered to its user for an hour after it ended
_UNFINISHED = (JobStatus.QUEUED, JobStatus.RUNNING)
_starting = threading.Lock()    # the running-job check and the job's row in one step


def running_extraction(con, video_id: int) -> Job | None:
    """The queued / running extraction job of video ``video_id`` (anyone's), or None."""
    from endolite.storage import jobs as job_store

    return next((j for j in job_store.unfinished(con, EXTRACT_JOB)
                 if j.params.get("video_id") == video_id), None)


def extraction_job(con, video_id: int, *, created_by: str,
                   shown_for_s: float = SHOWN_FOR_S) -> Job | None:
    """``created_by``'s newest extraction job of video ``video_id`` if it is still queued /
    running or ended less than ``shown_for_s`` seconds ago (by the database's clock); else None."""
    from endolite.services.users import now

    from endolite.storage import jobs as job_store

    job = next((j for j in job_store.recent(con, kind=EXTRACT_JOB, created_by=created_by,
                                            limit=RECENT_JOBS)
                if j.params.get("video_id") == video_id), None)
    if job is None or job.status in _UNFINISHED:
        return job
    ended = job.updated_at
    return job if ended is not None and (now(con) - ended).total_seconds() < shown_for_s else None


def extraction_of(con, job: Job) -> ExtractionResult:
    """The ExtractionResult of a done extraction job, its frames read again (a frame deleted
    since is left out)."""
    from endolite.storage import media as store

    r = job.result
    return ExtractionResult(extraction_id=r["extraction_id"], video_id=r["video_id"],
                            method=SampleMethod(r["method"]), picked=tuple(store.frames_by_ids(con, r["picked"])),
                            context=tuple(store.frames_by_ids(con, r["context"])),
                            frames_decoded=r["frames_decoded"])


def extract_work(ctx: Ctx, video_id: int, **options: Any) -> Callable[[Any, Any], dict[str, Any]]:
    """The ``work(cursor, progress)`` of a background extraction (``extract`` with ``options``
    on the job's cursor; its audit entry as there).  Checked now, before a job exists: the role,
    the video, and for method ``uncertain`` the model's run and checkpoint (and again inside).
    The job's result: ``{"extraction_id", "video_id", "method", "picked": [frame id],
    "context": [frame id], "frames_decoded"}``; a write error becomes a StorageError."""
    from endolite.errors import describe_os_error
    from endolite.storage import media as store

    ctx.check(Action.EXTRACT)
    store.get_video(ctx.con, video_id)                      # NotFound names the id
    if options.get("model") is not None:
        from endolite.train.active import done_run_checkpoint

        done_run_checkpoint(ctx.con, ctx.settings, options["model"])

    def work(cur, progress) -> dict[str, Any]:
        try:
            result = extract(replace(ctx, con=cur), video_id, progress=progress, **options)
        except OSError as exc:
            raise describe_os_error(exc, doing=f"extracting frames of video {video_id}") from exc
        return {"extraction_id": result.extraction_id, "video_id": result.video_id,
                "method": str(result.method), "picked": [f.id for f in result.picked],
                "context": [f.id for f in result.context], "frames_decoded": result.frames_decoded}

    return work


def start_extract(ctx: Ctx, video_id: int, *, con=None, background: bool = True,
                  **options: Any) -> Job:
    """``extract`` as a job of kind "extract" on ``con`` (default ``ctx.con``; the dashboard
    passes its process connection, which the job thread takes a cursor of), in a daemon thread
    or inline (``background=False``).  Checks as ``extract_work``; Conflict, naming the job,
    while an extraction of the same video is queued or running (anyone's: two at once would
    store the same frame numbers twice).  Returns the job (poll ``storage.jobs.get``)."""
    from endolite import jobs
    from endolite.errors import Conflict
    from endolite.storage import jobs as job_store

    work = extract_work(ctx, video_id, **options)
    con = con if con is not None else ctx.con
    with _starting:
        running = running_extraction(ctx.con, video_id)
        if running is not None:
            raise Conflict(f"video {video_id}: an extraction is already running (job {running.id} "
                           f"of {running.created_by}, {round(100 * running.progress)}%); wait for "
                           "it to finish before starting another")
        job = job_store.create(con, EXTRACT_JOB, params={"video_id": video_id, **options},
                               created_by=ctx.actor.name)
    return jobs.launch(con, job, work, background=background)
