"""Frame labels (multilabel present / absent / unknown per frame) and time segments of a video."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import ui
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

tab_frames, tab_segments = st.tabs(["Frame labels", "Time segments"])
with tab_frames:
    frames = media.FramePages(con, video_id=video_id, group_id=group_id, include_context=False)
    frame = ui.frame_navigator(frames, key="fl_nav")
    if frame is not None:
        left, right = st.columns([3, 2])
        left.image(str(ui.settings().absolute(frame.path)), width="stretch")
        current = {fl.label_id: fl for fl in annotations.frame_labels_of(con, frame.id, annotator=user.name)}
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
                    annotation_service.set_frame_labels(
                        ctx, frame.id, [(n, p, v) for n, (p, v) in choices.items()])
                    st.success(f"Saved {len(choices)} labels for frame {frame.id}.")

with tab_segments:
    if video_id is None:
        st.info("Time segments belong to videos; choose a video above.")
        st.stop()
    video = media.get_video(con, video_id)
    segments = annotations.segments_of(con, video_id=video_id)
    if segments:
        import plotly.graph_objects as go

        table = pd.DataFrame([{"id": s.id, "label": s.label, "start": s.start_frame, "end": s.end_frame,
                               "annotator": s.annotator, "export": s.for_export, "color": s.color}
                              for s in segments])
        fig = go.Figure([go.Bar(base=rows.start, x=rows.end - rows.start, y=rows.label,
                                orientation="h", name=name, marker_color=rows.color.iloc[0],
                                customdata=rows[["id", "annotator", "end"]],
                                hovertemplate="segment %{customdata[0]}: frames [%{base}, "
                                              "%{customdata[2]})")
                         for name, rows in table.groupby("label")])
        fig.update_layout(xaxis_title="frame", xaxis_range=[0, video.frame_count], barmode="overlay",
                          height=120 + 40 * table.label.nunique(), margin=dict(t=10, b=10))
        st.plotly_chart(fig, key="fl_timeline")
        edited = st.data_editor(table.drop(columns=["color"]), hide_index=True, key="fl_segments",
                                disabled=["id", "label", "start", "end", "annotator"],
                                column_config={"end": st.column_config.NumberColumn(
                                    "end (exclusive)", help="the first frame after the segment")})
        for (_, before), (_, after) in zip(table.iterrows(), edited.iterrows()):
            if bool(before.export) != bool(after.export):
                with ui.reported_errors():   # annotators: only their own segments
                    annotation_service.set_segment_export(ctx, int(after.id), bool(after.export))
    else:
        st.caption("No segments yet.")
    with st.form("segment_add"):
        st.subheader("New segment")
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
