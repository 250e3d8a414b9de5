"""Running a trained model over videos and image groups (leads), and people's decisions on what
it suggests (annotators: predicted segments and predicted frame labels).

``predict`` loads the run's ``best.pt`` (``endolite.train.predict``), predicts every ``every``-th
decoded frame of a video (the anonymized copy when there is one, as training read anonymized
frames) or every frame of an image group, stores the probabilities (source 'model', the run
id, the extracted frame's id where one exists at that frame number) and, for a video, the
segments found by smoothing + hysteresis (``endolite.train.segments``) as *proposed*.
``start_predict_job`` runs it as a background job (``endolite.jobs``; the Training page
starts predictions this way) whose id the stored set records.

``decide_segment`` turns a proposed segment into one of the actor's own segments (optionally
with edited bounds) or rejects it.  ``suggestions`` lists a frame's predicted-present labels
that the user has neither decided nor set; ``decide_suggestion`` accepts one (the user's frame
label set present) or rejects it.  Every change is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import duckdb
import numpy as np

from endolite.errors import InvalidInput
from endolite.records import Job, Presence
from endolite.services.access import Action, Ctx
from endolite.storage import anonymizations as anon
from endolite.storage import labels as label_store
from endolite.storage import media as media_store
from endolite.storage import predictions as store
from endolite.storage.predictions import PredictedSegment, PredictionSet
from endolite.storage.tx import transaction

Progress = Callable[[float, str], None]
#: A predicted probability at or above this counts as "present" for suggestions.
SUGGEST_THRESHOLD = 0.5


def _run(con: duckdb.DuckDBPyConnection, run_id: int):
    """The training run (``storage.training.TrainingRun``); NotFound when there is none."""
    from endolite.storage.training import get_run

    return get_run(con, run_id)


def checkpoint_of(ctx: Ctx, run_id: int):
    """The ``best.pt`` path of a finished run; InvalidInput unless the run is done and has one."""
    run = _run(ctx.con, run_id)
    if str(run.status) != "done":
        raise InvalidInput(f"training run {run_id}: status {run.status}; only a done run predicts")
    path = ctx.settings.absolute(run.run_dir) / "best.pt"
    if not path.is_file():
        raise InvalidInput(f"training run {run_id}: no checkpoint at {path}")
    return run, path


def segment_options(fps: float | None, every: int):
    """Smoothing + hysteresis for a video at ``fps`` sampled every ``every``-th frame: a moving
    average over ~0.4 s of samples (at least 1), enter at 0.6, stay while >= 0.4, segments of
    at least ~0.5 s (and at least one sample)."""
    from endolite.train.segments import SegmentOptions

    fps = fps if fps and fps > 0 else 25.0
    window = max(1, int(round(0.4 * fps / every)))
    return SegmentOptions(window=window, high=0.6, low=0.4,
                          min_frames=max(every, int(round(0.5 * fps))))


def predict(ctx: Ctx, run_id: int, *, video_id: int | None = None, group_id: int | None = None,
            every: int = 1, progress: Progress | None = None, job_id: int | None = None,
            device: str = "auto", precision: str = "auto") -> PredictionSet:
    """Run training run ``run_id``'s best model over one video (every ``every``-th decoded frame,
    0-based frame numbers 0, n, 2n, ...) or image group (every frame); store a prediction set
    and return it (``frames``: rows predicted, ``fps``: rows per second including decoding,
    ``precision``: the inference form chosen).  Leads and admins only."""
    from endolite.train.predict import Predictor
    from endolite.train.segments import find_segments

    ctx.check(Action.PREDICT)
    if (video_id is None) == (group_id is None):
        raise InvalidInput("name exactly one of --video or --group")
    if int(every) < 1:
        raise InvalidInput(f"every: must be at least 1, got {every}")
    every = int(every) if video_id is not None else 1
    run, ckpt = checkpoint_of(ctx, run_id)
    predictor = Predictor.load(ckpt, device=device, precision=precision)
    if list(predictor.labels) != list(run.labels) or len(run.label_ids) != len(run.labels):
        raise InvalidInput(f"training run {run_id}: checkpoint labels {list(predictor.labels)} "
                           f"differ from the run's {list(run.labels)}")
    con = ctx.con
    video = None
    if video_id is not None:
        video = media_store.get_video(con, video_id)
        done = anon.get(con, video_id=video_id)
        path = ctx.settings.absolute(video.path)
        if done is not None and done.path and ctx.settings.absolute(done.path).is_file():
            path = ctx.settings.absolute(done.path)
        result = predictor.predict_video(path, every=every, progress=progress)
        extracted = {f.frame_number: f.id for f in media_store.frames_of(con, video_id=video_id)}
        frame_ids = np.array([extracted.get(int(n), -1) for n in result.frame_numbers], np.int64)
    else:
        media_store.get_group(con, group_id)   # type: ignore[arg-type]
        frames = media_store.frames_of(con, group_id=group_id)
        copies = anon.frames(con, [f.id for f in frames])
        paths = [ctx.settings.absolute(copies[f.id][0] if f.id in copies else f.path) for f in frames]
        result = predictor.predict_images(paths, [f.frame_number for f in frames],
                                          [f.id for f in frames], progress=progress)
        frame_ids = result.frame_ids
    if progress is not None:
        progress(0.999, f"storing {len(result.frame_numbers)} predicted frames")
    found: list[dict[str, Any]] = []
    if video is not None:
        opts = segment_options(video.fps, every)
        total = max(video.frame_count or 0, result.decoded) or None
        for j, label_id in enumerate(run.label_ids):
            for seg in find_segments(result.probs[:, j], every=every,
                                     frame_numbers=result.frame_numbers, total_frames=total,
                                     options=opts):
                found.append({"label_id": label_id, "start_frame": seg.start,
                              "end_frame": seg.end, "mean_probability": seg.mean_probability})
    with transaction(con, what="storing predictions"):
        pset = store.create_set(con, run_id=run.id, video_id=video_id, group_id=group_id,
                                every=every, job_id=job_id, created_by=ctx.actor.name)
        store.insert_predictions(con, pset, frame_numbers=result.frame_numbers,
                                 frame_ids=frame_ids, label_ids=list(run.label_ids),
                                 probs=result.probs)
        store.insert_predicted_segments(con, pset, found)
        pset = store.finish_set(con, pset.id, frames=len(result.frame_numbers),
                                fps=round(result.fps, 2), precision=result.precision)
    ctx.record(Action.PREDICT, entity="prediction_set", entity_id=pset.id, run_id=run.id,
               video_id=video_id, group_id=group_id, every=every, frames=pset.frames,
               fps=pset.fps, precision=pset.precision, predicted_segments=len(found),
               extracted_frames=int((frame_ids >= 0).sum()))
    return pset


def start_predict_job(ctx: Ctx, run_id: int, *, video_id: int | None = None,
                      group_id: int | None = None, every: int = 1,
                      con: duckdb.DuckDBPyConnection | None = None,
                      background: bool = True) -> Job:
    """``predict`` as a job of kind "predict" on ``con`` (default ``ctx.con``; a connection the
    job thread can take a cursor of: the dashboard passes a cursor of its own for the job), in a
    daemon thread or inline (``background=False``); the set records the job's id.  The role
    and the run are checked now, before a job exists, and again inside.  The job's result:
    ``{"set_id", "frames", "fps", "precision"}``.  Returns the job (poll ``storage.jobs.get`` /
    ``jobs.wait``)."""
    from endolite import jobs
    from endolite.storage import jobs as job_store

    ctx.check(Action.PREDICT)
    checkpoint_of(ctx, run_id)
    con = con if con is not None else ctx.con
    params = {"run_id": run_id, "video_id": video_id, "group_id": group_id, "every": every}
    job = job_store.create(con, "predict", params=params, created_by=ctx.actor.name)

    def work(cur, progress: Progress) -> dict[str, Any]:
        pset = predict(replace(ctx, con=cur), run_id, video_id=video_id, group_id=group_id,
                       every=every, progress=progress, job_id=job.id)
        return {"set_id": pset.id, "frames": pset.frames, "fps": pset.fps,
                "precision": pset.precision}

    return jobs.launch(con, job, work, background=background)


# --- predicted segments ---------------------------------------------------------------------

def decide_segment(ctx: Ctx, predicted_segment_id: int, *, accept: bool, start: int | None = None,
                   end: int | None = None) -> PredictedSegment:
    """Accept (as one of the actor's own segments ``[start, end)``, by default the predicted
    bounds) or reject a proposed segment.  InvalidInput when it was decided already."""
    ctx.check(Action.PREDICTED_SEGMENT_DECIDE)
    from endolite.services import annotations

    ps = store.get_predicted_segment(ctx.con, predicted_segment_id)
    if ps.status != "proposed":
        raise InvalidInput(f"predicted segment {ps.id}: already {ps.status} by {ps.decided_by}")
    s = ps.start_frame if start is None else int(start)
    e = ps.end_frame if end is None else int(end)
    with transaction(ctx.con, what="deciding a predicted segment"):
        if accept:
            seg = annotations.add_segment(ctx, ps.video_id, label=ps.label, start=s, end=e)
            after = store.decide_predicted_segment(ctx.con, ps.id, status="accepted",
                                                   decided_by=ctx.actor.name, segment_id=seg.id)
        else:
            after = store.decide_predicted_segment(ctx.con, ps.id, status="rejected",
                                                   decided_by=ctx.actor.name)
        ctx.record(Action.PREDICTED_SEGMENT_DECIDE, entity="predicted_segment", entity_id=ps.id,
                   run_id=ps.run_id, video_id=ps.video_id, label=ps.label, status=after.status,
                   predicted=[ps.start_frame, ps.end_frame],
                   **({"segment_id": after.segment_id, "bounds": [s, e]} if accept else {}))
    return after


# --- frame-label suggestions ----------------------------------------------------------------

@dataclass(frozen=True)
class Suggestion:
    """A label the model predicts present on a frame: ``probability`` >= ``SUGGEST_THRESHOLD``
    in set ``set_id`` of run ``run_id``."""

    label: str
    label_id: int
    probability: float
    run_id: int
    set_id: int


def suggestions(con: duckdb.DuckDBPyConnection, frame_id: int, *,
                user: str | None = None) -> list[Suggestion]:
    """Predicted-present labels of an extracted frame, most probable first: from the newest
    prediction set (holding this frame) of the most recent *done* run that predicted it.
    With ``user``: without the labels that user already decided for that run or already set as
    a frame label (any value).  No predictions: an empty list."""
    rows = store.suggested_labels(con, frame_id, threshold=SUGGEST_THRESHOLD, user=user)
    return [Suggestion(label=r["label"], label_id=int(r["label_id"]),
                       probability=float(r["probability"]), run_id=int(r["run_id"]),
                       set_id=int(r["set_id"])) for r in rows]


def decide_suggestion(ctx: Ctx, frame_id: int, label: str | int, run_id: int, *,
                      accept: bool) -> str:
    """Accept (the actor's frame label ``label`` set present on the frame) or reject a model's
    suggestion; the decision is recorded for ``run_id``.  Returns "accepted" / "rejected"."""
    ctx.check(Action.SUGGESTION_DECIDE)
    from endolite.services import annotations

    media_store.get_frame(ctx.con, frame_id)
    lab = (label_store.get(ctx.con, int(label)) if isinstance(label, int)
           else label_store.get_by_name(ctx.con, str(label)))
    _run(ctx.con, run_id)
    decision = "accepted" if accept else "rejected"
    with transaction(ctx.con, what="deciding a suggestion"):
        if accept:
            annotations.set_frame_labels(ctx, frame_id, [(lab.name, Presence.PRESENT, None)])
        store.record_decision(ctx.con, kind="suggestion", run_id=int(run_id), frame_id=frame_id,
                              label_id=lab.id, decision=decision, decided_by=ctx.actor.name)
        ctx.record(Action.SUGGESTION_DECIDE, entity="frame", entity_id=frame_id, run_id=int(run_id),
                   label=lab.name, decision=decision)
    return decision
