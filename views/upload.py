"""Upload: videos, images, zips of frames and JSON manifests -> endolite.services.media.

Browser file names are never used as paths: each upload streams to data/tmp under a safe base
name (endolite.ingest.upload.stage_upload) and the staging folder is removed afterwards.
Server paths (leads and admins only) must lie below an import folder (Settings & backup page).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

import ui
from endolite.ingest.upload import discard_staging, stage_upload
from endolite.records import IngestStatus, to_dict
from endolite.services import Action
from endolite.services import media as media_service
from endolite.services.settings import import_roots

user = ui.require_user()
ctx = ui.ctx()
st.title("Upload")
st.caption("Videos (mp4, avi, mov, mkv, webm, ...), still images (jpg, png, bmp, tif), zips of "
           "frames (Lightning Pose layout with selected_frames.csv) and JSON manifests (Encord "
           "registration format). Identical bytes are stored once.")

files = st.file_uploader("Files", accept_multiple_files=True, key="upload_files")
server_paths = ""
if ctx.may(Action.MEDIA_IMPORT_SERVER):
    roots = ", ".join(str(r) for r in import_roots(ctx, ctx.settings))
    server_paths = st.text_area(f"…or paths on this server, below an import folder ({roots}); one "
                                "per line: files, folders, zips, manifests", key="upload_paths")


def progress_bar():
    bar = st.progress(0.0, text="Importing…")
    return bar, (lambda f, msg: bar.progress(min(max(f, 0.0), 1.0), text=msg))


if st.button("Import", type="primary", key="upload_go"):
    lines = [p.strip() for p in server_paths.splitlines() if p.strip()]
    if not files and not lines:
        st.warning("Choose files or enter a path first.")
    results = []
    if files:
        staged, names = [], {}
        try:
            with ui.reported_errors():
                for upload in files:
                    path = stage_upload(ctx.settings, upload.name, upload)
                    staged.append(path)
                    names[str(path)] = upload.name
                bar, tick = progress_bar()
                results += [{**to_dict(r), "path": names.get(r.path, r.path)}
                            for r in media_service.upload(ctx, staged, names=names, progress=tick)]
                bar.progress(1.0, text="Done")
        finally:
            for path in staged:
                discard_staging(path)
    if lines:
        with ui.reported_errors():
            bar, tick = progress_bar()
            results += [to_dict(r) for r in media_service.import_server(ctx, lines, progress=tick)]
            bar.progress(1.0, text="Done")
    if results:
        st.session_state["upload_results"] = results

results = st.session_state.get("upload_results")
if results:
    table = pd.DataFrame(results)[["path", "kind", "status", "id", "title", "reason"]]
    imported = (table["status"] == IngestStatus.IMPORTED).sum()
    st.subheader(f"Imported {imported} of {len(table)}")
    for row in results:
        if row["status"] == IngestStatus.REJECTED:
            st.error(f"{ui.md(row['path'])}: {ui.md(row['reason'])}")
        elif row["status"] == IngestStatus.DUPLICATE:
            st.warning(f"{ui.md(row['path'])}: {ui.md(row['reason'])}")
    st.dataframe(table, hide_index=True)
