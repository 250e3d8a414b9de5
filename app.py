"""endolite dashboard entry point: page config, login gate, navigation over pages/."""

from __future__ import annotations

import streamlit as st

import ui
from endolite import auth
from endolite.allocator import keep_large_allocations
from endolite.errors import EndoliteError
from endolite.records import Role

st.set_page_config(page_title="endolite", page_icon=":material/biotech:", layout="wide")


def setup_page() -> None:
    st.title("Welcome to endolite")
    st.write("This data directory is new. Enter the one-time setup code the server printed to "
             "its console, then choose the administrator's name and password.")
    with st.form("setup"):
        code = st.text_input("Setup code", key="setup_code")
        name = st.text_input("Administrator name", key="setup_name")
        password = st.text_input("Password", type="password", key="setup_password")
        if st.form_submit_button("Create administrator"):
            try:
                user = auth.create_first_admin(ui.cursor(), ui.settings(), code=code, name=name,
                                               password=password)
            except EndoliteError as exc:
                st.error(str(exc))
            else:
                st.session_state["user"] = user
                st.rerun()


def login_page() -> None:
    st.title("endolite — log in")
    with st.form("login"):
        name = st.text_input("User name", key="login_name")
        password = st.text_input("Password", type="password", key="login_password")
        if st.form_submit_button("Log in"):
            try:
                st.session_state["user"] = auth.authenticate(ui.cursor(), name, password)
            except EndoliteError as exc:
                st.error(str(exc))
            else:
                st.rerun()


def main() -> None:
    con = ui.cursor()
    if auth.needs_setup(con):
        ui.announce_setup_code()
        setup_page()
        return
    user = ui.current_user()
    if user is None:
        login_page()
        return
    with st.sidebar:
        st.caption(f"Signed in as **{user.name}** ({user.role})")
        if st.button("Log out"):
            st.session_state.pop("user", None)
            st.rerun()
    pages = {
        "Data": [
            st.Page("pages/library.py", title="Library", icon=":material/photo_library:", default=True),
            st.Page("pages/upload.py", title="Upload", icon=":material/upload:"),
            st.Page("pages/extract.py", title="Extract frames", icon=":material/movie:"),
        ],
        "Annotation": [
            st.Page("pages/annotate.py", title="Annotate", icon=":material/draw:"),
            st.Page("pages/frame_labels.py", title="Frame labels & segments", icon=":material/timeline:"),
            st.Page("pages/labels.py", title="Labels", icon=":material/label:"),
        ],
    }
    if user.role in (Role.ADMIN, Role.LEAD):
        pages["Quality"] = [st.Page("pages/benchmark.py", title="Benchmark", icon=":material/leaderboard:")]
    if user.role == Role.ADMIN:
        pages["Admin"] = [st.Page("pages/users.py", title="Users", icon=":material/group:")]
    st.navigation(pages).run()


keep_large_allocations()   # SAM's big tensors stay in the heap (endolite/allocator.py)
main()
