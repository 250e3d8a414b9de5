"""Extract frames (leads and admins): pick frames worth labeling from a video, in a background
job (endolite.services.media.start_extract -> extract -> endolite.extract) whose progress and
then result the page shows, also after the user comes back to it."""

from __future__ import annotations

import streamlit as st

import ui
from endolite.records import JobStatus, Role, SampleMethod
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

job = media_service.extraction_job(ui.cursor(), video.id, created_by=user.name)
if st.button("Extract", type="primary", key="extract_go",
             disabled=method == "uncertain" and model is None):
    started = None
    with ui.reported_errors():      # refused: the role, the model, a running extraction
        started = media_service.start_extract(
            ui.ctx(), video.id, con=ui.job_connection(), method=method, count=int(count),
            start=f"{span[0]}s", end=f"{span[1]}s", context=int(context), seed=int(seed), fmt=fmt,
            quality=int(quality), **({"model": int(model)} if model is not None else {}))
    job = started or media_service.extraction_job(ui.cursor(), video.id, created_by=user.name,
                                                  shown_for_s=0)   # only a running one

if job is not None and job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
    ui.job_progress(job.id, label=f"Extracting (job {job.id}; you may leave this page)")
elif job is not None and job.status == JobStatus.FAILED:
    st.error(f"Extraction failed: {ui.md(job.message)}")
elif job is not None:
    result = media_service.extraction_of(ui.cursor(), job)
    st.success(f"{len(result.picked)} frames picked (+{len(result.context)} context frames) "
               "— proceed to annotation.")
    ui.frame_grid(list(result.picked))
