"""The sequence timeline widget (Annotate and Frame labels pages): lanes of which frames carry
masks, frame labels and flagged masks, and a lane per segment label; the current frame and a
pending segment start drawn as lines.  A click on a lane jumps the page's frame navigator
(``ui.frame_navigator`` keeps its position in ``st.session_state[f"{nav_key}_index"]``) to the
nearest stored frame; a click on a segment jumps to its start and selects it for editing.

Data: ``endolite.timeline.build`` (bins counted in SQL), so 100,000 frames draw as <= 400 points
per lane.  Segments are ``[start, end)`` (end exclusive).

Above the lanes (while its "Thumbnails" toggle is on), a strip of small pictures of evenly
spaced stored frames, each with a button that opens its frame: the picks are cached per
sequence and frame count, the pictures per file, so a frame switch reads no image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

import ui
from endolite import timeline as tl_data

_LANES = ("frames", "masks", "labels", "flags")
THUMBNAILS = 8           # pictures in the strip above the lanes
THUMB_SIDE = 160         # their long side, px


@st.cache_data(max_entries=4096, show_spinner=False)
def _thumbnail(path: str, mtime_ns: int, long_side: int) -> bytes:
    """A JPEG of the image file ``path`` with its long side ``long_side`` px (cached per file and
    modification time: a file redacted in place gets a new picture)."""
    import io

    from PIL import Image

    with Image.open(path) as image:
        image.draft("RGB", (long_side, long_side))       # JPEG: decode at a reduced scale
        image.thumbnail((long_side, long_side))
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=80)
    return out.getvalue()


@st.cache_data(max_entries=256, show_spinner=False)
def _picks(data_dir: str, seq: tuple, include_context: bool, count: int, total: int,
           _con) -> list[tuple[int, int, str]]:
    """``(position in the navigator's list, frame number, file path)`` of ``count`` evenly spaced
    frames of the sequence ``seq`` (``(("video_id", id),)`` or ``(("group_id", id),)``) holding
    ``total`` stored frames; cached per sequence and frame count (new frames: new picks)."""
    import numpy as np

    from endolite.storage import media

    frames = media.FramePages(_con, **dict(seq), include_context=include_context)
    positions = sorted({int(i) for i in np.linspace(0, total - 1, min(count, total)).round()})
    return [(i, frames[i].frame_number, frames[i].path) for i in positions if i < len(frames)]


def _jump(nav_key: str, position: int) -> None:
    st.session_state[f"{nav_key}_index"] = position


def thumbnail_strip(ctx, seq: dict[str, Any], *, current: int, nav_key: str, include_context: bool,
                    key: str, total: int, count: int = THUMBNAILS) -> None:
    """``count`` pictures of evenly spaced frames of the sequence ``seq`` (``total`` stored
    frames), each with a button that moves the navigator ``nav_key`` to its frame; the one at or
    just before frame number ``current`` is marked ▸."""
    if total < 1:
        return
    picks = _picks(str(ctx.settings.data_dir), tuple(sorted(seq.items())), include_context, count,
                   total, ctx.con)
    here = max((p for p in picks if p[1] <= current), default=None, key=lambda p: p[1])
    for col, (position, number, path) in zip(st.columns(len(picks), gap="small"), picks):
        with col:
            file = ctx.settings.absolute(path)
            try:
                st.image(_thumbnail(str(file), file.stat().st_mtime_ns, THUMB_SIDE), width="stretch")
            except OSError:                      # a missing file: the button still opens it
                st.caption("(no picture)")
            st.button(f"{'▸ ' if here and number == here[1] else ''}#{number}", key=f"{key}_thumb_{position}",
                      on_click=_jump, args=(nav_key, position), type="tertiary", width="stretch",
                      help=f"Open frame #{number}")


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
         mark: int | None = None, build: Callable | None = None) -> int | None:
    """Draw the timeline of ``frame``'s sequence with ``frame`` marked; a click moves the
    navigator ``nav_key`` (whose list has context frames iff ``include_context``).  ``annotator``:
    count only their masks / labels (blind work).  ``mark``: a pending segment start to draw.
    ``build``: a ``memo(name, key, read)`` the timeline's data is read through (the Annotate
    page's reuse on a preview-only rerun).  Returns the segment id last clicked (None if none)."""
    key = key or f"{nav_key}_timeline"
    seq = {"video_id": frame.video_id} if frame.video_id is not None else {"group_id": frame.group_id}
    def read() -> tl_data.Timeline:
        return tl_data.build(ctx.con, **seq, include_context=include_context, annotator=annotator)

    tl = build(f"{key}_data", (tuple(seq.items()), include_context, annotator), read) if build else read()
    selected = st.session_state.get(f"{key}_segment")
    if selected is not None and not any(s.id == selected for s in tl.segments):
        selected = None
    fig = figure(tl, current=frame.frame_number, mark=mark, compact=compact, selected_segment=selected)
    if st.toggle("Thumbnails", value=True, key=f"{key}_thumbs",
                 help="Pictures of evenly spaced frames above the timeline (click one to open it)"):
        thumbnail_strip(ctx, seq, current=frame.frame_number, nav_key=nav_key,
                        include_context=include_context, key=key, total=tl.frames)
    st.plotly_chart(fig, key=key, on_select=lambda: _on_select(key, nav_key, seq, include_context),
                    selection_mode="points", config={"displayModeBar": False},
                    width="stretch")
    st.caption(f"Timeline: {tl.frames} stored frames of {tl.length}"
               + (f" ({tl.width} frames a point)" if tl.width > 1 else "")
               + " · rows: frames, masks, labels, flags (flagged propagated masks), segments "
               "[start, end) · click to jump")
    return selected
