"""Labels (tags): name, kind, colour and the annotation types each allows."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import ui
from endolite.records import LabelKind, to_dict
from endolite.services import Action
from endolite.services import labels as label_service
from endolite.storage import labels
from endolite.storage.labels import ANNOTATION_TYPES

user = ui.require_user()
st.title("Labels")
ctx = ui.ctx()
con = ctx.con
items = labels.list_all(con)
if items:
    table = pd.DataFrame([to_dict(lb) for lb in items])[["id", "name", "kind", "color", "allowed"]]
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"allowed": st.column_config.ListColumn("allowed")})
else:
    st.info("No labels yet.")

if ctx.may(Action.LABEL_ADD):
    # The picker starts at the palette's next free colour and moves on after each label added.
    # Through session state, not the widget's default: a keyed widget keeps its value when only
    # its default changes, and clear_on_submit reset it to the previous default, so every label
    # added in a row got the first palette colour (#e6194b).
    if st.session_state.pop("label_added", False):
        st.session_state["label_name"] = ""
        st.session_state["label_color"] = label_service.next_color(con)
    st.session_state.setdefault("label_color", label_service.next_color(con))
    with st.form("label_add"):
        st.subheader("New label")
        name = st.text_input("Name", key="label_name")
        kind = st.selectbox("Kind", list(LabelKind), key="label_kind")
        color = st.color_picker("Colour", key="label_color")
        allowed = st.multiselect("Allowed annotation types", ANNOTATION_TYPES,
                                 default=list(ANNOTATION_TYPES), key="label_allowed")
        if st.form_submit_button("Add label"):
            with ui.reported_errors():
                label_service.add(ctx, name, kind=kind, color=color, allowed=tuple(allowed))
                st.session_state["label_added"] = True
                st.rerun()
    if items:
        with st.form("label_edit"):
            st.subheader("Rename / recolour")
            target = st.selectbox("Label", [lb.name for lb in items], key="label_target")
            new_name = st.text_input("New name (blank keeps it)", key="label_new_name")
            new_color = st.color_picker("New colour", "#3cb44b", key="label_new_color")
            recolour = st.checkbox("Apply the colour", key="label_apply_color")
            if st.form_submit_button("Save"):
                with ui.reported_errors():
                    if recolour:
                        label_service.recolor(ctx, target, new_color)
                    if new_name.strip():
                        label_service.rename(ctx, target, new_name)
                    st.rerun()
