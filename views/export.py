"""Export (leads and admins): validated, anonymized media and their annotations as one zip ->
endolite.services.exports (gate: endolite.export.gate; formats: endolite.export.formats; zip:
endolite.export.bundle).

The zip is written as a stream to data/exports/ with a progress bar (server memory flat).  The
download is a link to the dashboard's own route (``web.py``, a short-lived ticket from
``services.exports.download_link``) that streams the file from disk: Streamlit's download
button would hold the whole file in memory (~4x while sending: bench/export_memory.py).  Above
the size limit an admin sets, the page names the file on the server and the CLI command.
"""

from __future__ import annotations

import html
import time

import streamlit as st

import ui
from endolite.export import tickets
from endolite.export.formats import FORMATS, ExportOptions, parse_segment_ids
from endolite.records import Role
from endolite.services import exports
from endolite.services import settings as settings_service
from endolite.storage import anonymizations as anon
from endolite.storage import media

LINK_FRESH_S = tickets.TTL_S - 60     # re-issue a link a minute before its ticket expires

ui.require_user(Role.ADMIN, Role.LEAD)
ctx = ui.ctx()
con = ctx.con
st.title("Export")
st.caption("Only media whose anonymization a lead validated can be exported; raw media never "
           "leave. Validate on the Anonymization page.")

status = {("video", r.video_id): r.status for r in anon.all_rows(con) if r.video_id is not None}
status |= {("group", r.group_id): r.status for r in anon.all_rows(con) if r.group_id is not None}
choices = [("video", v.id, v.title) for v in media.list_videos(con)]
choices += [("group", g.id, g.title) for g in media.list_groups(con)]


def _label(item) -> str:
    kind, mid, title = item
    state = status.get((kind, mid), anon.AnonStatus.RAW)
    return f"{'video' if kind == 'video' else 'image group'} {mid}: {title} ({state})"


ready = [c for c in choices if status.get(c[:2]) == anon.AnonStatus.VALIDATED]
waiting = [c for c in choices if status.get(c[:2]) != anon.AnonStatus.VALIDATED]
if waiting:
    with st.expander(f"{len(waiting)} not validated (cannot be exported)"):
        for c in waiting:
            st.markdown("- " + ui.md(_label(c)))
if not ready:
    st.info("Nothing is validated yet.")

with st.form("export_form"):
    picked = st.multiselect("Media", ready, format_func=_label, key="export_media")
    fmt = st.selectbox("Format", FORMATS, key="export_format")
    c1, c2, c3 = st.columns(3)
    frames = c1.checkbox("Frames", key="export_frames",
                         help="ship the blanked frame images (always for YOLO / Visual Layer)")
    videos = c1.checkbox("Videos (anonymized copies)", key="export_videos")
    frame_id_paths = c1.checkbox("Frame-id paths", key="export_frame_id_paths",
                                 help="lx tables: frame_relative_path = frame_<frame_id>.jpg")
    only = c2.radio("Rows", ["all", "true", "false"], horizontal=True, key="export_only")
    use_flags = c2.checkbox("Only inside segments marked for export", key="export_flags")
    segments = c2.text_input("Only inside segments (ids, comma separated)", key="export_segments")
    transcode = c3.number_input("Transcode frames at fps (0 = off; lx tables)", 0.0, 120.0, 0.0,
                                key="export_fps")
    encrypt_to = c3.text_input("Encrypt to (age public key, age1...)", key="export_encrypt",
                               help="only the holder of the matching private key can open it")
    yolo_task = c3.radio("YOLO task", ["detect", "segment"], horizontal=True, key="export_yolo")
    with st.expander("AI-dataset fields"):
        name = st.text_input("Name", "endolite export", key="export_name")
        description = st.text_input("Description", key="export_description")
        dataset_type = st.text_input("dataset_type", "image", key="export_dataset_type")
        model_type = st.text_input("ai_model_type", "image_multilabel_classification",
                                   key="export_model_type")
    submitted = st.form_submit_button("Write export", type="primary")

if submitted:
    with ui.reported_errors():
        options = ExportOptions(
            frames=frames, videos=videos, frame_id_paths=frame_id_paths, only=only,
            segment_ids=parse_segment_ids(segments) if segments.strip() else None,
            use_export_flags=use_flags, transcode_fps=transcode or None, name=name,
            description=description, dataset_type=dataset_type, ai_model_type=model_type,
            extra={"task": yolo_task} if fmt == "yolo" else {})
        bar = st.progress(0.0, text="writing the zip")
        record = exports.export(
            ctx, fmt, video_ids=[m for k, m, _ in picked if k == "video"],
            group_ids=[m for k, m, _ in picked if k == "group"], options=options,
            encrypt_to=encrypt_to.strip() or None,
            progress=lambda f, msg: bar.progress(f, text=f"writing {msg}"))
        bar.progress(1.0, text="done")
        st.session_state["export_last"] = record.id
        st.success(f"Export {record.id} written ({record.size_bytes / 1e6:.1f} MB).")

st.subheader("Exports")
limit_mb = settings_service.download_limit_mb(con)
for record in exports.recent(ctx, limit=10):
    path = exports.file_of(ctx, record)
    size_mb = record.size_bytes / 2**20
    head = (f"**{record.id}** · {record.format} · {size_mb:.1f} MiB · "
            f"{record.created_at:%Y-%m-%d %H:%M} · {ui.md(record.created_by or '')}"
            + (" · encrypted" if record.encrypted_to else ""))
    c1, c2 = st.columns([3, 1])
    c1.markdown(head)
    if not path.is_file():
        c2.caption("file removed")
    elif size_mb <= limit_mb:
        links = st.session_state.setdefault("export_links", {})      # id -> (url, issued at)
        fresh = record.id in links and time.monotonic() - links[record.id][1] < LINK_FRESH_S
        if record.id == st.session_state.get("export_last") and not fresh:
            links[record.id] = (exports.download_link(ctx, record), time.monotonic())
            fresh = True                                           # the export just written
        if fresh:
            # the file name is ours (format, time, random hex) and the URL a url-safe token;
            # escaped anyway, as every text that reaches HTML
            name = html.escape(path.name, quote=True)
            c2.markdown(f'<a href="{html.escape(links[record.id][0], quote=True)}" '
                        f'download="{name}">Download {name}</a>', unsafe_allow_html=True)
        elif c2.button("Download link", key=f"export_link_{record.id}"):
            links[record.id] = (exports.download_link(ctx, record), time.monotonic())
            st.rerun()
    else:
        c2.caption(f"{size_mb:.0f} MiB is above the {limit_mb:.0f} MiB download limit")
        c1.code(f"{path}\nendolite export --format {record.format} --out FILE.zip "
                + " ".join(f"--video {v}" for v in record.video_ids)
                + " ".join(f" --group {g}" for g in record.group_ids), language="bash")
