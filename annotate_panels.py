"""The Annotate page's propagation and review panels (``views/annotate.py`` calls ``show``):
the compact sequence timeline (click to jump), the propagation form (direction, end frame,
SAM refinement, replace the earlier run: the CLI's options) and its job's progress, and the
review strip of propagated masks (by frame number, flagged first, each opening its frame).
-> endolite.services.masks (propagate), endolite.storage.annotations (review counts / page)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import streamlit as st

import timeline
import ui
from endolite import annotate
from endolite import timeline as tl_data
from endolite.records import JobStatus
from endolite.storage import annotations, jobs, media

NAV = "ann_nav"                 # ui.frame_navigator's key on the Annotate page
PREVIEW_RUN = "ann_preview_run"  # True during the rerun that only draws a click's preview
PREVIEW_NEXT = "ann_preview_next"  # set just before that rerun
FLASH = "ann_prop_flash"        # (kind, text, since) shown after the rerun that ends a job
FLASH_S = 15.0                  # ... and on every rerun in the next 15 s
REVIEW_PAGE = 24


def begin_run() -> bool:
    """At the top of the page: whether this run is the one the page asked for only to draw a
    click's preview (``PREVIEW_NEXT`` set before its ``st.rerun()``); ``memo`` then reuses the
    run before's reads."""
    st.session_state[PREVIEW_RUN] = bool(st.session_state.pop(PREVIEW_NEXT, False))
    return st.session_state[PREVIEW_RUN]


def memo(name: str, key: Any, read: Callable[[], Any]) -> Any:
    """``read()``; on the rerun that only draws a click's preview, the value the run before read
    for the same ``key`` (nothing was written in between by this session: that rerun follows the
    click's run at once, so the sequence's timeline, undo state, tags and counts are not read
    twice; another user's change shows one rerun later)."""
    store = st.session_state.setdefault("ann_memo", {})
    hit = store.get(name)
    if st.session_state.get(PREVIEW_RUN) and hit is not None and hit[0] == key:
        return hit[1]
    value = read()
    store[name] = (key, value)
    return value


def sam_active() -> bool:
    """Whether the process's segmentation engine is SAM (refinement needs it)."""
    try:
        return ui.segmenter().name.startswith("sam")
    except Exception:  # noqa: BLE001 - no engine: no refinement offered
        return False


def start_propagation(mask_id: int, *, direction: str, to_frame_id: int | None, refine: bool,
                      replace: bool):
    """services.masks.propagate as a background job of the signed-in user (``refine``: re-segment
    each frame with the SAM engine, as the CLI's ``--refine``; ``replace``: a re-run replaces the
    user's earlier result of this mask, the CLI's default, ``--keep-earlier`` off).  The role is
    checked before the job starts (and again in the job).  Returns the Job."""
    from dataclasses import replace as with_

    from endolite.services import Action
    from endolite.services import masks as mask_service

    here = ui.ctx()
    here.check(Action.MASK_PROPAGATE, owners=[annotations.get_mask(here.con, mask_id).annotator])
    refiner = None
    if refine:
        from endolite.propagate import SegmenterRefiner

        engine = ui.segmenter()
        refiner = SegmenterRefiner(engine, lambda _i, image: engine.embed(image))

    def work(cur, progress):
        made = mask_service.propagate(with_(here, con=cur), mask_id, direction=direction,
                                      to_frame_id=to_frame_id, refine=refiner, progress=progress,
                                      replace=replace)
        return {"made": len(made), "flagged": sum(m.flagged for m in made),
                "mask_ids": [m.id for m in made]}

    return ui.start_job("propagate", work, params={"mask_id": mask_id, "direction": direction,
                                                   "to_frame_id": to_frame_id, "refine": refine,
                                                   "replace": replace},
                        created_by=here.actor.name)


@st.fragment(run_every=1.0)
def job_progress() -> None:
    """The propagation job's progress, polled every second; when it ends, the outcome goes to
    the flash (shown after the full rerun that brings in the new masks) and the app reruns."""
    job_id = st.session_state.get("ann_job")
    if not job_id:
        return
    job = jobs.get(ui.cursor(), job_id)
    if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        st.progress(job.progress, text=f"Propagating: {ui.md(job.message or 'starting')}")
        return
    if job.status == JobStatus.FAILED:
        st.session_state[FLASH] = ("error", f"Propagation failed: {ui.md(job.message)}", time.monotonic())
    else:
        at = f" at {job.updated_at:%H:%M:%S}" if job.updated_at else ""
        st.session_state[FLASH] = ("success", f"Propagation done: {job.result.get('made', 0)} masks "
                                              f"({job.result.get('flagged', 0)} flagged for review){at}.",
                                   time.monotonic())
    st.session_state.pop("ann_job", None)
    st.rerun()


# --- review strip: propagated masks of the sequence, flagged first -----------------------------
@st.cache_data(max_entries=512, show_spinner=False)
def review_thumbnail(data_dir: str, mask_id: int, version: int, _frame, _mask):
    """A review-strip picture, drawn once per mask version (not on every rerun)."""
    from endolite.config import Settings

    return annotate.thumbnail(Settings.resolve(data_dir), _frame, _mask)


def open_frame(frame) -> None:
    """Move the Annotate page's navigator to ``frame`` (a context frame turns context on)."""
    if frame.is_context:
        st.session_state["ann_context"] = True
    seq = {"video_id": frame.video_id} if frame.video_id is not None else {"group_id": frame.group_id}
    position = tl_data.position_of(ui.cursor(), frame.frame_number, **seq,
                                   include_context=bool(st.session_state.get("ann_context")))
    if position is not None:
        st.session_state[f"{NAV}_index"] = position


def _sequence_mode() -> bool:
    """The navigator walks a sequence (not the benchmark task queue)."""
    return st.session_state.get("ann_mode", "A sequence") == "A sequence"


def propagation_form(con, frame, prop_id: int) -> None:
    with st.form("ann_propagate_form"):
        st.markdown(f"**Carry mask #{prop_id} through the sequence**")
        direction = st.radio("Direction", ["both", "forward", "backward"], horizontal=True,
                             key="ann_prop_dir")
        seq = ("video_id", frame.video_id) if frame.video_id is not None else ("group_id", frame.group_id)
        stops = con.execute(f"SELECT id, frame_number FROM frames WHERE {seq[0]} = ? "
                            "ORDER BY frame_number, id", [seq[1]]).fetchall()
        until = st.selectbox("Up to frame", [None, *stops], key="ann_prop_to",
                             format_func=lambda s: "the end (or until confidence drops)" if s is None
                             else f"#{s[1]}" + (" (this frame)" if s[0] == frame.id else ""),
                             help="the last frame the walk reaches, forward or backward of this one")
        has_sam = sam_active()
        refine = st.checkbox("Refine each frame with SAM", key="ann_prop_refine", disabled=not has_sam,
                             help="re-segment every propagated frame with the active SAM engine, "
                                  "prompted by the carried mask (slower: one embedding a frame)"
                             if has_sam else "needs an active SAM checkpoint")
        replace = st.checkbox("Replace my earlier propagation of this mask", value=True,
                              key="ann_prop_replace",
                              help="off: keep the earlier result too (a second mask on each frame)")
        if st.form_submit_button("Start propagation", type="primary"):
            with ui.reported_errors():
                job = start_propagation(prop_id, direction=direction,
                                        to_frame_id=until[0] if until else None,
                                        refine=bool(refine and has_sam), replace=replace)
                st.session_state["ann_job"] = job.id
                st.session_state.pop("ann_propagate", None)
                st.session_state.pop(FLASH, None)
                st.rerun()


def review_strip(ctx, *, video_id, group_id, annotator) -> None:
    con, settings = ctx.con, ctx.settings
    scope = {"video_id": video_id, "group_id": group_id, "annotator": annotator}
    flagged, total = memo("review_counts", tuple(scope.items()),       # counted, not loaded
                          lambda: annotations.review_counts(con, **scope))
    if not total:
        return
    with st.expander(f"Review propagated masks ({flagged} flagged of {total})", key="ann_review",
                     on_change="rerun") as box:
        if box.open:                             # thumbnails built only while it is open
            _review_page(con, settings, scope, total)


def _review_page(con, settings, scope, total) -> None:
    pages = -(-total // REVIEW_PAGE)
    page = (st.number_input("Review page", 1, pages, 1, key="ann_review_page") if pages > 1 else 1)
    review = annotations.review_page(con, **scope, limit=REVIEW_PAGE,
                                     offset=(int(page) - 1) * REVIEW_PAGE, order="frame")
    frames = {f.id: f for f in media.frames_by_ids(con, sorted({m.frame_id for m in review}))}
    jump = _sequence_mode()
    cols = st.columns(6)
    for i, m in enumerate(review):
        fr = frames[m.frame_id]
        with cols[i % 6]:
            st.image(review_thumbnail(str(settings.data_dir), m.id, m.version, fr, m),
                     caption=f"{'⚑ flagged · ' if m.flagged else ''}frame #{fr.frame_number} · "
                             f"{m.confidence:.2f}" if m.confidence is not None else
                             f"{'⚑ flagged · ' if m.flagged else ''}frame #{fr.frame_number}",
                     width="stretch")
            st.button(f"Open #{fr.frame_number}", key=f"ann_review_open_{m.id}", disabled=not jump,
                      on_click=open_frame, args=(fr,), width="stretch")


def show(ctx, frame, shown_masks, *, blind: bool, with_timeline: bool = True) -> None:
    """Below the mask list: the compact timeline of the sequence (``with_timeline``; the page
    may draw it elsewhere with ``timeline.show``), the flash of the last propagation, the
    propagation form for the mask whose Propagate was pressed, the running job's progress, and
    the review strip of the sequence's propagated masks."""
    con, user_name = ctx.con, ctx.actor.name
    mine = user_name if blind else None
    if with_timeline and _sequence_mode():
        timeline.show(ctx, frame, nav_key=NAV, include_context=bool(st.session_state.get("ann_context")),
                      annotator=mine, compact=True, key="ann_timeline", build=memo)
    flash = st.session_state.get(FLASH)
    if flash:       # kept for reruns within FLASH_S of the job's end (another fragment may rerun)
        kind, text, since = flash
        getattr(st, kind)(text)
        if time.monotonic() - since > FLASH_S:
            st.session_state.pop(FLASH, None)
    prop_id = st.session_state.get("ann_propagate")
    if prop_id and any(m.id == prop_id for m in shown_masks):
        propagation_form(con, frame, prop_id)
    if st.session_state.get("ann_job"):       # no polling fragment on every open tab when idle
        job_progress()
    review_strip(ctx, video_id=frame.video_id, group_id=frame.group_id, annotator=mine)
