"""The Training page's sections for a finished run: predictions over a video or image group
(a background job, then the probability timeline with predicted segments to accept, edit or
reject: ``timeline_predictions.py``) and the likely mislabels a lead reviews.  Streamlit glue;
the work is in ``endolite.services.predictions`` and ``endolite.services.mislabels``."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import ui
from endolite.records import JobStatus
from endolite.services import Action
from endolite.services import mislabels as mislabel_service
from endolite.services import predictions as predict_service
from endolite.storage import jobs as job_store
from endolite.storage import media
from endolite.storage import predictions as prediction_store


def predict_section(ctx, run) -> None:
    """Choose a video / image group and n; run the model as a job; show the latest set."""
    video_id, group_id, title = ui.sequence_picker(key="predict_seq")
    which = {"video_id": video_id} if video_id is not None else {"group_id": group_id}
    left, right = st.columns([1, 3])
    every = left.number_input("Every n-th frame", min_value=1, max_value=1000, value=1,
                              key="predict_every", disabled=group_id is not None)
    job_key = f"predict_job_{run.id}"
    if ctx.may(Action.PREDICT) and right.button("Run predictions", key="predict_go",
                                               disabled=job_key in st.session_state):
        with ui.reported_errors():
            # the service's own job, on a cursor of its own: the set records the job's id
            job = predict_service.start_predict_job(ctx, run.id, **which, every=int(every),
                                                    con=ui.cursor())
            st.session_state[job_key] = job.id
    if job_key in st.session_state:
        _job_progress(job_key)

    sets = [s for s in prediction_store.sets_of(ctx.con, **which, run_id=run.id) if s.frames]
    if not sets:
        st.caption(f"No predictions of run {run.id} on {ui.md(title)} yet.")
        return
    latest = sets[0]
    speed = f" at {latest.fps:.1f} frames/s" if latest.fps else ""
    st.caption(f"Prediction set {latest.id}: {latest.frames} frames (every {latest.every}), "
               f"{latest.precision or 'float32'}{speed}")
    if video_id is not None:
        import timeline_predictions

        timeline_predictions.render_prediction_timeline(ctx.con, video_id, latest.id, ctx=ctx)
    else:
        tr = prediction_store.track(ctx.con, latest.id)
        table = pd.DataFrame(tr.probs, columns=list(tr.labels))
        table.insert(0, "frame", tr.frame_numbers)
        st.dataframe(table, hide_index=True)


@st.fragment(run_every=1.0)
def _job_progress(job_key: str) -> None:
    job = job_store.get(ui.cursor(), st.session_state[job_key])
    if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        st.progress(min(max(job.progress, 0.0), 1.0), text=f"Predicting: {ui.md(job.message)}")
        return
    st.session_state.pop(job_key, None)
    if job.status == JobStatus.FAILED:
        st.session_state["train_flash_error"] = f"Prediction failed: {job.message}"
    else:
        r = job.result or {}
        st.session_state["train_flash"] = (f"Predicted {r.get('frames', 0)} frames at "
                                           f"{(r.get('fps') or 0):.1f} frames/s "
                                           f"({r.get('precision')}).")
    st.rerun(scope="app")


def mislabel_section(ctx, run) -> None:
    """The run's likely mislabels (held-out frames where the model confidently disagrees with
    the annotation), each with its frame and Confirm / Dismiss for a lead."""
    with ui.reported_errors():
        items = mislabel_service.likely_mislabels(ctx.con, ctx.settings, run.id)
        if not items:
            st.caption("No likely mislabels: on its validation and test frames the model agrees "
                       "with the annotations (or is not confident where it does not).")
            return
        st.caption(f"{len(items)} frame / label pairs where the model confidently disagrees "
                   "with the annotation (held-out frames only). Confirmed ones are fixed on the "
                   "Frame labels page; dismissed ones stay out of the Visual Layer export.")
        table = pd.DataFrame([{"frame": m.frame_id, "label": m.label,
                               "annotated": "present" if m.given else "absent",
                               "model says": "present" if m.suggested else "absent",
                               "confidence": round(m.confidence, 3),
                               "review": m.decision or "—"} for m in items])
        st.dataframe(table, hide_index=True, key="mislabel_table")
        options = list(range(len(items)))
        pick = st.selectbox("Review", options, key="mislabel_pick",
                            format_func=lambda i: f"frame {items[i].frame_id} · {items[i].label} · "
                                                  f"{items[i].confidence:.2f}")
        item = items[pick]
        frame = media.get_frame(ctx.con, item.frame_id)
        left, right = st.columns([2, 1])
        left.image(str(ctx.settings.data_dir / frame.path), width=360)
        if ctx.may(Action.MISLABEL_REVIEW):
            if right.button("Confirm: the annotation is wrong", key="mislabel_confirm"):
                mislabel_service.review(ctx, run.id, item.frame_id, item.label, "confirmed")
                st.rerun()
            if right.button("Dismiss: the annotation stands", key="mislabel_dismiss"):
                mislabel_service.review(ctx, run.id, item.frame_id, item.label, "dismissed")
                st.rerun()
