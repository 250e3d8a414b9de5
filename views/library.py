"""Library: what has been imported — videos, image groups, their frames and metadata; the frame
grid filters by users' tags, to near-duplicate frames (perceptual hashes) and by visual cluster
(k-means over extraction's thumbnail features) -> endolite.similarity, endolite.storage.tags."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import ui
from endolite.records import Role, to_dict
from endolite.storage import media
from endolite.storage import tags as tag_store

NEAR_DUPLICATE_MAX_FRAMES = 5000    # hashing and pairing more frames on a page rerun is too slow

user = ui.require_user()
st.title("Library")
if flash := st.session_state.pop("lib_flash", None):
    st.success(ui.md(flash))
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
    scope = {f"{key}_id": chosen_id}
    c1, c2, c3, c4 = st.columns([2, 2, 3, 2])
    show_ctx = c1.toggle("Include context frames", key=f"lib_{key}_ctx")
    counts = tag_store.tag_counts(con, **scope)
    tag = c3.selectbox("Tag", [None, *counts], key=f"lib_{key}_tag",
                       format_func=lambda t: "any or none" if t is None else f"{t} ({counts[t]})")
    near = c2.toggle("Near-duplicates only", key=f"lib_{key}_near",
                     help="Frames whose perceptual hash is within a few bits of another frame's")
    k = int(c4.number_input("Visual clusters (0 = off)", 0, 50, 0, key=f"lib_{key}_k",
                            help="group the frames by look (k-means over small thumbnails, as "
                                 "the k-means extraction does) and show one group"))
    if tag is None and not near and not k:
        pages = media.FramePages(con, include_context=show_ctx, **scope)
        ui.frame_grid(pages, key=f"lib_{key}_{chosen_id}_grid")      # reads only the page shown
        tag_form(pages, key=f"lib_{key}_{chosen_id}")
        return
    frames = media.frames_of(con, include_context=show_ctx, **scope)
    if tag is not None:
        tagged = set(tag_store.frames_with_tag(con, tag, **scope))
        frames = [f for f in frames if f.id in tagged]
    if near:
        frames = near_duplicates(frames, key=f"lib_{key}_bits")
    if k:
        frames = cluster_of(frames, k, key=f"lib_{key}_cluster")
    ui.frame_grid(frames, key=f"lib_{key}_{chosen_id}_filtered_grid")
    tag_form(frames, key=f"lib_{key}_{chosen_id}")


def tag_form(frames, *, key: str) -> None:
    """Tag frames of the grid's current page (as the signed-in user) -> services.tags."""
    from endolite.services import tags as tag_service

    grid_page = int(st.session_state.get(f"{key}_grid_page", 1) if not isinstance(frames, list)
                    else st.session_state.get(f"{key}_filtered_grid_page", 1))
    shown = list(frames[(grid_page - 1) * ui.GRID_PAGE:grid_page * ui.GRID_PAGE])
    if not shown:
        return
    with st.expander("Tag frames"), st.form(f"{key}_tag_form", clear_on_submit=True):
        ids = st.multiselect("Frames (of the page shown)", [f.id for f in shown],
                             key=f"{key}_tag_ids")
        names = sorted({*tag_service.DEFAULT_TAGS, *tag_store.tag_names(con)})
        tag = st.selectbox("Tag", names, key=f"{key}_tag_name")
        new = st.text_input("or a new tag", key=f"{key}_tag_new")
        if st.form_submit_button("Tag them"):
            with ui.reported_errors():
                ctx = ui.ctx()
                added = sum(tag_service.add_tag(ctx, fid, new.strip() or tag) for fid in ids)
                st.session_state["lib_flash"] = f"Tagged {added} frame(s) '{new.strip() or tag}'."
                st.rerun()                     # the tag filter above lists the new tag


def near_duplicates(frames: list, *, key: str) -> list:
    """The frames of ``frames`` that have a near-duplicate among them, each group's members
    together (groups in the order of their first member, members in sequence order)."""
    from endolite import similarity

    bits = st.slider("Near: at most this many of 64 hash bits differ", 0, 16, 6, key=key)
    if len(frames) > NEAR_DUPLICATE_MAX_FRAMES:
        st.warning(f"{len(frames)} frames: near-duplicates are searched among the first "
                   f"{NEAR_DUPLICATE_MAX_FRAMES}; filter by a tag to narrow the set.")
        frames = frames[:NEAR_DUPLICATE_MAX_FRAMES]
    with ui.reported_errors(), st.spinner("Hashing frames (cached after the first time)…"):
        hashes = similarity.frame_hashes(con, ui.settings(), [f.id for f in frames])
        groups = similarity.near_duplicate_groups(hashes, max_distance=int(bits))
        kept = [f for f in frames if f.id in groups]                  # sequence order
        first = {}
        for i, f in enumerate(kept):
            first.setdefault(groups[f.id], i)
        kept.sort(key=lambda f: first[groups[f.id]])                  # stable: groups together
        st.caption(f"{len(kept)} frames in {len(set(groups.values()))} near-duplicate groups.")
        return kept
    return []


@st.cache_data(max_entries=8, show_spinner="Grouping frames by look…")
def _clusters(paths: tuple[str, ...], k: int) -> list[int]:
    from endolite import similarity

    return similarity.clusters(similarity.frame_features(list(paths)), k).tolist()


def cluster_of(frames: list, k: int, *, key: str) -> list:
    """The frames of one visual cluster (the user picks which) among ``frames``."""
    if len(frames) > NEAR_DUPLICATE_MAX_FRAMES:
        st.warning(f"{len(frames)} frames: clusters are computed over the first "
                   f"{NEAR_DUPLICATE_MAX_FRAMES}; filter by a tag to narrow the set.")
        frames = frames[:NEAR_DUPLICATE_MAX_FRAMES]
    if not frames:
        return []
    base = ui.settings()
    with ui.reported_errors():
        ids = _clusters(tuple(str(base.absolute(f.path)) for f in frames), k)
        sizes = {c: ids.count(c) for c in sorted(set(ids))}
        chosen = st.selectbox("Cluster", list(sizes), key=key,
                              format_func=lambda c: f"cluster {c} ({sizes[c]} frames)")
        return [f for f, c in zip(frames, ids) if c == chosen]
    return []


tab_videos, tab_groups = st.tabs(["Videos", "Image groups"])
with tab_videos:
    sequence_tab("video", videos, ["id", "title", "width", "height", "codec", "fps", "frame_count",
                                   "duration", "created_by", "created_at"])
with tab_groups:
    sequence_tab("image group", groups, ["id", "title", "source", "frame_count", "created_by",
                                         "created_at"])
if user.role in (Role.ADMIN, Role.LEAD):
    ui.link_to("views/audit.py", "Activity: the audit log", ":material/policy:")
