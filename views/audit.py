"""Audit log (leads and admins): who did what to which records and when, filtered, as CSV ->
endolite.services.audit_log."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

import ui
from endolite.records import Role, to_dict
from endolite.services import audit_log
from endolite.storage import audit, users

ui.require_user(Role.ADMIN, Role.LEAD)
ctx = ui.ctx()
st.title("Audit log")
c1, c2, c3, c4 = st.columns(4)
who = c1.selectbox("User", [None, *[u.name for u in users.list_all(ctx.con)]], key="audit_user",
                   format_func=lambda v: "everyone" if v is None else v)
action = c2.selectbox("Action", [None, *audit.actions(ctx.con)], key="audit_action",
                      format_func=lambda v: "all" if v is None else v)
since = c3.date_input("From", value=None, key="audit_since")
until = c4.date_input("To (inclusive)", value=None, key="audit_until")
page_size = 200
page = st.number_input("Page", 1, 100_000, 1, key="audit_page")
filters = dict(username=who, action=action,
               since=dt.datetime.combine(since, dt.time()) if since else None,
               until=dt.datetime.combine(until + dt.timedelta(days=1), dt.time()) if until else None)
rows = audit_log.entries(ctx, **filters, limit=page_size, offset=(int(page) - 1) * page_size)
if rows:
    table = pd.DataFrame([to_dict(e) for e in rows])
    table["details"] = table["details"].map(lambda d: str(d) if d else "")
    st.dataframe(table, hide_index=True, width="stretch")
else:
    st.info("No entries match.")
everything = audit_log.entries(ctx, **filters, limit=1_000_000)
st.download_button(f"Download CSV ({len(everything)} entries)", audit_log.as_csv(everything),
                   file_name="audit_log.csv", mime="text/csv", key="audit_csv")
