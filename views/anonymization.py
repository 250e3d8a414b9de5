"""Anonymization (leads and admins): black out patient text and everything outside the field of
view of a video or image group, look at raw and anonymized frames side by side, and validate the
copy or send it back with a reason.  All changes go through ``services.anonymization``;
anonymizing runs as a background job of the signed-in user."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

import ui
from endolite.anonymize.pipeline import positions
from endolite.records import JobStatus, Role
from endolite.services import Action
from endolite.services import anonymization as service
from endolite.storage import anonymizations as anon
from endolite.storage import jobs as job_store
from endolite.storage import media

SIDE_BY_SIDE = 6           # frames shown raw | anonymized

user = ui.require_user(Role.ADMIN, Role.LEAD)
st.title("Anonymization")
ctx = ui.ctx()
con = ctx.con
if flash := st.session_state.pop("anon_flash", None):
    st.success(flash)

video_id, group_id, title = ui.sequence_picker(key="anon_seq")
which = {"video_id": video_id} if video_id is not None else {"group_id": group_id}
rep = service.report(ctx, **which)


def start_job(redactions: list, samples: int):
    """Run services.anonymization.anonymize as a background job (role checked up front too)."""
    here = ctx
    here.check(Action.ANONYMIZE)

    def work(cur, progress):
        row = service.anonymize(replace(here, con=cur), **which, redactions=redactions,
                                samples=samples, progress=progress)
        return {"status": str(row.status), "residual": len(row.residual),
                "sampled_frames": row.sampled_frames, "text_boxes": len(row.text_boxes)}

    return ui.start_job("anonymize", work,
                        params={**which, "redactions": redactions, "samples": samples},
                        created_by=here.actor.name)


@st.fragment(run_every=1.0)
def job_progress() -> None:
    job = job_store.get(ui.cursor(), st.session_state["anon_job"])
    if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        st.progress(job.progress, text=f"Anonymizing: {ui.md(job.message)}")
        return
    st.session_state.pop("anon_job", None)
    if job.status == JobStatus.FAILED:
        st.session_state["anon_failed"] = job.message
    else:
        r = job.result or {}
        st.session_state["anon_flash"] = (f"Anonymized: {r.get('text_boxes', 0)} text boxes found on "
                                          f"the raw media, {r.get('residual', 0)} left on "
                                          f"{r.get('sampled_frames', 0)} frames checked.")
    st.rerun()


# --- status -----------------------------------------------------------------------------------
status = rep["status"]
st.markdown(f"**{ui.md(title)}** — status: **{ui.md(status)}**")
if rep.get("decided_by"):
    why = f": {rep['reason']}" if rep.get("reason") else ""
    st.caption(ui.md(f"{status} by {rep['decided_by']} at {rep['decided_at']:%Y-%m-%d %H:%M}{why}"))
if failed := st.session_state.pop("anon_failed", None):
    st.error(f"Anonymization failed: {ui.md(failed)}")

# --- anonymize / re-anonymize -------------------------------------------------------------------
drawn = rep.get("redactions") or []
with st.form("anon_form"):
    st.markdown("Rectangles to black out as well, one per line: `x0,y0,x1,y1` in pixels "
                "(x to the right, y down)" + (" — for every image of the group" if group_id else ""))
    default = "\n".join(",".join(map(str, r)) for r in drawn if isinstance(r, list))
    text = st.text_area("Rectangles", value=default, key="anon_rects", height=90)
    samples = st.number_input("Raw frames read for OCR and the field of view", 5, 500, 50,
                              key="anon_samples", disabled=video_id is None)
    label = "Anonymize" if status == "raw" else "Anonymize again (clears the validation)"
    go = st.form_submit_button(label, type="primary",
                               disabled=bool(st.session_state.get("anon_job")))
if go:
    with ui.reported_errors():
        rects = [line.strip() for line in text.splitlines() if line.strip()]
        if video_id is not None:
            from endolite.anonymize.redact import build_redaction

            video = media.get_video(con, video_id)
            build_redaction(video.width, video.height, rectangles=rects)   # names a bad line
        st.session_state["anon_job"] = start_job(rects, int(samples)).id
        st.rerun()
if st.session_state.get("anon_job"):
    job_progress()

if status == "raw":
    st.info("Not anonymized yet: exports carry only validated anonymized copies.")
    st.stop()

# --- what was found and what is left ---------------------------------------------------------
c1, c2, c3 = st.columns(3)
c1.metric("Text boxes on the raw media", len(rep["text_boxes"]))
c2.metric("Residual text boxes", len(rep["residual"]))
c3.metric("Frames checked", rep["sampled_frames"])
if rep["residual"]:
    st.warning(f"OCR still finds text on {len(rep['residual_by_frame'])} of the "
               f"{rep['sampled_frames']} anonymized frames checked: add a rectangle over it and "
               "anonymize again, or send it back.")
    st.markdown("Frames with residual text: " + ", ".join(
        str(f) for f in sorted(rep["residual_by_frame"])))
    st.dataframe(pd.DataFrame([{"frame": e["frame"], "frame_id": e.get("frame_id"),
                                "box": str(e["box"]), "text": e["text"], "score": e["score"]}
                               for e in rep["residual"]]), hide_index=True)
else:
    st.success(f"No text found on the {rep['sampled_frames']} anonymized frames checked.")
st.markdown("**Text regions blanked** (boxes merged where they overlap)")
st.dataframe(pd.DataFrame([{"box": str(r["box"]), "frames": r["frames"],
                            "read as": ", ".join(r["texts"])} for r in rep["regions"]]),
             hide_index=True)
if rep["ignored"]:
    st.info(f"{len(rep['ignored'])} OCR boxes were taller than a text line and were not blanked "
            "(shapes such as a drawn rectangle); add a rectangle if one of them is text.")
with st.expander("Every text box found (raw media and earlier checks)"):
    if rep["text_boxes"]:
        st.caption("Boxes with a round were found by a check of the anonymized copy and added "
                   "to the redaction before the next round.")
        st.dataframe(pd.DataFrame([{"frame": e["frame"], "frame_id": e.get("frame_id"),
                                    "box": str(e["box"]), "text": e["text"], "score": e["score"],
                                    "round": e.get("round", 0), "ignored": e.get("ignored", "")}
                                   for e in rep["text_boxes"]]),
                     hide_index=True)
    else:
        st.caption("none")


# --- raw | anonymized, side by side ---------------------------------------------------------------
@st.cache_data(max_entries=16, show_spinner="Reading frames…")
def video_pairs(raw_path: str, anon_path: str, anon_sha: str, numbers: tuple[int, ...]):
    """``{frame number: (raw, anonymized)}`` ``(H, W, 3) uint8`` RGB for ``numbers``."""
    from endolite.media import decode_frames, index_video

    out: dict[int, list] = {}
    for slot, path in enumerate((raw_path, anon_path)):
        for n, frame in decode_frames(path, index_video(path), numbers):
            out.setdefault(n, [None, None])[slot] = frame.to_ndarray(format="rgb24")
    return {n: pair for n, pair in out.items() if pair[0] is not None and pair[1] is not None}


def show_pair(caption: str, raw: np.ndarray | str, blanked: np.ndarray | str) -> None:
    left, right = st.columns(2)
    left.image(raw, caption=f"{caption} raw", width="stretch")
    right.image(blanked, caption=f"{caption} anonymized", width="stretch")


st.subheader("Raw | anonymized")
base = ui.settings()
if video_id is not None:
    video = media.get_video(con, video_id)
    numbers = tuple(positions(video.frame_count, SIDE_BY_SIDE))
    with ui.reported_errors():
        pairs = video_pairs(str(base.absolute(video.path)), str(base.absolute(rep["path"])),
                            rep["sha256"], numbers)
        for n, (raw, blanked) in sorted(pairs.items()):
            show_pair(f"frame {n}", raw, blanked)
else:
    frames = media.frames_of(con, group_id=group_id)
    shown = [frames[i] for i in positions(len(frames), SIDE_BY_SIDE)]
    copies = anon.frames(con, [f.id for f in shown])
    for f in shown:
        if f.id in copies:
            show_pair(f"image {f.id}", str(base.absolute(f.path)), str(base.absolute(copies[f.id][0])))

# --- decision -------------------------------------------------------------------------------------
st.subheader("Decision")
d1, d2 = st.columns(2)
if d1.button("Validate", key="anon_validate", type="primary", disabled=status == "validated"):
    with ui.reported_errors():
        service.validate(ctx, **which)
        st.session_state["anon_flash"] = f"{title}: validated."
        st.rerun()
with d2.form("anon_reject_form"):
    reason = st.text_input("Reason", key="anon_reason")
    if st.form_submit_button("Send back"):
        with ui.reported_errors():
            service.reject(ctx, **which, reason=reason)
            st.session_state["anon_flash"] = f"{title}: sent back."
            st.rerun()
