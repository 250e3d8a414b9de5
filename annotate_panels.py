"""The Annotate page's propagation and review panels (``views/annotate.py`` calls ``show``):
the propagation form and its job's progress, and the review strip of propagated masks.
-> endolite.services.masks (propagate), endolite.storage.annotations (review counts / page)."""

from __future__ import annotations

import streamlit as st

import ui
from endolite import annotate
from endolite.records import JobStatus
from endolite.storage import annotations, jobs, media


@st.fragment(run_every=1.0)
def job_progress() -> None:
    job_id = st.session_state.get("ann_job")
    if not job_id:
        return
    job = jobs.get(ui.cursor(), job_id)
    if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        st.progress(job.progress, text=f"Propagating: {job.message}")
    elif job.status == JobStatus.FAILED:
        st.error(f"Propagation failed: {ui.md(job.message)}")
        st.session_state.pop("ann_job", None)
    else:
        st.success(f"Propagation done: {job.result.get('made', 0)} masks "
                   f"({job.result.get('flagged', 0)} flagged for review).")
        st.session_state.pop("ann_job", None)
        st.rerun()


# --- review strip: propagated masks of the sequence, flagged first -----------------------------
@st.cache_data(max_entries=512, show_spinner=False)
def review_thumbnail(data_dir: str, mask_id: int, version: int, _frame, _mask):
    """A review-strip picture, drawn once per mask version (not on every rerun)."""
    from endolite.config import Settings

    return annotate.thumbnail(Settings.resolve(data_dir), _frame, _mask)


def show(ctx, frame, shown_masks, *, blind: bool) -> None:
    """Below the mask list: the propagation form for the mask whose Propagate was pressed, the
    running job's progress, and the review strip of the sequence's propagated masks."""
    con, settings, user_name = ctx.con, ctx.settings, ctx.actor.name
    prop_id = st.session_state.get("ann_propagate")
    if prop_id and any(m.id == prop_id for m in shown_masks):
        with st.form("ann_propagate_form"):
            st.markdown(f"**Carry mask #{prop_id} through the sequence**")
            direction = st.radio("Direction", ["both", "forward", "backward"], horizontal=True, key="ann_prop_dir")
            seq = media.frames_of(con, video_id=frame.video_id, group_id=frame.group_id)
            until = st.selectbox("Up to frame", [None, *seq], key="ann_prop_to",
                                 format_func=lambda f: "the end" if f is None else
                                 f"{f.id}: #{f.frame_number} {f.original_name or ''}")
            if st.form_submit_button("Start propagation", type="primary"):
                with ui.reported_errors():
                    job = ui.start_propagation(prop_id, direction=direction,
                                               to_frame_id=until.id if until else None)
                    st.session_state["ann_job"] = job.id
                    st.session_state.pop("ann_propagate", None)


    if st.session_state.get("ann_job"):       # no polling fragment on every open tab when idle
        job_progress()

    review_scope = {"video_id": frame.video_id, "group_id": frame.group_id,
                    "annotator": user_name if blind else None}
    flagged, total = annotations.review_counts(con, **review_scope)     # counted, not loaded
    if total:
        with st.expander(f"Review propagated masks ({flagged} flagged of {total})"):
            cols = st.columns(6)
            review = annotations.review_page(con, **review_scope, limit=24)
            review_frames = {f.id: f for f in media.frames_by_ids(con, [m.frame_id for m in review])}
            for i, m in enumerate(review):
                with cols[i % 6]:
                    st.image(review_thumbnail(str(settings.data_dir), m.id, m.version, review_frames[m.frame_id], m),
                             caption=f"{'flagged · ' if m.flagged else ''}frame {m.frame_id} "
                             f"· {m.confidence:.2f}", width="stretch")

