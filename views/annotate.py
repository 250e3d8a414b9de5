"""Annotate: masks from +/- clicks (SAM or the classical engine), boxes, polygons, brush and
eraser on the frame, seen through a zoomable viewport (endolite.zoom); mask list with
visibility, delete, undo and redo; hotkeys for every tool and step; propagation through the
sequence and the review strip (annotate_panels); the mask list, delete-all and the user's tags
(annotate_lists); the annotator's benchmark task queue (blind).

Layout (the frame visible without scrolling at 1366x768 and up): sequence, engine, view
settings and the hotkey help in the sidebar; navigation in one row; the canvas, fitted to the
window ("Auto", canvas_view.canvas_box; a preset overrides it), with a side column of controls;
the mask list below.  The rerun that only draws a click's preview reuses the click's run's reads
(annotate_panels.memo)."""

from __future__ import annotations

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

import annotate_lists
import annotate_panels
import canvas_view
import suggestions_panel
import ui
from endolite import annotate, canvas, render
from endolite import masks as rle
from endolite.benchmark import service as bench
from endolite.records import JobStatus, MaskSource, ShapeKind
from endolite.segment.base import best_mask
from endolite.services import Action
from endolite.services import benchmarks as bench_service
from endolite.services import masks as mask_service
from endolite.services import preferences
from endolite.storage import annotations, benchmarks, jobs, labels, media
from endolite.zoom import ZOOM_STEP, Viewport, fit_size

# tool -> (canvas drawing mode, hotkey)
TOOLS = {"+ point": ("point", "P"), "− point": ("point", "N"), "box": ("rect", "B"),
         "polygon": ("polygon", "G"), "brush": ("freedraw", "D"), "eraser": ("freedraw", "E")}
SIDE_PX = 250                      # the controls' column beside the canvas
# pan: (how, arrow, hotkey); shift + arrow, so plain arrows still scroll the page
PANS = [("left", "←", "shift+left"), ("right", "→", "shift+right"), ("up", "↑", "shift+up"),
        ("down", "↓", "shift+down")]
HOTKEYS = [("P / N", "+ point / − point"), ("B", "box"), ("G", "polygon"), ("D", "brush"),
           ("E", "eraser"), ("J / K", "previous / next frame"), ("L", "next unlabelled frame"),
           ("A", "accept the mask"), ("X", "clear the prompt"), ("U / Y", "undo / redo"),
           ("M", "complete the benchmark task and go to the next"),
           ("I / O / 0", "zoom in / out / whole frame (or the mouse wheel over the frame)"),
           ("Shift + ← → ↑ ↓", "pan the zoomed view by half a view")]

user = ui.require_user()
ctx = ui.ctx()
con, settings = ctx.con, ctx.settings
st.markdown("<style>.block-container{padding-top:2.2rem;padding-bottom:1rem}"
            "h3{padding-top:0 !important}"       # a scroll bar coming and going keeps the width
            "[data-testid='stMain']{scrollbar-gutter:stable}</style>", unsafe_allow_html=True)
if not st.session_state.get("ann_interrupted_seen"):     # once per session, after a restart
    st.session_state["ann_interrupted_seen"] = True
    for job in jobs.interrupted_of(con, user.name):
        st.warning(f"Your {job.kind} job {job.id} ({job.updated_at:%Y-%m-%d %H:%M}) did not finish: "
                   f"{ui.md(job.message)}")
engine = ui.segmenter()
annotate_panels.begin_run()          # a click's preview-only rerun reuses the run before's reads
memo = annotate_panels.memo


def remember_frame() -> None:
    """on_change of the context toggle: keep the frame shown (found again in the new list)."""
    st.session_state["ann_keep_frame"] = st.session_state.get("ann_frame_id")


# --- which frames (sidebar) -------------------------------------------------------------------
queue = memo("tasks", user.name, lambda: bench.tasks_for(con, user.name))
with st.sidebar:
    mode = st.radio("Work on", ["sequence", "tasks"], horizontal=True, key="ann_mode",
                    format_func=lambda m: "A sequence" if m == "sequence"
                    else f"My benchmark tasks ({len(queue)})") if queue else "sequence"
    if mode == "sequence":
        video_id, group_id, _ = ui.sequence_picker(key="ann_sequence")
        with_context = st.toggle("Include context frames", key="ann_context", on_change=remember_frame)
        frames = media.FramePages(con, video_id=video_id, group_id=group_id,   # read a page at a time
                                  include_context=with_context)
        where = ("sequence", video_id, group_id)
    else:
        frames = media.frames_by_ids(con, [t.frame_id for t in queue])
        where = ("tasks",)
if st.session_state.get("ann_where") != where:        # another sequence (or the queue): frame 1
    if "ann_where" in st.session_state:
        st.session_state["ann_nav_index"] = 0
    st.session_state["ann_where"] = where
if (keep := st.session_state.pop("ann_keep_frame", None)) is not None:
    ids = [f.id for f in frames]
    if keep in ids:
        st.session_state["ann_nav_index"] = ids.index(keep)


def next_unlabelled() -> None:
    """Move to the next frame of the list (after the current one, wrapping) with no live mask."""
    index = st.session_state.get("ann_nav_index", 0)
    ids = [f.id for f in frames]
    labelled = {m.frame_id for m in annotations.masks_of(con, frame_ids=ids)} if ids else set()
    order = [*range(index + 1, len(ids)), *range(0, index)]
    hit = next((i for i in order if ids[i] not in labelled), None)
    if hit is None:
        st.session_state["ann_nav_note"] = "Every frame of this list carries a mask."
    else:
        st.session_state["ann_nav_index"] = hit


title_col, nav_col, unl_col = st.columns([1.2, 6, 1.3], vertical_alignment="center")
title_col.markdown("### Annotate")
with nav_col:
    frame = ui.frame_navigator(frames, key="ann_nav")
if frame is None:
    st.stop()
if unl_col.button("Unlabelled ▶", key="ann_next_unlabelled", shortcut="L",
                  help="The next frame of this list without any mask (L)"):
    next_unlabelled()
    st.rerun()
if note := st.session_state.pop("ann_nav_note", None):
    st.info(note)
st.session_state["ann_frame_id"] = frame.id


@st.fragment(run_every=1.0)
def embed_progress() -> None:
    """The precompute job's progress, polled every second (no click needed); when it ends, a full
    rerun refreshes the 'ready' count above."""
    job = jobs.get(ui.cursor(), st.session_state["ann_embed_job"])
    if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        st.progress(job.progress, text=f"Embedding frames ({job.status}): {job.message}")
        return
    st.session_state.pop("ann_embed_job", None)
    st.session_state["ann_embed_ended"] = job
    st.rerun()


def set_tool(name: str) -> None:
    st.session_state["ann_tool"] = name


def start_precompute() -> None:
    """on_click (a callback: not lost if another rerun cuts the click's run short); the rerun
    draws the progress bar instead of the button."""
    st.session_state["ann_embed_job"] = ui.start_precompute(frames, around=frame.frame_number).id


with st.sidebar:
    st.caption("Segmentation engine: " + ui.md(engine.description))
    if hasattr(engine, "is_cached"):              # SAM: embeddings are cached per frame on disk
        ready = memo("embedded", (where, len(frames), engine.is_cached(frame.sha256)),
                     lambda: sum(engine.is_cached(f.sha256) for f in frames))
        st.caption(f"Embeddings ready for {ready} of {len(frames)} frames of this list "
                   "(a click on a ready frame only runs the decoder).")
        if ready < len(frames) and not st.session_state.get("ann_embed_job"):
            st.button("Precompute embeddings", key="ann_precompute", on_click=start_precompute)
        if st.session_state.get("ann_embed_job"):
            embed_progress()
        ended = st.session_state.pop("ann_embed_ended", None)
        if ended is not None and ended.status == JobStatus.FAILED:
            st.error(f"Embedding frames failed: {ui.md(ended.message)}")
        elif ended is not None and (ended.result or {}).get("failed"):
            st.warning(f"{ended.result['failed']} frames could not be embedded (a click embeds them).")
    preset_box, opacity, outline_only, show_ids = canvas_view.view_settings(ctx)
    with st.expander("Hotkeys"):
        st.markdown("\n".join(f"- **{k}**: {what}" for k, what in HOTKEYS))
        st.caption("Tools by key:")
        tool_cols = st.columns(3)
        for i, (name, (_, key)) in enumerate(TOOLS.items()):
            tool_cols[i % 3].button(f"{name} tool", key=f"ann_tool_key_{i}", shortcut=key, on_click=set_tool,
                                    args=(name,), help=f"Tool {name} ({key})")

blind = frame.id in memo("blind", user.name, lambda: benchmarks.benchmark_frames_for(con, user.name))
task = next((t for t in queue if t.frame_id == frame.id), None)
mask_labels = [lb for lb in labels.list_all(con) if {"mask", "box"} & set(lb.allowed)]
if task is not None and task.label_ids:           # a benchmark task: its labels only
    mask_labels = [lb for lb in mask_labels if lb.id in task.label_ids]
if not mask_labels:
    st.warning("Create a label that allows masks or boxes first.")
    ui.link_to("views/labels.py", "Labels", ":material/label:")
    st.stop()


def save_label_pref() -> None:
    chosen, here = st.session_state.get("ann_label"), ui.callback_ctx()
    if chosen is not None and here is not None:
        preferences.put(here, "annotate.label", chosen.name)


names = [lb.name for lb in mask_labels]
current = st.session_state.get("ann_label")
if current is None or current.name not in names:   # first run, or a list without it (a task)
    wanted = preferences.get(ctx, "annotate.label")
    st.session_state["ann_label"] = mask_labels[names.index(wanted)] if wanted in names else mask_labels[0]
else:
    st.session_state["ann_label"] = mask_labels[names.index(current.name)]   # the fresh record

# --- masks on this frame ----------------------------------------------------------------------
shown_masks = annotations.masks_of(con, frame_ids=[frame.id], annotator=user.name if blind else None)
hidden: set[int] = st.session_state.setdefault("ann_hidden", set())
hidden_labels = st.session_state.get("ann_hidden_labels", [])
visible = [m for m in shown_masks if m.id not in hidden and m.label not in hidden_labels]

# --- the viewport -----------------------------------------------------------------------------
# Auto: the box fitted to the window; before the browser has measured it, the canvas waits one
# run (so it is not drawn at one size and at once redrawn at another under a click)
(box_w, box_h), waiting_for_fit = canvas_view.canvas_box(
    preset_box, key="ann_fit", anchor="ann_canvas_area", side_width=SIDE_PX + 40)
width, height = fit_size(frame.width, frame.height, box_width=box_w, box_height=box_h)
base = Viewport(frame.width, frame.height, width, height)
state = st.session_state.get("ann_view")
view = base
if state is not None and state[0][0] == frame.id:   # the same frame: keep its zoom and pan
    x0, y0, zoom = state[1]
    view = Viewport(frame.width, frame.height, width, height, x0, y0, zoom).clamped()
    if state[0][1:] != (width, height):         # a resized window: a new canvas, clicks carried
        st.session_state["ann_carry"] = st.session_state.get("ann_last_points")
with st.sidebar:                                # the wheel listener (an empty element)
    gesture = canvas_view.wheel_zoom(key="ann_wheel")
if gesture is not None:                         # wheel over the canvas: zoom about the pointer
    at = view.to_frame(np.array([[float(gesture["fx"]) * width, float(gesture["fy"]) * height]]))[0]
    view = view.zoomed(ZOOM_STEP if gesture.get("dir", 1) > 0 else 1 / ZOOM_STEP,
                       at=(float(at[0]), float(at[1])))
    st.session_state["ann_carry"] = st.session_state.get("ann_last_points")
st.session_state["ann_view"] = ((frame.id, width, height), view.state())


def change_view(how: str) -> None:
    """Zoom / pan buttons (on_click, so the canvas is drawn with the new view at once).  The
    unsaved clicks are carried over to the new canvas (they are kept in frame pixels)."""
    (key, (x0, y0, zoom)) = st.session_state["ann_view"]
    v = Viewport(frame.width, frame.height, key[1], key[2], x0, y0, zoom)
    moved = {"in": lambda: v.zoomed(ZOOM_STEP), "out": lambda: v.zoomed(1 / ZOOM_STEP),
             "fit": lambda: Viewport(frame.width, frame.height, key[1], key[2]),
             "left": lambda: v.panned(-0.5, 0), "right": lambda: v.panned(0.5, 0),
             "up": lambda: v.panned(0, -0.5), "down": lambda: v.panned(0, 0.5)}[how]()
    st.session_state["ann_view"] = (key, moved.state())
    st.session_state["ann_carry"] = st.session_state.get("ann_last_points")


preview_key = f"ann_preview_{frame.id}"
preview: np.ndarray | None = st.session_state.get(preview_key)
nonce = st.session_state.setdefault("ann_nonce", 0)

tool_col, label_col, brush_col = st.columns([4.2, 1.6, 0.9], vertical_alignment="bottom")
tool_name = tool_col.segmented_control(
    "Tool", list(TOOLS), default="+ point", key="ann_tool", label_visibility="collapsed",
    help="Hotkeys: " + ", ".join(f"{k} {n}" for n, (_, k) in TOOLS.items())) or "+ point"
mode_of_tool = TOOLS[tool_name][0]
label = label_col.selectbox("Label", mask_labels, key="ann_label", format_func=lambda lb: lb.name,
                            on_change=save_label_pref, label_visibility="collapsed")
brush = brush_col.number_input("Brush px", 2, 200, 20, key="ann_brush", label_visibility="collapsed",
                               help="Brush / eraser width in canvas px")

# the canvas column must be at least the canvas's width (an iframe narrower than the canvas clips it)
canvas_col, right = st.columns([width + 24, SIDE_PX], gap="small")
with right:
    st.markdown(f"<span style='color:{label.color}'>■</span> {ui.md(label.name)} ({label.kind})",
                unsafe_allow_html=True)      # colour is validated #rrggbb; the name is escaped
    if blind:
        st.info("Benchmark frame: you see only your own annotations here.")
    zooms = st.columns(3, gap="small")
    for col, (how, text, key, tip) in zip(zooms, [
            ("in", "+", "I", "Zoom in (I)"), ("out", "−", "O", "Zoom out (O)"),
            ("fit", "⤢", "0", "Whole frame (0)")]):
        col.button(text, key=f"ann_zoom_{how}", shortcut=key, help=tip, on_click=change_view,
                   args=(how,), disabled=(how in ("out", "fit") and view.zoom <= 1.0)
                   or (how == "in" and view.zoom >= 16), width="stretch")
    pans = st.columns(4, gap="small")
    for col, (how, text, key) in zip(pans, PANS):
        col.button(text, key=f"ann_zoom_{how}", help=f"Pan {how} (Shift + {text})", shortcut=key,
                   on_click=change_view, args=(how,), disabled=view.zoom <= 1.0, width="stretch")
    st.caption(f"Zoom {view.zoom:g}× · x {view.x0:.0f}–{view.x0 + view.span[0]:.0f}, "
               f"y {view.y0:.0f}–{view.y0 + view.span[1]:.0f} of {frame.width}×{frame.height}")

# + and − points share one canvas (their clicks accumulate); the eraser gets its own, so a
# brush stroke not yet saved is never read as an eraser stroke (and the other way round); a
# new view gets a new canvas, carrying the unsaved clicks over in frame pixels
canvas_kind = "eraser" if tool_name == "eraser" else mode_of_tool
carry = st.session_state.get("ann_carry")
initial = canvas.point_objects(carry[0], carry[1], scale=view.scale, offset=(view.x0, view.y0)) \
    if carry is not None and mode_of_tool == "point" else None
view_key = "_".join(f"{v:g}" for v in (width, height, *view.state()))
if waiting_for_fit:
    with canvas_col, st.container(key="ann_canvas_area"):
        st.caption("Fitting the canvas to the window…")
    json_data = None
else:
    with canvas_col, st.container(key="ann_canvas_area"):
        # JPEG bytes (the component PNG-encodes a PIL image on every rerun: 0.1-0.2 s at 640x480),
        # kept by render: a click's own run sends the picture the run before made
        background = render.render_view_jpeg(settings, frame, visible, view, preview=preview,
                                             preview_color=label.color, opacity=opacity,
                                             outline_only=outline_only, show_ids=show_ids)
        drawing = st_canvas(
            background_image=background, width=width, height=height,
            drawing_mode=mode_of_tool, initial_drawing=initial,
            key=f"ann_canvas_{frame.id}_{nonce}_{canvas_kind}_{view_key}",
            fill_color=(canvas.NEGATIVE if tool_name == "− point" else canvas.POSITIVE)
            if mode_of_tool == "point" else "rgba(255, 255, 255, 0.15)",
            stroke_color="white" if mode_of_tool in ("point", "rect", "polygon") else label.color,
            stroke_width=int(brush) if mode_of_tool == "freedraw" else 2,
            point_display_radius=5, update_streamlit=True)
    json_data = drawing.json_data
offset = (view.x0, view.y0)


def reset_canvas() -> None:
    st.session_state["ann_nonce"] = st.session_state.get("ann_nonce", 0) + 1
    st.session_state.pop(preview_key, None)
    st.session_state.pop("ann_prompt_sig", None)
    st.session_state.pop("ann_carry", None)
    st.session_state.pop("ann_last_points", None)


def save(mask: np.ndarray, *, source: MaskSource, kind: ShapeKind, prompt: dict) -> None:
    with ui.reported_errors():
        mask_service.save(ctx, annotate.NewMask(frame.id, mask, source=source, kind=kind, prompt=prompt),
                          label=label)
        if task is not None:
            bench_service.start_task(ctx, task.benchmark_id, frame.id)
        reset_canvas()
        st.rerun()


# --- prompts -> preview -----------------------------------------------------------------------
points, signs = canvas.points(json_data, scale=view.scale, offset=offset)      # frame pixels
boxes = canvas.boxes(json_data, scale=view.scale, offset=offset)
st.session_state["ann_last_points"] = (points, signs) if len(points) else None
with right:
    if mode_of_tool == "point" or (boxes and tool_name == "box"):
        box = boxes[-1] if boxes else None
        signature = (points.round(1).tobytes(), signs.tobytes(), box)
        if (len(points) or box is not None) and st.session_state.get("ann_prompt_sig") != signature:
            with ui.reported_errors():
                embedding = ui.embedding(frame)
                st.session_state[preview_key] = best_mask(engine, embedding, points, signs, box=box)[0]
                st.session_state["ann_prompt_sig"] = signature
                st.session_state[annotate_panels.PREVIEW_NEXT] = True
                st.rerun()
        st.caption(f"{int((signs == 1).sum())} positive, {int((signs == 0).sum())} negative clicks"
                   + (", 1 box" if box is not None else ""))
        prompt = {"points": [[float(x), float(y), int(s)] for (x, y), s in zip(points, signs)],
                  "box": list(box) if box is not None else None, "engine": engine.name}
        if preview is not None and st.button("Accept mask", type="primary", key="ann_accept",
                                              shortcut="a", help="Save the previewed mask (A)"):
            save(preview, source=MaskSource.SAM if engine.name.startswith("sam") else MaskSource.MANUAL,
                 kind=ShapeKind.MASK, prompt=prompt)
        if boxes and tool_name == "box" and st.button("Save as box", key="ann_save_box"):
            save(rle.box_to_mask(boxes[-1], frame.height, frame.width), source=MaskSource.MANUAL,
                 kind=ShapeKind.BOX, prompt={"box": list(boxes[-1])})
    elif tool_name == "polygon":
        shapes = canvas.polygons(json_data, scale=view.scale, offset=offset)
        st.caption(f"{len(shapes)} closed polygon(s); close one by clicking its first point.")
        if shapes and st.button("Save polygon", type="primary", key="ann_save_polygon"):
            save(rle.polygon_to_mask(shapes[-1], frame.height, frame.width), source=MaskSource.MANUAL,
                 kind=ShapeKind.POLYGON, prompt={"polygon": shapes[-1].round(1).tolist()})
    else:
        stroke = canvas.brush_mask(json_data, scale=view.scale, height=frame.height, width=frame.width,
                                   offset=offset)
        st.caption(f"{int(stroke.sum())} px painted")
        if tool_name == "brush" and stroke.any() and st.button("Save brush mask", type="primary",
                                                                 key="ann_save_brush"):
            save(stroke, source=MaskSource.MANUAL, kind=ShapeKind.MASK, prompt={"brush_px": int(brush)})
        if tool_name == "eraser":
            own = [m for m in shown_masks if ctx.may(Action.MASK_EDIT, owners=[m.annotator])]
            target = st.selectbox("Erase from", own, key="ann_erase_target",
                                  format_func=lambda m: f"{m.id}: {m.label} ({m.annotator})") if own else None
            if target is not None and stroke.any() and st.button("Erase", key="ann_erase"):
                with ui.reported_errors():
                    mask_service.edit(ctx, target.id, annotate.load_mask(target) & ~stroke,
                                      version=target.version)
                    reset_canvas()
                    st.rerun()
    if st.button("Clear prompt", key="ann_clear", shortcut="x", help="Clear the prompt (X)",
                 width="stretch"):
        reset_canvas()
        st.rerun()
    last = memo("undo", frame.id, lambda: mask_service.undoable(ctx, frame.id))   # own last action here
    if st.button(f"Undo ({last.action})" if last else "Undo", key="ann_undo_btn", shortcut="u",
                 disabled=last is None, width="stretch",
                 help="Undo your own last mask action on this frame (U)"):
        with ui.reported_errors():
            mask_service.undo(ctx, frame.id)
            st.rerun()
    again = memo("redo", frame.id, lambda: mask_service.redoable(ctx, frame.id))
    if st.button(f"Redo ({again.action})" if again else "Redo", key="ann_redo_btn", shortcut="y",
                 disabled=again is None, width="stretch", help="Redo your own last undone mask action here (Y)"):
        with ui.reported_errors():
            mask_service.redo(ctx, frame.id)
            st.rerun()
    if task is not None:
        st.markdown(f"**Benchmark task** ({task.status}) · {len(queue)} open")
        if st.button("Complete and next", key="ann_task_done", type="primary", shortcut="m",
                     help="Mark this task complete and open your next one (M)"):
            with ui.reported_errors():
                bench_service.complete(ctx, task.benchmark_id, frame_ids=[frame.id])
                # the queue loses this task: the same index (and mode) now holds the next one
                st.rerun()
    annotate_lists.frame_tags(ctx, frame, blind=blind)
    if not blind:                     # a benchmark's blind frame gets no model hints
        suggestions_panel.show(ctx, frame.id, key="ann_sug")


annotate_lists.mask_list(ctx, shown_masks, hidden)
annotate_panels.show(ctx, frame, shown_masks, blind=blind)
annotate_lists.delete_all(ctx, frame, mask_labels)
