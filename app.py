"""endolite dashboard entry point: page config, login gate, navigation over views/."""

from __future__ import annotations

import streamlit as st

import ui
from endolite import auth
from endolite.allocator import keep_large_allocations
from endolite.errors import EndoliteError
from endolite.records import Role
from endolite.services import users as user_service

st.set_page_config(page_title="endolite", page_icon=":material/biotech:", layout="wide")


def setup_page() -> None:
    st.title("Welcome to endolite")
    st.write("This data directory is new. Enter the one-time setup code the server printed to "
             "its console when it started (`endolite setup-code` prints it too), then choose the "
             "administrator's name and password.")
    with st.form("setup"):
        code = st.text_input("Setup code", key="setup_code")
        name = st.text_input("Administrator name", key="setup_name")
        password = st.text_input("Password", type="password", key="setup_password")
        if st.form_submit_button("Create administrator"):
            try:
                user = user_service.create_first_admin(ui.cursor(), ui.settings(), code=code,
                                                       name=name, password=password)
            except EndoliteError as exc:
                st.error(ui.md(exc))
            else:
                ui.sign_in(user)
                st.rerun()


def login_page() -> None:
    st.title("endolite — log in")
    if notice := st.session_state.pop("session_notice", None):
        st.info(notice)
    with st.form("login"):
        name = st.text_input("User name", key="login_name")
        password = st.text_input("Password", type="password", key="login_password")
        if st.form_submit_button("Log in"):
            try:
                user = user_service.login(ui.cursor(), name, password, client=ui.client_address())
            except EndoliteError as exc:
                st.error(ui.md(exc))
            else:
                ui.sign_in(user)
                st.rerun()
    ui.session_cookie_script()        # after a logout or a dead cookie: the browser drops it


# (file, title, icon, section, roles allowed; None = everyone signed in)
PAGES = [
    ("views/library.py", "Library", ":material/photo_library:", "Data", None),
    ("views/upload.py", "Upload", ":material/upload:", "Data", None),
    ("views/extract.py", "Extract frames", ":material/movie:", "Data", (Role.ADMIN, Role.LEAD)),
    ("views/annotate.py", "Annotate", ":material/draw:", "Annotation", None),
    ("views/frame_labels.py", "Frame labels & segments", ":material/timeline:", "Annotation", None),
    ("views/labels.py", "Labels", ":material/label:", "Annotation", None),
    ("views/anonymization.py", "Anonymization", ":material/visibility_off:", "Release", (Role.ADMIN, Role.LEAD)),
    ("views/export.py", "Export", ":material/download:", "Release", (Role.ADMIN, Role.LEAD)),
    ("views/benchmark.py", "Benchmark", ":material/leaderboard:", "Quality", (Role.ADMIN, Role.LEAD)),
    ("views/training.py", "Training", ":material/model_training:", "Model", (Role.ADMIN, Role.LEAD)),
    ("views/audit.py", "Audit log", ":material/policy:", "Quality", (Role.ADMIN, Role.LEAD)),
    ("views/users.py", "Users", ":material/group:", "Admin", (Role.ADMIN,)),
    ("views/admin.py", "Settings & backup", ":material/settings:", "Admin", (Role.ADMIN,)),
    ("views/account.py", "My account", ":material/person:", "Account", None),
]


def gate(show, title: str) -> None:
    """Before login only ``show`` runs, with no page list in the sidebar.  Every page's address
    runs it, so a deep link lands on the form (not on "page not found") and, after login, on
    the page asked for.  A reload within the idle timeout skips the form altogether: the session
    cookie signs the new Streamlit session in (``ui.current_user``)."""
    pages = [st.Page(show, title=title, url_path=path.split("/")[-1][:-3], default=i == 0)
             for i, (path, *_rest) in enumerate(PAGES)]
    st.navigation(pages, position="hidden").run()


def main() -> None:
    con = ui.cursor()
    if auth.needs_setup(con):
        ui.announce_setup_code()
        gate(setup_page, "Set up")
        return
    user = ui.current_user()
    if user is None:
        gate(login_page, "Log in")
        return
    with st.sidebar:
        st.caption(f"Signed in as **{ui.md(user.name)}** ({user.role})")
        if st.button("Log out", key="logout"):
            ui.sign_out()
            st.rerun()
        ui.session_cookie_script()    # after a login: the browser fetches its session cookie
    pages: dict[str, list] = {}
    for i, (path, title, icon, section, roles) in enumerate(PAGES):
        if roles is None or user.role in roles:
            pages.setdefault(section, []).append(st.Page(path, title=title, icon=icon, default=i == 0))
    st.navigation(pages).run()


keep_large_allocations()   # SAM's big tensors stay in the heap (endolite/allocator.py)
main()
