"""Annotate: masks from +/- clicks (SAM or the classical engine), boxes, polygons, brush and
eraser on the frame; mask list with visibility, delete and undo; propagation through the
sequence; the annotator's benchmark task queue (blind); the user's tags on the frame."""

from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image
from streamlit_drawable_canvas import st_canvas

import annotate_panels
import ui
from endolite import annotate, canvas
from endolite import masks as rle
from endolite.benchmark import service as bench
from endolite.errors import EndoliteError
from endolite.records import JobStatus, MaskSource, ShapeKind
from endolite.services import Action
from endolite.services import benchmarks as bench_service
from endolite.services import masks as mask_service
from endolite.services import tags as tag_service
from endolite.storage import annotations, benchmarks, jobs, labels, media
from endolite.storage import tags as tag_store

TOOLS = {"+ point": "point", "− point": "point", "box": "rect", "polygon": "polygon",
         "brush": "freedraw", "eraser": "freedraw"}
CANVAS_WIDTH = 640

user = ui.require_user()
st.title("Annotate")
ctx = ui.ctx()
if not st.session_state.get("ann_interrupted_seen"):     # once per session, after a restart
    st.session_state["ann_interrupted_seen"] = True
    for job in jobs.interrupted_of(ctx.con, user.name):
        st.warning(f"Your {job.kind} job {job.id} ({job.updated_at:%Y-%m-%d %H:%M}) did not finish: "
                   f"{ui.md(job.message)}")
con, settings = ctx.con, ctx.settings
engine = ui.segmenter()
st.caption("Segmentation engine: " + ui.md(engine.description))

# --- which frames -----------------------------------------------------------------------------
queue = bench.tasks_for(con, user.name)
mode = st.radio("Work on", ["A sequence", f"My benchmark tasks ({len(queue)})"], horizontal=True,
                key="ann_mode") if queue else "A sequence"
if mode == "A sequence":
    video_id, group_id, _ = ui.sequence_picker(key="ann_sequence")
    with_context = st.toggle("Include context frames", key="ann_context")
    frames = media.FramePages(con, video_id=video_id, group_id=group_id,   # read a page at a time
                              include_context=with_context)
else:
    frames = media.frames_by_ids(con, [t.frame_id for t in queue])
frame = ui.frame_navigator(frames, key="ann_nav")
if frame is None:
    st.stop()


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


if hasattr(engine, "is_cached"):              # SAM: embeddings are cached per frame on disk
    ready = sum(engine.is_cached(f.sha256) for f in frames)
    c1, c2 = st.columns([3, 1])
    c1.caption(f"Embeddings ready for {ready} of {len(frames)} frames of this list "
               "(a click on a ready frame only runs the decoder).")
    if ready < len(frames) and not st.session_state.get("ann_embed_job") \
            and c2.button("Precompute embeddings", key="ann_precompute"):
        st.session_state["ann_embed_job"] = ui.start_precompute(frames, around=frame.frame_number).id
        st.rerun()                            # redraw without the button, with the progress bar
    if st.session_state.get("ann_embed_job"):
        embed_progress()
    ended = st.session_state.pop("ann_embed_ended", None)
    if ended is not None and ended.status == JobStatus.FAILED:
        st.error(f"Embedding frames failed: {ui.md(ended.message)}")
    elif ended is not None and (ended.result or {}).get("failed"):
        st.warning(f"{ended.result['failed']} frames could not be embedded (a click embeds them).")
blind = frame.id in benchmarks.benchmark_frames_for(con, user.name)
task = next((t for t in queue if t.frame_id == frame.id), None)
if blind:
    st.info("Benchmark frame: you see only your own annotations here.")

mask_labels = [lb for lb in labels.list_all(con) if {"mask", "box"} & set(lb.allowed)]
if not mask_labels:
    st.warning("Create a label that allows masks or boxes first.")
    ui.link_to("views/labels.py", "Labels", ":material/label:")
    st.stop()

tool_col, label_col, size_col = st.columns([3, 2, 1])
tool_name = tool_col.segmented_control("Tool", list(TOOLS), default="+ point", key="ann_tool") or "+ point"
label = label_col.selectbox("Label", mask_labels, key="ann_label", format_func=lambda lb: lb.name)
brush = size_col.number_input("Brush px", 2, 200, 20, key="ann_brush")
label_col.markdown(f"<span style='color:{label.color}'>■</span> {ui.md(label.name)} ({label.kind})",
                   unsafe_allow_html=True)      # colour is validated #rrggbb; the name is escaped

# --- masks on this frame ----------------------------------------------------------------------
shown_masks = annotations.masks_of(con, frame_ids=[frame.id], annotator=user.name if blind else None)
hidden: set[int] = st.session_state.setdefault("ann_hidden", set())
hidden_labels = st.multiselect("Hide labels", sorted({m.label for m in shown_masks}), key="ann_hidden_labels")
visible = [m for m in shown_masks if m.id not in hidden and m.label not in hidden_labels]

preview_key = f"ann_preview_{frame.id}"
preview: np.ndarray | None = st.session_state.get(preview_key)
nonce = st.session_state.setdefault("ann_nonce", 0)
scale = frame.width / CANVAS_WIDTH          # image px per canvas px (small frames are enlarged)
width, height = round(frame.width / scale), round(frame.height / scale)
background = annotate.render_frame(settings, frame, visible, preview=preview, preview_color=label.color)

# + and − points share one canvas (their clicks accumulate); the eraser gets its own, so a
# brush stroke not yet saved is never read as an eraser stroke (and the other way round)
canvas_kind = "eraser" if tool_name == "eraser" else TOOLS[tool_name]
left, right = st.columns([5, 2])
with left:
    drawing = st_canvas(
        # the canvas shows width x height px: send that, not the full frame (a 1280x1024 PNG
        # took 0.6-2.5 s to encode on every rerun)
        background_image=Image.fromarray(background).resize((width, height), Image.BILINEAR),
        width=width, height=height,
        drawing_mode=TOOLS[tool_name], key=f"ann_canvas_{frame.id}_{nonce}_{canvas_kind}",
        fill_color=(canvas.NEGATIVE if tool_name == "− point" else canvas.POSITIVE)
        if TOOLS[tool_name] == "point" else "rgba(255, 255, 255, 0.15)",
        stroke_color="white" if TOOLS[tool_name] in ("point", "rect", "polygon") else label.color,
        stroke_width=int(brush) if TOOLS[tool_name] == "freedraw" else 2,
        point_display_radius=5, update_streamlit=True)
json_data = drawing.json_data


def reset_canvas() -> None:
    st.session_state["ann_nonce"] = st.session_state.get("ann_nonce", 0) + 1
    st.session_state.pop(preview_key, None)
    st.session_state.pop("ann_prompt_sig", None)


def save(mask: np.ndarray, *, source: MaskSource, kind: ShapeKind, prompt: dict) -> None:
    with ui.reported_errors():
        mask_service.save(ctx, annotate.NewMask(frame.id, mask, source=source, kind=kind, prompt=prompt),
                          label=label)
        if task is not None:
            bench_service.start_task(ctx, task.benchmark_id, frame.id)
        reset_canvas()
        st.rerun()


def save_own_tags(frame_id: int, key: str) -> None:
    """The tag multiselect's on_change: only a change the user made reaches the service."""
    try:
        tag_service.set_own_tags(ui.ctx(), frame_id, st.session_state[key])
    except EndoliteError as exc:
        st.session_state["ann_tags_error"] = str(exc)


def frame_tags(blind: bool) -> None:
    """The frame's tags and who set them; a multiselect of the user's own (any name may be
    typed); leads and admins can also remove another user's tag.  Blind frames: own tags only."""
    tags = tag_store.tags_of(con, [frame.id]).get(frame.id, [])
    if blind:
        tags = [t for t in tags if t.username == user.name]
    mine = [t.tag for t in tags if t.username == user.name]
    who: dict[str, list[str]] = {}
    for t in tags:
        who.setdefault(t.tag, []).append(t.username)
    with st.expander(f"Tags ({len(who)})", expanded=bool(who)):
        if who:
            st.caption(" · ".join(f"{ui.md(tag)} ({ui.md(', '.join(names))})"
                                  for tag, names in who.items()))
        if error := st.session_state.pop("ann_tags_error", None):
            st.error(ui.md(error))
        options = list(dict.fromkeys([*tag_service.DEFAULT_TAGS, *tag_store.tag_names(con), *mine]))
        key = f"ann_tags_{frame.id}"
        st.session_state[key] = mine          # what is stored (also after a change elsewhere)
        st.multiselect("My tags", options, key=key, accept_new_options=True,
                       placeholder="Add a tag", on_change=save_own_tags, args=(frame.id, key))
        others = [t for t in tags if t.username != user.name]
        if others and ctx.may_others(Action.FRAME_TAG):
            c1, c2 = st.columns([3, 1])
            gone = c1.selectbox("Another user's tag", others, key=f"ann_tag_other_{frame.id}",
                                format_func=lambda t: f"{t.tag} ({t.username})")
            if c2.button("Remove", key=f"ann_tag_rm_{frame.id}"):
                with ui.reported_errors():
                    tag_service.remove_tag(ctx, frame.id, gone.tag, username=gone.username)
                    st.rerun()


# --- prompts -> preview -----------------------------------------------------------------------
points, signs = canvas.points(json_data, scale=scale)
boxes = canvas.boxes(json_data, scale=scale)
with right:
    st.markdown("**Prompt**")
    if TOOLS[tool_name] == "point" or (boxes and tool_name == "box"):
        box = boxes[-1] if boxes else None
        signature = (points.round(1).tobytes(), signs.tobytes(), box)
        if (len(points) or box is not None) and st.session_state.get("ann_prompt_sig") != signature:
            with ui.reported_errors():
                embedding = ui.embedding(frame)
                candidates, scores = engine.predict(embedding, points, signs, box=box)
                st.session_state[preview_key] = candidates[int(np.argmax(scores))]
                st.session_state["ann_prompt_sig"] = signature
                st.rerun()
        st.caption(f"{int((signs == 1).sum())} positive, {int((signs == 0).sum())} negative clicks"
                   + (", 1 box" if box is not None else ""))
        prompt = {"points": [[float(x), float(y), int(s)] for (x, y), s in zip(points, signs)],
                  "box": list(box) if box is not None else None, "engine": engine.name}
        if preview is not None and st.button("Accept mask", type="primary", key="ann_accept",
                                              shortcut="a"):
            save(preview, source=MaskSource.SAM if engine.name.startswith("sam") else MaskSource.MANUAL,
                 kind=ShapeKind.MASK, prompt=prompt)
        if boxes and tool_name == "box" and st.button("Save as box", key="ann_save_box"):
            save(rle.box_to_mask(boxes[-1], frame.height, frame.width), source=MaskSource.MANUAL,
                 kind=ShapeKind.BOX, prompt={"box": list(boxes[-1])})
    elif tool_name == "polygon":
        shapes = canvas.polygons(json_data, scale=scale)
        st.caption(f"{len(shapes)} closed polygon(s); close one by clicking its first point.")
        if shapes and st.button("Save polygon", type="primary", key="ann_save_polygon"):
            save(rle.polygon_to_mask(shapes[-1], frame.height, frame.width), source=MaskSource.MANUAL,
                 kind=ShapeKind.POLYGON, prompt={"polygon": shapes[-1].round(1).tolist()})
    else:
        stroke = canvas.brush_mask(json_data, scale=scale, height=frame.height, width=frame.width)
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
    if st.button("Clear prompt", key="ann_clear", shortcut="x"):
        reset_canvas()
        st.rerun()
    last = mask_service.undoable(ctx, frame.id)      # the signed-in user's own last action here
    if last is not None and st.button(f"Undo ({last.action})", key="ann_undo_btn", shortcut="u",
                                      help="Undo your own last mask action on this frame"):
        with ui.reported_errors():
            mask_service.undo(ctx, frame.id)
            st.rerun()
    frame_tags(blind)
    if task is not None:
        st.markdown(f"**Benchmark task** ({task.status})")
        if st.button("Mark task complete", key="ann_task_done"):
            with ui.reported_errors():
                bench_service.complete(ctx, task.benchmark_id, frame_ids=[frame.id])
                st.rerun()

# --- mask list --------------------------------------------------------------------------------
st.subheader(f"Masks on this frame ({len(shown_masks)})")
for m in shown_masks:
    c1, c2, c3, c4 = st.columns([4, 1, 1, 1])
    conf = "" if m.confidence is None else f" · conf {m.confidence:.2f}"
    flag = " · flagged for review" if m.flagged else ""
    c1.markdown(f"<span style='color:{m.color}'>■</span> **{ui.md(m.label)}** #{m.id} · {m.kind} · "
                f"{m.source} · {ui.md(m.annotator)} · {m.area} px{conf}{flag}", unsafe_allow_html=True)
    shown = c2.checkbox("show", value=m.id not in hidden, key=f"ann_vis_{m.id}")
    (hidden.discard if shown else hidden.add)(m.id)
    if ctx.may(Action.MASK_DELETE, owners=[m.annotator]) and c3.button("Delete", key=f"ann_del_{m.id}"):
        with ui.reported_errors():
            mask_service.delete(ctx, [m.id], versions={m.id: m.version})
            st.rerun()
    if ctx.may(Action.MASK_PROPAGATE, owners=[m.annotator]) and c4.button("Propagate", key=f"ann_prop_{m.id}"):
        st.session_state["ann_propagate"] = m.id

annotate_panels.show(ctx, frame, shown_masks, blind=blind)

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
