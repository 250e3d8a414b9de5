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
    with st.form("label_add", clear_on_submit=True):
        st.subheader("New label")
        name = st.text_input("Name", key="label_name")
        kind = st.selectbox("Kind", list(LabelKind), key="label_kind")
        # the default is the palette's next free colour, so new labels differ
        color = st.color_picker("Colour", label_service.next_color(con), key="label_color")
        allowed = st.multiselect("Allowed annotation types", ANNOTATION_TYPES,
                                 default=list(ANNOTATION_TYPES), key="label_allowed")
        if st.form_submit_button("Add label"):
            with ui.reported_errors():
                label_service.add(ctx, name, kind=kind, color=color, allowed=tuple(allowed))
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
