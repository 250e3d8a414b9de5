"""Users (admin only): create accounts, change roles, deactivate / reactivate, reset passwords
-> endolite.services.users."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import ui
from endolite.records import Role, to_dict
from endolite.services import users as user_service
from endolite.storage import users

admin = ui.require_user(Role.ADMIN)
ctx = ui.ctx()
st.title("Users")
everyone = users.list_all(ctx.con)
st.dataframe(pd.DataFrame([to_dict(u) for u in everyone]), hide_index=True, width="stretch")

with st.form("user_add", clear_on_submit=True):
    st.subheader("New user")
    name = st.text_input("Name", key="user_name")
    role = st.selectbox("Role", list(Role), index=2, key="user_role")
    password = st.text_input("Initial password", type="password", key="user_password")
    if st.form_submit_button("Create user"):
        with ui.reported_errors():
            created = user_service.add_user(ctx, name, role, password)
            st.success(f"Created {ui.md(created.name)} ({created.role}).")

st.subheader("Change a user")
names = [u.name for u in everyone]
target = st.selectbox("User", names, key="user_target")
chosen = next(u for u in everyone if u.name == target)
c1, c2, c3 = st.columns(3)
with c1.form("user_role_form"):
    new_role = st.selectbox("Role", list(Role), index=list(Role).index(chosen.role), key="user_new_role")
    if st.form_submit_button("Change role"):
        with ui.reported_errors():
            user_service.set_role(ctx, target, new_role)
            st.rerun()
with c2:
    st.caption("Active" if chosen.active else "Deactivated")
    if st.button("Deactivate" if chosen.active else "Reactivate", key="user_toggle_active"):
        with ui.reported_errors():
            user_service.set_active(ctx, target, not chosen.active)
            st.rerun()
with c3.form("user_reset_form", clear_on_submit=True):
    new_password = st.text_input("New password", type="password", key="user_reset_password")
    if st.form_submit_button("Reset password"):
        with ui.reported_errors():
            user_service.reset_password(ctx, target, new_password)
            st.success(f"Password of {ui.md(target)} reset.")
