"""A model's predictions along a video (Streamlit + plotly glue; the Training page places it).

``figure`` draws, x = video frame number: above, the annotated segments (one lane per label,
bars ``[start, end)``); below, the predicted probability of each label as a line (0..1), with
the prediction set's predicted segments as shaded spans in the label's colour (proposed: light,
accepted: stronger, rejected: outlined only).  ``predicted_segments_panel`` lists the set's
predicted segments with start / end inputs and Accept / Reject buttons that call
``services.predictions.decide_segment`` as the signed-in user (accepting makes one of their own
segments, with the edited bounds).  ``render_prediction_timeline`` draws both.

Long tracks are reduced to at most ``MAX_POINTS`` points per label (the maximum of each bin, so
short peaks stay visible).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

MAX_POINTS = 2000
_FILL = {"proposed": 0.15, "accepted": 0.35, "rejected": 0.0}


def _binned(numbers: np.ndarray, values: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``limit`` points: each bin's first frame number and its maximum value."""
    if numbers.size <= limit:
        return numbers, values
    width = int(np.ceil(numbers.size / limit))
    pad = (-numbers.size) % width
    v = np.concatenate([values, np.full(pad, np.nan)]).reshape(-1, width)
    return numbers[::width], np.nanmax(v, axis=1)


def _rgba(color: str, alpha: float) -> str:
    c = color.lstrip("#")
    r, g, b = (int(c[i:i + 2], 16) for i in (0, 2, 4)) if len(c) == 6 else (128, 128, 128)
    return f"rgba({r},{g},{b},{alpha})"


def figure(track, *, segments: list, predicted: list, colors: dict[str, str], length: int,
           current: int | None = None):
    """The plotly figure: ``track`` (``storage.predictions.Track``), annotated ``segments``
    (``records.Segment``), ``predicted`` (``storage.predictions.PredictedSegment``), label name ->
    ``#RRGGBB`` ``colors``, the video's frame count ``length``; ``current``: a frame to mark."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    lanes = sorted({s.label for s in segments})
    top = 0.12 + 0.05 * len(lanes) if lanes else 0.08
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        row_heights=[top, 1 - top])
    for name in lanes:
        segs = [s for s in segments if s.label == name]
        fig.add_trace(go.Bar(
            base=[s.start_frame for s in segs], x=[s.end_frame - s.start_frame for s in segs],
            y=[name] * len(segs), orientation="h", name=f"⟦{name}⟧", width=0.6,
            marker_color=colors.get(name, "#888888"), showlegend=False, hoverinfo="text",
            hovertext=[f"segment {s.id} · {s.label}: [{s.start_frame}, {s.end_frame}) · {s.annotator}"
                       for s in segs]), row=1, col=1)
    for j, name in enumerate(track.labels):
        x, y = _binned(track.frame_numbers, track.probs[:, j], MAX_POINTS)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name,
                                 line={"color": colors.get(name, "#888888"), "width": 1.5},
                                 hovertemplate=f"{name}: %{{y:.2f}} at frame %{{x}}<extra></extra>"),
                      row=2, col=1)
    for p in predicted:
        color = colors.get(p.label, "#888888")
        fig.add_vrect(x0=p.start_frame, x1=p.end_frame, row=2, col=1, layer="below",
                      fillcolor=_rgba(color, _FILL.get(p.status, 0.15)),
                      line={"width": 1 if p.status == "rejected" else 0, "color": color,
                            "dash": "dot"})
    if current is not None:
        fig.add_vline(x=current, line_color="#ff7f0e", line_width=2)
    fig.update_layout(height=260 + 22 * len(lanes), margin={"t": 4, "b": 4, "l": 4, "r": 4},
                      legend={"orientation": "h", "y": -0.12}, barmode="overlay",
                      hovermode="x unified")
    fig.update_xaxes(range=[-0.5, max(length, 1) - 0.5], row=2, col=1, title="frame")
    fig.update_yaxes(range=[0, 1], row=2, col=1, title="probability", fixedrange=True)
    fig.update_yaxes(row=1, col=1, fixedrange=True, showticklabels=bool(lanes))
    return fig


def _decide(ctx, predicted_id: int, accept: bool, key: str) -> None:
    """Button callback: accept with the edited bounds, or reject; a refusal shows on the page."""
    from endolite.errors import EndoliteError
    from endolite.services import predictions as service

    start = st.session_state.get(f"{key}_start_{predicted_id}")
    end = st.session_state.get(f"{key}_end_{predicted_id}")
    try:
        done = service.decide_segment(ctx, predicted_id, accept=accept,
                                      start=None if start is None else int(start),
                                      end=None if end is None else int(end))
    except EndoliteError as exc:
        st.session_state[f"{key}_error"] = str(exc)
        return
    st.session_state[f"{key}_flash"] = (
        f"Predicted segment {predicted_id} {done.status}"
        + (f": segment {done.segment_id} added" if done.segment_id else "") + ".")


def predicted_segments_panel(ctx, set_id: int, *, length: int, key: str = "predseg",
                             limit: int = 50) -> None:
    """The set's predicted segments: proposed ones with start / end inputs ([start, end), end
    exclusive) and Accept / Reject buttons; decided ones listed with their status."""
    import ui
    from endolite.storage import predictions as store

    if flash := st.session_state.pop(f"{key}_flash", None):
        st.success(ui.md(flash))
    if error := st.session_state.pop(f"{key}_error", None):
        st.error(ui.md(error))
    rows = store.predicted_segments(ctx.con, set_id)
    proposed = [p for p in rows if p.status == "proposed"]
    decided = [p for p in rows if p.status != "proposed"]
    st.markdown(f"**Predicted segments**: {len(proposed)} proposed, {len(decided)} decided")
    if not rows:
        st.caption("No segment reached the entry threshold in this prediction set.")
    for p in proposed[:limit]:
        c = st.columns([3, 2, 2, 1, 1], vertical_alignment="bottom")
        c[0].markdown(f"{ui.md(p.label)} · [{p.start_frame}, {p.end_frame}) · "
                      f"mean p {p.mean_probability:.2f}")
        c[1].number_input("Start", 0, max(length - 1, 0), int(p.start_frame), step=1,
                          key=f"{key}_start_{p.id}")
        c[2].number_input("End (exclusive)", 1, max(length, 1), int(min(p.end_frame, max(length, 1))),
                          step=1, key=f"{key}_end_{p.id}")
        c[3].button("Accept", key=f"{key}_accept_{p.id}", on_click=_decide,
                    args=(ctx, p.id, True, key), type="primary")
        c[4].button("Reject", key=f"{key}_reject_{p.id}", on_click=_decide,
                    args=(ctx, p.id, False, key))
    if len(proposed) > limit:
        st.caption(f"{len(proposed) - limit} more proposed segments not shown.")
    if decided:
        with st.expander(f"Decided ({len(decided)})"):
            st.dataframe([{"label": p.label, "start": p.start_frame, "end": p.end_frame,
                           "status": p.status, "segment": p.segment_id, "by": p.decided_by}
                          for p in decided], hide_index=True)


def render_prediction_timeline(con, video_id: int, set_id: int, *, ctx: Any = None,
                               key: str = "predtl", current: int | None = None) -> None:
    """The probability timeline of prediction set ``set_id`` over video ``video_id`` with the
    annotated segments above, then the predicted-segments panel (as ``ctx``, default the
    signed-in user's ``ui.ctx()``)."""
    import ui
    from endolite.storage import annotations as ann_store
    from endolite.storage import labels as label_store
    from endolite.storage import media
    from endolite.storage import predictions as store

    video = media.get_video(con, video_id)
    track = store.track(con, set_id)
    colors = {lab.name: lab.color for lab in label_store.list_all(con)}
    segments = ann_store.segments_of(con, video_id=video_id)
    predicted = store.predicted_segments(con, set_id)
    length = max(video.frame_count or 0, int(track.frame_numbers.max()) + 1 if track.frame_numbers.size else 0)
    if track.frame_numbers.size == 0:
        st.info("This prediction set has no predicted frames.")
    else:
        st.plotly_chart(figure(track, segments=segments, predicted=predicted, colors=colors,
                               length=length, current=current),
                        key=key, config={"displayModeBar": False}, width="stretch")
        pset = store.get_set(con, set_id)
        st.caption(f"Prediction set {set_id}: run {pset.run_id}, {pset.frames} frames "
                   f"(every {pset.every}), {pset.fps or 0:.1f} frames/s, {pset.precision} · "
                   "above: annotated segments; below: probability per label, predicted segments "
                   "shaded (proposed light, accepted strong, rejected outlined)")
    predicted_segments_panel(ctx if ctx is not None else ui.ctx(), set_id, length=length,
                             key=f"{key}_seg")
