"""My account: change one's own password -> endolite.services.users.change_password."""

from __future__ import annotations

import streamlit as st

import ui
from endolite.services import users as user_service

user = ui.require_user()
ctx = ui.ctx()
st.title("My account")
st.write(f"Signed in as **{ui.md(user.name)}** ({user.role}).")
with st.form("account_password", clear_on_submit=True):
    old = st.text_input("Current password", type="password", key="account_old")
    new = st.text_input("New password", type="password", key="account_new")
    again = st.text_input("New password again", type="password", key="account_again")
    if st.form_submit_button("Change password"):
        if new != again:
            st.error("The new passwords differ.")
        else:
            with ui.reported_errors():
                user_service.change_password(ctx, old, new, keep_session=ui.session_id())
                st.success("Password changed.")
