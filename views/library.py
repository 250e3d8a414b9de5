"""Library: what has been imported — videos, image groups, their frames and metadata."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import ui
from endolite.records import Role, to_dict
from endolite.storage import media

user = ui.require_user()
st.title("Library")
con = ui.cursor()
videos, groups = media.list_videos(con), media.list_groups(con)
c1, c2 = st.columns(2)
c1.metric("Videos", len(videos))
c2.metric("Image groups", len(groups))


def sequence_tab(kind: str, items, columns: list[str]) -> None:
    """Table of ``items`` (videos or image groups), then the chosen one's metadata and frames."""
    if not items:
        st.info(f"No {kind}s yet.")
        return
    st.dataframe(pd.DataFrame([to_dict(i) for i in items])[columns], hide_index=True,
                 width="stretch")
    key = "video" if kind == "video" else "group"
    chosen_id = st.selectbox(f"Show frames of {key}", [i.id for i in items], key=f"lib_{key}",
                             format_func=lambda i: next(x.title for x in items if x.id == i))
    chosen = next(i for i in items if i.id == chosen_id)
    if chosen.client_metadata:
        with st.expander("Client metadata"):
            st.json(chosen.client_metadata)
    show_ctx = st.toggle("Include context frames", key=f"lib_{key}_ctx")
    ui.frame_grid(media.FramePages(con, include_context=show_ctx, **{f"{key}_id": chosen_id}),
                  key=f"lib_{key}_{chosen_id}_grid")       # reads only the page shown


tab_videos, tab_groups = st.tabs(["Videos", "Image groups"])
with tab_videos:
    sequence_tab("video", videos, ["id", "title", "width", "height", "codec", "fps", "frame_count",
                                   "duration", "created_by", "created_at"])
with tab_groups:
    sequence_tab("image group", groups, ["id", "title", "source", "frame_count", "created_by",
                                         "created_at"])
if user.role in (Role.ADMIN, Role.LEAD):
    ui.link_to("views/audit.py", "Activity: the audit log", ":material/policy:")
