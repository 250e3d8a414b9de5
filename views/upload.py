"""Upload: videos, images, zips of frames and JSON manifests -> endolite.services.media.

Browser file names are never used as paths: each upload streams to data/tmp under a safe base
name (endolite.ingest.upload.stage_upload) and the staging folder is removed afterwards.
Server paths (leads and admins only) must lie below an import folder (Settings & backup page).
Leads and admins also import COCO annotations here (endolite.services.coco_import).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

import ui
from endolite.ingest.upload import discard_staging, safe_name, stage_upload
from endolite.records import IngestStatus, to_dict
from endolite.services import Action
from endolite.services import coco_import
from endolite.services import media as media_service
from endolite.services.settings import import_roots
from endolite.storage import media as media_store
from endolite.storage import users as user_store

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


def own_reason(reason: str | None, path: str) -> str | None:
    """The reason without its leading ``<file name>: `` (the row shows the name already)."""
    name = Path(path).name
    if reason and reason.startswith(f"{name}: "):
        return reason[len(name) + 2:]
    return reason


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
                results += [{**to_dict(r), "path": names.get(r.path, r.path),
                             "reason": own_reason(r.reason, r.path)} for r in media_service.upload(ctx, staged, names=names, progress=tick)]
                bar.progress(1.0, text="Done")
        finally:
            for path in staged:
                discard_staging(path)
    if lines:
        with ui.reported_errors():
            bar, tick = progress_bar()
            results += [{**to_dict(r), "reason": own_reason(r.reason, r.path)}
                        for r in media_service.import_server(ctx, lines, progress=tick)]
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

# --- COCO annotations from another tool (leads, admins) ----------------------------------------
if ctx.may(Action.IMPORT_COCO):
    with st.expander("Import COCO annotations (CVAT, Label Studio, endolite export)"):
        st.caption("Masks (RLE), polygons and boxes from CVAT, Label Studio or an endolite export, "
                   "onto the frames whose file names the COCO images give (original name, stored "
                   "name or frame_<id>). Categories that are not labels yet become labels. All or "
                   "nothing: a bad annotation stops the import and names its id.")
        coco_file = st.file_uploader("COCO .json", type=["json"], key="coco_file")
        people = [u.name for u in user_store.list_all(ctx.con)]
        who = st.selectbox("Store as annotator", people, key="coco_annotator")
        scopes: list[tuple[str, dict[str, int]]] = [("all frames", {})]
        scopes += [(f"image group {g.id}: {g.title}", {"group_id": g.id})
                   for g in media_store.list_groups(ctx.con)]
        scopes += [(f"video {v.id}: {v.title}", {"video_id": v.id})
                   for v in media_store.list_videos(ctx.con)]
        scope = st.selectbox("Match file names among", range(len(scopes)), key="coco_scope",
                             format_func=lambda i: scopes[i][0])
        if st.button("Import COCO", key="coco_go"):
            st.session_state.pop("coco_result", None)
            if coco_file is None or who is None:
                st.warning("Choose a COCO .json file and an annotator first.")
            else:
                with ui.reported_errors():
                    name = safe_name(coco_file.name, fallback="coco.json")
                    result = coco_import.import_coco(ctx, coco_file.getvalue(), annotator=who,
                                                     name=name, **scopes[scope][1])
                    st.session_state["coco_result"] = result.lines()
        for line in st.session_state.get("coco_result") or []:
            st.success(ui.md(line))
