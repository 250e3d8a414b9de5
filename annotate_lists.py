"""The Annotate page's lists (``views/annotate.py`` calls them): the frame's masks (show,
delete, propagate), deleting all masks of a label in the sequence, and the frame's tags.
-> endolite.services.masks, endolite.services.tags."""

from __future__ import annotations

import streamlit as st

import annotate_panels
import ui
from endolite.errors import EndoliteError
from endolite.services import Action
from endolite.services import masks as mask_service
from endolite.services import tags as tag_service
from endolite.storage import tags as tag_store


def toggle_visible(mask_id: int) -> None:
    """on_change of a mask's 'show' box: runs before the page, so the canvas hides it at once."""
    hide: set[int] = st.session_state.setdefault("ann_hidden", set())
    if st.session_state.get(f"ann_vis_{mask_id}"):
        hide.discard(mask_id)
    else:
        hide.add(mask_id)


def mask_list(ctx, shown_masks, hidden: set[int]) -> None:
    """The masks on the frame, each with show (hides at once), Delete and Propagate."""
    head, hide_col = st.columns([3, 2], vertical_alignment="bottom")
    head.subheader(f"Masks on this frame ({len(shown_masks)})")
    hide_col.multiselect("Hide labels", sorted({m.label for m in shown_masks}), key="ann_hidden_labels")
    if shown_masks and st.toggle("List the masks", value=True, key="ann_list_open"):
        for m in shown_masks:
            c1, c2, c3, c4 = st.columns([4, 1, 1, 1])
            conf = "" if m.confidence is None else f" · conf {m.confidence:.2f}"
            flag = " · flagged for review" if m.flagged else ""
            c1.markdown(f"<span style='color:{m.color}'>■</span> **{ui.md(m.label)}** #{m.id} · {m.kind} · "
                        f"{m.source} · {ui.md(m.annotator)} · {m.area} px{conf}{flag}",
                        unsafe_allow_html=True)
            c2.checkbox("show", value=m.id not in hidden, key=f"ann_vis_{m.id}",
                        on_change=toggle_visible, args=(m.id,))
            if ctx.may(Action.MASK_DELETE, owners=[m.annotator]) and c3.button("Delete", key=f"ann_del_{m.id}"):
                with ui.reported_errors():
                    mask_service.delete(ctx, [m.id], versions={m.id: m.version})
                    st.rerun()
            if ctx.may(Action.MASK_PROPAGATE, owners=[m.annotator]):     # on_click: kept even when
                c4.button("Propagate", key=f"ann_prop_{m.id}",            # a rerun cuts this run short
                          on_click=st.session_state.__setitem__, args=("ann_propagate", m.id))


def delete_all(ctx, frame, mask_labels) -> None:
    """Delete all (the actor's own, below lead) masks of a label in the frame's sequence."""
    everyone = ctx.may_others(Action.MASK_DELETE)
    with st.expander("Delete all masks of a label in this sequence" if everyone
                     else "Delete all my masks of a label in this sequence"):
        doomed = st.selectbox("Label", mask_labels, key="ann_del_label", format_func=lambda lb: lb.name)
        sure = st.checkbox("Yes, delete them all" if everyone else "Yes, delete all of mine",
                           key="ann_del_confirm")
        if st.button("Delete all", disabled=not sure, key="ann_del_all"):
            with ui.reported_errors():
                ids = mask_service.delete_label(ctx, label=doomed, video_id=frame.video_id,
                                                group_id=frame.group_id)
                st.success(f"Deleted {len(ids)} masks.")


def save_own_tags(frame_id: int, key: str) -> None:
    """The tag multiselect's on_change: only a change the user made reaches the service."""
    here = ui.callback_ctx()
    if here is None or key not in st.session_state:
        return                                # the run after a logout
    try:
        tag_service.set_own_tags(here, frame_id, st.session_state[key])
    except EndoliteError as exc:
        st.session_state["ann_tags_error"] = str(exc)


def frame_tags(ctx, frame, *, blind: bool) -> None:
    """The frame's tags and who set them; a multiselect of the user's own (any name may be
    typed); leads and admins can also remove another user's tag.  Blind frames: own tags only."""
    con, user_name = ctx.con, ctx.actor.name
    tags, names = annotate_panels.memo("tags", frame.id, lambda: (
        tag_store.tags_of(con, [frame.id]).get(frame.id, []), tag_store.tag_names(con)))
    if blind:
        tags = [t for t in tags if t.username == user_name]
    mine = [t.tag for t in tags if t.username == user_name]
    who: dict[str, list[str]] = {}
    for t in tags:
        who.setdefault(t.tag, []).append(t.username)
    with st.expander(f"Tags ({len(who)})", expanded=bool(who)):
        if who:
            st.caption(" · ".join(f"{ui.md(tag)} ({ui.md(', '.join(names))})"
                                  for tag, names in who.items()))
        if error := st.session_state.pop("ann_tags_error", None):
            st.error(ui.md(error))
        options = list(dict.fromkeys([*tag_service.DEFAULT_TAGS, *names, *mine]))
        key = f"ann_tags_{frame.id}"
        st.session_state[key] = mine          # what is stored (also after a change elsewhere)
        st.multiselect("My tags", options, key=key, accept_new_options=True,
                       placeholder="Add a tag", on_change=save_own_tags, args=(frame.id, key))
        others = [t for t in tags if t.username != user_name]
        if others and ctx.may_others(Action.FRAME_TAG):
            c1, c2 = st.columns([3, 1])
            gone = c1.selectbox("Another user's tag", others, key=f"ann_tag_other_{frame.id}",
                                format_func=lambda t: f"{t.tag} ({t.username})")
            if c2.button("Remove", key=f"ann_tag_rm_{frame.id}"):
                with ui.reported_errors():
                    tag_service.remove_tag(ctx, frame.id, gone.tag, username=gone.username)
                    st.rerun()
