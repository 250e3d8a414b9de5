"""Settings & backup (admins): session idle timeout, server folders leads may import from,
a consistent backup while the dashboard runs, and the data-directory check ->
endolite.services.settings / endolite.services.maintenance."""

from __future__ import annotations

import datetime as dt

import streamlit as st

import ui
from endolite.records import Role
from endolite.services import maintenance
from endolite.services import settings as app_settings
from endolite.storage import app_settings as stored

ui.require_user(Role.ADMIN)
ctx = ui.ctx()
st.title("Settings & backup")

st.subheader("Sessions")
with st.form("admin_idle"):
    minutes = st.number_input("Log out after this many idle minutes (0 = never)", 0, 10080,
                              int(app_settings.idle_minutes(ctx.con)), key="admin_idle_minutes")
    if st.form_submit_button("Save"):
        with ui.reported_errors():
            app_settings.set_idle_minutes(ctx, minutes)
            st.success("Saved.")

st.subheader("Server-side import folders")
st.caption(f"Leads may import server paths only below these folders; "
           f"{ui.md(app_settings.inbox(ctx.settings))} is always one.")
with st.form("admin_roots"):
    listed = "\n".join(stored.get(ctx.con, app_settings.ROOTS_KEY, []))
    text = st.text_area("More folders (absolute paths, one per line)", listed, key="admin_roots_text")
    if st.form_submit_button("Save folders"):
        with ui.reported_errors():
            app_settings.set_import_roots(ctx, text.splitlines())
            st.success("Saved.")

st.subheader("Backup")
default = ctx.settings.data_dir.parent / f"endolite-backup-{dt.datetime.now():%Y%m%d-%H%M%S}"
dest = st.text_input("Back up into this new folder on the server", str(default), key="admin_backup_dest")
if st.button("Back up now", key="admin_backup"):
    with ui.reported_errors(), st.spinner("Backing up…"):
        result = maintenance.backup(ctx, dest)
        st.success(f"Backup written to {ui.md(dest)}.")
        st.json({k: str(v) for k, v in vars(result).items()} if hasattr(result, "__dict__") else str(result))

st.subheader("Check the data directory")
c1, c2 = st.columns(2)
for column, repair in ((c1, False), (c2, True)):
    if column.button("Check and repair" if repair else "Check", key=f"admin_check_{repair}"):
        with ui.reported_errors():
            report, done = maintenance.check(ctx, repair=repair)
            for line in done:
                st.write(ui.md(line))
            if report.problems:
                st.warning(f"{len(report.problems)} disagreement(s) between the database and the files:")
                st.dataframe([{"kind": str(p.kind), "where": p.path_or_id, "detail": p.detail,
                               "repairable": p.repairable} for p in report.problems])
            else:
                st.success("The database and the files agree.")
