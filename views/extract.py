"""Extract frames (leads and admins): pick frames worth labeling from a video ->
endolite.services.media.extract -> endolite.extract."""

from __future__ import annotations

import streamlit as st

import ui
from endolite.records import Role, SampleMethod
from endolite.services import media as media_service
from endolite.storage import media, training

user = ui.require_user(Role.ADMIN, Role.LEAD)
st.title("Extract frames")
videos = media.list_videos(ui.cursor())
if not videos:
    st.info("No videos yet: upload one first.")
    ui.link_to("views/upload.py", "Go to Upload", ":material/upload:")
    st.stop()

by_id = {v.id: v for v in videos}
video_id = st.selectbox("Video", list(by_id), key="extract_video",
                        format_func=lambda i: f"{i}: {by_id[i].title} ({by_id[i].width}x{by_id[i].height}, "
                                              f"{by_id[i].frame_count} frames, {by_id[i].duration:.1f} s)")
video = by_id[video_id]
METHOD_HELP = {
    SampleMethod.UNIFORM: "evenly spaced frames",
    SampleMethod.RANDOM: "random frames (seeded)",
    SampleMethod.KMEANS: "visually diverse frames: thumbnails, PCA, k-means, the frame nearest each centroid",
    SampleMethod.KEYFRAMES: "I-frames only (fast: decodes just those)",
    SampleMethod.UNCERTAIN: "active learning: frames a trained model is least sure of, spread by k-means "
                 "over its features",
}
left, right = st.columns(2)
with left:
    method = st.selectbox("Method", list(METHOD_HELP), key="extract_method",
                          format_func=lambda m: f"{m} — {METHOD_HELP[m]}")
    model, runs_by_id = None, {}
    if method == "uncertain":
        runs_by_id = {r.id: r for r in training.list_runs(ui.cursor(), status=[training.RunStatus.DONE])}
        if not runs_by_id:
            st.info("No finished training run yet: train a model on the Training page first.")
    if runs_by_id:
        model = st.selectbox(
            "Model (training run)", list(runs_by_id), key="extract_model",
            format_func=lambda i: f"run {i}: {runs_by_id[i].backbone}, "
                                  f"{', '.join(runs_by_id[i].labels)}"
                                  + (f", val macro F1 {runs_by_id[i].best_val_macro_f1:.2f}"
                                     if runs_by_id[i].best_val_macro_f1 is not None else ""))
    count = st.number_input("Frames to pick", min_value=1, max_value=max(1, video.frame_count),
                            value=min(20, max(1, video.frame_count)), key="extract_count")
    context = st.number_input("Context frames either side", min_value=0, max_value=25, value=2,
                              key="extract_context")
with right:
    span = st.slider("Portion of the video (seconds)", 0.0, max(video.duration, 0.01),
                     (0.0, max(video.duration, 0.01)), key="extract_span")
    fmt = st.selectbox("Image format", ["jpg", "png"], key="extract_format")
    quality = st.slider("JPEG quality", 50, 100, 90, key="extract_quality", disabled=fmt != "jpg")
    seed = st.number_input("Seed", value=0, key="extract_seed")

if st.button("Extract", type="primary", key="extract_go",
             disabled=method == "uncertain" and model is None):
    bar = st.progress(0.0, text="Decoding…")
    with ui.reported_errors():
        result = media_service.extract(
            ui.ctx(), video.id, method=method, count=int(count),
            start=f"{span[0]}s", end=f"{span[1]}s", context=int(context), seed=int(seed), fmt=fmt,
            quality=int(quality), **({"model": int(model)} if model is not None else {}),
            progress=lambda f, msg: bar.progress(min(max(f, 0.0), 1.0), text=msg))
        bar.progress(1.0, text="Done")
        st.session_state["extract_result"] = result

result = st.session_state.get("extract_result")
if result is not None and result.video_id == video.id:
    st.success(f"{len(result.picked)} frames picked (+{len(result.context)} context frames) "
               "— proceed to annotation.")
    ui.frame_grid(list(result.picked))
