"""A frame's model suggestions (predicted-present labels of the newest done run) with Accept /
Reject, for the Annotate and Frame labels pages.  Accepting sets the signed-in user's frame
label present; both decisions are recorded so the suggestion does not come back
(``endolite.services.predictions.suggestions`` / ``decide_suggestion``)."""

from __future__ import annotations

import streamlit as st

import ui
from endolite.services import Action
from endolite.services import predictions as predict_service


def show(ctx, frame_id: int, *, key: str) -> None:
    """The suggestions for ``frame_id`` not yet decided by the user; nothing when there are none."""
    items = predict_service.suggestions(ctx.con, frame_id, user=ctx.actor.name)
    if not items:
        return
    may = ctx.may(Action.SUGGESTION_DECIDE)
    st.caption(":material/auto_awesome: Model suggestions (accept to set the frame label)")
    for item in items:
        c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="center")
        c1.markdown(f"**{ui.md(item.label)}** present · p = {item.probability:.2f} · "
                    f"run {item.run_id}")
        tag = f"{key}_{frame_id}_{item.label_id}_{item.run_id}"
        accept = c2.button("Accept", key=f"{tag}_yes", disabled=not may,
                           help="set this frame label present as yours")
        reject = c3.button("Reject", key=f"{tag}_no", disabled=not may,
                           help="the model is wrong here; the suggestion goes away")
        if accept or reject:
            with ui.reported_errors():
                predict_service.decide_suggestion(ctx, frame_id, item.label, item.run_id,
                                                  accept=accept)
                st.rerun()
