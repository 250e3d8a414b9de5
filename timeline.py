"""The sequence timeline widget (Annotate and Frame labels pages): lanes of which frames carry
masks, frame labels and flagged masks, and a lane per segment label; the current frame and a
pending segment start drawn as lines.  A click on a lane jumps the page's frame navigator
(``ui.frame_navigator`` keeps its position in ``st.session_state[f"{nav_key}_index"]``) to the
nearest stored frame; a click on a segment jumps to its start and selects it for editing.

Data: ``endolite.timeline.build`` (bins counted in SQL), so 100,000 frames draw as <= 400 points
per lane.  Segments are ``[start, end)`` (end exclusive).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

import ui
from endolite import timeline as tl_data

_LANES = ("frames", "masks", "labels", "flags")


def figure(tl: tl_data.Timeline, *, current: int | None = None, mark: int | None = None,
           compact: bool = False, selected_segment: int | None = None):
    """The plotly figure of ``tl``: x is the frame number; every point's ``customdata`` is
    ``[frame number to jump to, segment id or -1]``."""
    import plotly.graph_objects as go

    fig = go.Figure()
    lanes = list(_LANES)
    unselected = {"marker": {"opacity": 1.0}}

    def lane(name: str, bins, color: str, alpha) -> None:
        if not bins:
            return
        fig.add_trace(go.Scatter(
            x=[b.first_number for b in bins], y=[name] * len(bins), mode="markers", name=name,
            marker={"symbol": "line-ns-open" if name == "frames" else "square", "size": 14 if compact else 16,
                    "color": color, "opacity": [alpha(b) for b in bins],
                    "line": {"width": 2, "color": color}},
            customdata=[[b.first_number, -1] for b in bins],
            hovertext=[f"frames {b.start}–{b.end - 1}: {b.frames} stored, {b.masked} with masks "
                       f"({b.masks} masks), {b.labelled} labelled, {b.flagged} flagged" for b in bins],
            hoverinfo="text", unselected=unselected, showlegend=False))

    bins = tl.bins
    lane("frames", bins, "#888888", lambda b: 1.0)
    lane("masks", [b for b in bins if b.masked], "#1f77b4", lambda b: 0.35 + 0.65 * b.masked / b.frames)
    lane("labels", [b for b in bins if b.labelled], "#2ca02c", lambda b: 0.35 + 0.65 * b.labelled / b.frames)
    lane("flags", [b for b in bins if b.flagged], "#d62728", lambda b: 1.0)
    by_label: dict[str, list] = {}
    for s in tl.segments:
        by_label.setdefault(s.label, []).append(s)
    for name, segs in by_label.items():
        y = f"⟦{name}⟧"
        lanes.append(y)
        fig.add_trace(go.Bar(
            base=[s.start_frame for s in segs], x=[s.end_frame - s.start_frame for s in segs],
            y=[y] * len(segs), orientation="h", name=name, marker_color=segs[0].color,
            marker_line={"width": [3 if s.id == selected_segment else 0 for s in segs], "color": "black"},
            customdata=[[s.start_frame, s.id] for s in segs],
            hovertext=[f"segment {s.id} · {s.label}: frames [{s.start_frame}, {s.end_frame}) · "
                       f"{s.annotator}" for s in segs],
            hoverinfo="text", unselected=unselected, showlegend=False, width=0.6))
    for x, color, dash in ((current, "#ff7f0e", "solid"), (mark, "#9467bd", "dash")):
        if x is not None:
            fig.add_vline(x=x, line_color=color, line_dash=dash, line_width=2)
    fig.update_layout(
        height=(110 if compact else 150) + 22 * (len(lanes) - len(_LANES)), barmode="overlay",
        margin={"t": 4, "b": 4, "l": 4, "r": 4}, clickmode="event+select", dragmode="zoom",
        xaxis={"range": [-0.5, max(tl.length, 1) - 0.5], "title": None, "showgrid": False},
        yaxis={"categoryorder": "array", "categoryarray": list(reversed(lanes)), "fixedrange": True},
        hoverlabel={"namelength": 0})
    return fig


def _on_select(chart_key: str, nav_key: str, seq: dict[str, Any], include_context: bool) -> None:
    """Chart click (runs before the rerun): move the navigator to the clicked frame."""
    state = st.session_state.get(chart_key)
    points = (state or {}).get("selection", {}).get("points", []) if state else []
    if not points:
        return
    data = points[0].get("customdata") or [points[0].get("x"), -1]
    number, segment_id = int(round(float(data[0]))), int(data[1]) if len(data) > 1 else -1
    position = tl_data.position_of(ui.cursor(), number, **seq, include_context=include_context)
    if position is not None:
        st.session_state[f"{nav_key}_index"] = position
    if segment_id >= 0:
        st.session_state[f"{chart_key}_segment"] = segment_id


def show(ctx, frame, *, nav_key: str = "ann_nav", include_context: bool = True,
         annotator: str | None = None, compact: bool = False, key: str | None = None,
         mark: int | None = None) -> int | None:
    """Draw the timeline of ``frame``'s sequence with ``frame`` marked; a click moves the
    navigator ``nav_key`` (whose list has context frames iff ``include_context``).  ``annotator``:
    count only their masks / labels (blind work).  ``mark``: a pending segment start to draw.
    Returns the segment id last clicked (None if none)."""
    key = key or f"{nav_key}_timeline"
    seq = {"video_id": frame.video_id} if frame.video_id is not None else {"group_id": frame.group_id}
    tl = tl_data.build(ctx.con, **seq, include_context=include_context, annotator=annotator)
    selected = st.session_state.get(f"{key}_segment")
    if selected is not None and not any(s.id == selected for s in tl.segments):
        selected = None
    fig = figure(tl, current=frame.frame_number, mark=mark, compact=compact, selected_segment=selected)
    st.plotly_chart(fig, key=key, on_select=lambda: _on_select(key, nav_key, seq, include_context),
                    selection_mode="points", config={"displayModeBar": False},
                    width="stretch")
    st.caption(f"Timeline: {tl.frames} stored frames of {tl.length}"
               + (f" ({tl.width} frames a point)" if tl.width > 1 else "")
               + " · rows: frames, masks, labels, flags (flagged propagated masks), segments "
               "[start, end) · click to jump")
    return selected
