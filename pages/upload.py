"""Upload: videos, images, zips of frames and JSON manifests -> endolite.ingest."""

from __future__ import annotations

import shutil
import uuid

import pandas as pd
import streamlit as st

import ui
from endolite.ingest import ingest_paths
from endolite.records import IngestStatus, to_dict

user = ui.require_user()
st.title("Upload")
st.caption("Videos (mp4, avi, mov, mkv, webm, ...), still images (jpg, png, bmp, tif), zips of "
           "frames (Lightning Pose layout with selected_frames.csv) and JSON manifests (Encord "
           "registration format). Identical bytes are stored once.")

files = st.file_uploader("Files", accept_multiple_files=True, key="upload_files")
server_paths = st.text_area("…or paths on this server (one per line: files, folders, zips, manifests)",
                            key="upload_paths")


def run_import(paths: list[str], names: dict[str, str]) -> None:
    bar = st.progress(0.0, text="Importing…")
    results = ingest_paths(ui.cursor(), ui.settings(), paths, user=user.name,
                           progress=lambda f, msg: bar.progress(min(max(f, 0.0), 1.0), text=msg))
    bar.progress(1.0, text="Done")
    # show the names people uploaded, not the staging paths
    st.session_state["upload_results"] = [
        {**to_dict(r), "path": names.get(r.path, r.path)} for r in results]


if st.button("Import", type="primary", key="upload_go"):
    staging = ui.settings().tmp_dir / f"upload-{uuid.uuid4().hex}"
    try:
        paths, names = [], {}
        for i, upload in enumerate(files or []):
            target = staging / str(i) / upload.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(upload.getbuffer())
            paths.append(str(target))
            names[str(target)] = upload.name
        paths += [p.strip() for p in server_paths.splitlines() if p.strip()]
        if not paths:
            st.warning("Choose files or enter a path first.")
        else:
            with ui.reported_errors():
                run_import(paths, names)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

results = st.session_state.get("upload_results")
if results:
    table = pd.DataFrame(results)[["path", "kind", "status", "id", "title", "reason"]]
    imported = (table["status"] == IngestStatus.IMPORTED).sum()
    st.subheader(f"Imported {imported} of {len(table)}")
    for row in results:
        if row["status"] == IngestStatus.REJECTED:
            st.error(f"{row['path']}: {row['reason']}")
        elif row["status"] == IngestStatus.DUPLICATE:
            st.warning(f"{row['path']}: {row['reason']}")
    st.dataframe(table, hide_index=True)
