"""Library: what has been imported — videos, image groups, their frames and metadata."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import ui
from endolite.records import Role, to_dict
from endolite.storage import audit, media

user = ui.require_user()
st.title("Library")
con = ui.cursor()
videos, groups = media.list_videos(con), media.list_groups(con)
c1, c2 = st.columns(2)
c1.metric("Videos", len(videos))
c2.metric("Image groups", len(groups))

tab_videos, tab_groups, tab_log = st.tabs(["Videos", "Image groups", "Activity"])
with tab_videos:
    if videos:
        cols = ["id", "title", "width", "height", "codec", "fps", "frame_count", "duration",
                "created_by", "created_at"]
        st.dataframe(pd.DataFrame([to_dict(v) for v in videos])[cols], hide_index=True,
                     width="stretch")
        vid = st.selectbox("Show frames of video", [v.id for v in videos], key="lib_video",
                           format_func=lambda i: next(v.title for v in videos if v.id == i))
        chosen = next(v for v in videos if v.id == vid)
        if chosen.client_metadata:
            with st.expander("Client metadata"):
                st.json(chosen.client_metadata)
        show_ctx = st.toggle("Include context frames", key="lib_video_ctx")
        ui.frame_grid(media.frames_of(con, video_id=vid, include_context=show_ctx))
    else:
        st.info("No videos yet.")
with tab_groups:
    if groups:
        st.dataframe(pd.DataFrame([to_dict(g) for g in groups])[
            ["id", "title", "source", "frame_count", "created_by", "created_at"]],
            hide_index=True, width="stretch")
        gid = st.selectbox("Show frames of group", [g.id for g in groups], key="lib_group",
                           format_func=lambda i: next(g.title for g in groups if g.id == i))
        chosen = next(g for g in groups if g.id == gid)
        if chosen.client_metadata:
            with st.expander("Client metadata"):
                st.json(chosen.client_metadata)
        show_ctx = st.toggle("Include context frames", key="lib_group_ctx")
        ui.frame_grid(media.frames_of(con, group_id=gid, include_context=show_ctx))
    else:
        st.info("No image groups yet.")
with tab_log:
    if user.role in (Role.ADMIN, Role.LEAD):
        entries = audit.recent(con, limit=200)
        if entries:
            st.dataframe(pd.DataFrame([to_dict(e) for e in entries]), hide_index=True,
                         width="stretch")
    else:
        st.caption("The activity log is for leads and admins.")
