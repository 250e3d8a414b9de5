"""Frame labels (multilabel present / absent / unknown per frame) and time segments of a video:
one frame navigator and the sequence's timeline (click to jump) above both tabs; segments are
marked while scrubbing (Mark start / Mark end at the shown frame), typed, edited and deleted.
Segments are ``[start, end)``: the end frame is not part of the segment."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import suggestions_panel
import timeline
import ui
from endolite import timeline as tl_data
from endolite.records import Presence
from endolite.services import Action
from endolite.services import annotations as annotation_service
from endolite.storage import annotations, labels, media

user = ui.require_user()
st.title("Frame labels & segments")
ctx = ui.ctx()
con = ctx.con
video_id, group_id, title = ui.sequence_picker(key="fl_sequence")
all_labels = labels.list_all(con)
frame_labels = [lb for lb in all_labels if "frame_label" in lb.allowed]
segment_labels = [lb for lb in all_labels if "segment" in lb.allowed]
if not all_labels:
    st.info("Create labels first.")
    ui.link_to("views/labels.py", "Labels", ":material/label:")
    st.stop()

flash = st.session_state.pop("fl_flash", None)
if flash:
    getattr(st, flash[0])(flash[1])

if st.session_state.get("fl_seen_sequence") != (video_id, group_id):   # a new sequence: frame 1
    st.session_state["fl_seen_sequence"] = (video_id, group_id)
    st.session_state["fl_nav_index"] = 0
    st.session_state.pop("fl_mark", None)
frames = media.FramePages(con, video_id=video_id, group_id=group_id, include_context=False)
frame = ui.frame_navigator(frames, key="fl_nav")
mark = st.session_state.get("fl_mark")
picked_segment = (timeline.show(ctx, frame, nav_key="fl_nav", include_context=False, key="fl_timeline",
                                mark=mark) if frame is not None else None)

tab_frames, tab_segments = st.tabs(["Frame labels", "Time segments"], key="fl_tab",  # stays put
                                   on_change="rerun")
with tab_frames:
    if frame is not None:
        left, right = st.columns([3, 2])
        left.image(str(ui.settings().absolute(frame.path)), width="stretch",
                   caption=f"frame #{frame.frame_number}")
        current = {fl.label_id: fl for fl in annotations.frame_labels_of(con, frame.id, annotator=user.name)}
        with right:
            suggestions_panel.show(ctx, frame.id, key="fl_sug")
        with right, st.form(f"fl_form_{frame.id}"):
            st.caption("Set each label; Tab / arrow keys move between choices, Enter saves.")
            choices = {}
            for lb in frame_labels:
                existing = current.get(lb.id)
                c1, c2 = st.columns([3, 2])
                choices[lb.name] = (
                    c1.radio(f":material/label: {ui.md(lb.name)}", list(Presence), horizontal=True,
                             index=list(Presence).index(existing.value) if existing else 2,
                             key=f"fl_{frame.id}_{lb.id}"),
                    c2.number_input("value", value=existing.float_value if existing else None,
                                    key=f"flv_{frame.id}_{lb.id}", label_visibility="collapsed",
                                    placeholder="optional value"))
            if st.form_submit_button("Save frame labels", type="primary"):
                with ui.reported_errors():
                    saved = annotation_service.set_frame_labels(
                        ctx, frame.id, [(n, p, v) for n, (p, v) in choices.items()])
                    st.success(f"Saved {len(choices)} labels for frame #{frame.frame_number}.")
                    for warning in saved.warnings:
                        st.warning(ui.md(warning), icon=":material/warning:")

with tab_segments:
    if video_id is None:
        st.info("Time segments belong to videos; choose a video above.")
        st.stop()
    video = media.get_video(con, video_id)
    here = frame.frame_number if frame is not None else None

    # --- mark start / end while scrubbing -------------------------------------------------------
    st.markdown("**Mark a segment while scrubbing**: go to its first frame, *Mark start*, move to "
                "its last frame, *Mark end* (the segment keeps both frames: [start, last + 1)).")
    c1, c2, c3, c4 = st.columns([2, 1, 1, 1], vertical_alignment="bottom")
    mark_label = c1.selectbox("Label", [lb.name for lb in segment_labels], key="seg_mark_label")
    if c2.button("Mark start", key="seg_mark_start", disabled=here is None,
                 help="the shown frame is the segment's first"):
        st.session_state["fl_mark"] = here
        st.rerun()
    if c3.button("Mark end", key="seg_mark_end", disabled=here is None or mark is None, type="primary",
                 help="the shown frame is the segment's last; saves it"):
        with ui.reported_errors():
            start, end = tl_data.segment_from_marks(mark, here)
            seg = annotation_service.add_segment(ctx, video_id, label=mark_label, start=start, end=end)
            st.session_state.pop("fl_mark", None)
            st.session_state["fl_flash"] = ("success", f"Segment {seg.id} {ui.md(seg.label)}: "
                                                       f"frames [{seg.start_frame}, {seg.end_frame}).")
            st.rerun()
    if mark is not None:
        c4.button("Cancel mark", key="seg_mark_cancel",
                  on_click=lambda: st.session_state.pop("fl_mark", None))
        st.caption(f"Start marked at frame #{mark} (dashed line); now at #{here}.")

    # --- the segments: table (export flag), edit, delete -----------------------------------------
    segments = annotations.segments_of(con, video_id=video_id)
    if segments:
        table = pd.DataFrame([{"id": s.id, "label": s.label, "start": s.start_frame, "end": s.end_frame,
                               "annotator": s.annotator, "export": s.for_export} for s in segments])
        edited = st.data_editor(table, hide_index=True, key="fl_segments",
                                disabled=["id", "label", "start", "end", "annotator"],
                                column_config={"end": st.column_config.NumberColumn(
                                    "end (exclusive)", help="the first frame after the segment")})
        for (_, before), (_, after) in zip(table.iterrows(), edited.iterrows()):
            if bool(before.export) != bool(after.export):
                with ui.reported_errors():   # annotators: only their own segments
                    annotation_service.set_segment_export(ctx, int(after.id), bool(after.export))
        ids = [s.id for s in segments]
        if picked_segment in ids and st.session_state.get("seg_edit_from_chart") != picked_segment:
            st.session_state["seg_edit_from_chart"] = picked_segment   # a click on a segment picks it
            st.session_state["seg_edit_id"] = picked_segment
        if st.session_state.get("seg_edit_id") not in ids:
            st.session_state.pop("seg_edit_id", None)
        by_id = {s.id: s for s in segments}
        chosen = st.selectbox("Edit segment", ids, key="seg_edit_id",
                              format_func=lambda i: f"{i}: {by_id[i].label} [{by_id[i].start_frame}, "
                                                    f"{by_id[i].end_frame}) · {by_id[i].annotator}")
        seg = by_id[chosen]
        with st.form(f"seg_edit_{seg.id}"):
            names = [lb.name for lb in segment_labels]
            e1, e2, e3 = st.columns(3)
            new_label = e1.selectbox("Label", names, key=f"seg_edit_label_{seg.id}",
                                     index=names.index(seg.label) if seg.label in names else 0)
            new_start = e2.number_input("Start frame", 0, max(video.frame_count - 1, 0), seg.start_frame,
                                        key=f"seg_edit_start_{seg.id}")
            new_end = e3.number_input("End frame (exclusive)", 1, max(video.frame_count, 1), seg.end_frame,
                                      key=f"seg_edit_end_{seg.id}")
            b1, b2, b3 = st.columns(3)
            save = b1.form_submit_button("Save segment")
            to_here = b2.form_submit_button("End at the shown frame", disabled=here is None,
                                            help="the shown frame becomes the segment's last")
            remove = b3.form_submit_button("Delete segment")
        if save or to_here or remove:
            with ui.reported_errors():
                if remove:
                    annotation_service.delete_segment(ctx, seg.id)
                    st.session_state["fl_flash"] = ("success", f"Deleted segment {seg.id}.")
                else:
                    end = here + 1 if to_here else int(new_end)
                    after = annotation_service.update_segment(ctx, seg.id, label=new_label,
                                                              start=int(new_start), end=end)
                    st.session_state["fl_flash"] = ("success", f"Segment {after.id} {ui.md(after.label)}: "
                                                    f"frames [{after.start_frame}, {after.end_frame}).")
                st.rerun()
    else:
        st.caption("No segments yet.")
    with st.form("segment_add"):
        st.subheader("New segment by frame numbers")
        st.caption("Frames start ≤ n < end: the end frame is not part of the segment "
                   f"(end at most {video.frame_count}, the frame count).")
        c1, c2, c3 = st.columns(3)
        seg_label = c1.selectbox("Label", [lb.name for lb in segment_labels], key="seg_label")
        start = c2.number_input("Start frame", 0, max(video.frame_count - 1, 0), 0, key="seg_start")
        end = c3.number_input("End frame (exclusive)", 1, max(video.frame_count, 1),
                              min(video.frame_count, int(video.fps) or 1), key="seg_end")
        if st.form_submit_button("Add segment"):
            with ui.reported_errors():
                annotation_service.add_segment(ctx, video_id, label=seg_label, start=int(start),
                                               end=int(end))
                st.rerun()
    if ctx.may(Action.SEGMENT_MATERIALIZE):
        st.caption("Materialising gives every extracted frame inside an exported segment "
                   "[start, end) a *present* row of its label for the segment's annotator, where "
                   "that annotator has none yet; running it again adds only what is missing.")
        c1, c2 = st.columns(2)
        if c1.button("Dry run: count missing frame annotations", key="seg_dry"):
            n = annotation_service.materialize(ctx, video_id, dry_run=True)
            st.info(f"Would create {n} frame-label rows.")
        if c2.button("Create missing frame annotations", key="seg_materialize", type="primary"):
            with ui.reported_errors():
                n = annotation_service.materialize(ctx, video_id)
                st.success(f"Created {n} frame-label rows.")
