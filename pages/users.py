"""Users (admin only): list and create accounts with roles."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import ui
from endolite import auth
from endolite.records import Role, to_dict
from endolite.storage import users

admin = ui.require_user(Role.ADMIN)
st.title("Users")
con = ui.cursor()
st.dataframe(pd.DataFrame([to_dict(u) for u in users.list_all(con)]), hide_index=True,
             width="stretch")
with st.form("user_add", clear_on_submit=True):
    st.subheader("New user")
    name = st.text_input("Name", key="user_name")
    role = st.selectbox("Role", list(Role), index=2, key="user_role")
    password = st.text_input("Initial password", type="password", key="user_password")
    if st.form_submit_button("Create user"):
        with ui.reported_errors():
            created = auth.add_user(con, name, role, password, created_by=admin.name)
            st.success(f"Created {created.name} ({created.role}).")
