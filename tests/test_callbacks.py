"""Widget callbacks after a logout: ``ui.callback_ctx`` gives None instead of stopping the run.

After a logout the browser still sends the old page's widgets; Streamlit reports their cleared
state as changes and runs their callbacks before the script.  A callback that stopped the run
(``ui.ctx`` -> ``require_user`` -> ``st.stop``) left the tab on a bare "Please log in." with no
login form; with ``callback_ctx`` the run goes on (here: the text after the widget appears)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from endolite.records import Role
from endolite.storage import connect
from tests.support import make_user


def _script():
    import streamlit as st

    import ui

    def changed():
        here = ui.callback_ctx()
        st.session_state["who"] = None if here is None else here.actor.name

    st.text_input("note", key="note", on_change=changed)
    st.markdown("the run went on")


def test_callback_ctx_is_none_without_a_user_and_the_run_goes_on(app_env):
    at = AppTest.from_function(_script, default_timeout=30).run()
    at.text_input(key="note").input("x").run()
    assert not at.exception, at.exception
    assert at.session_state["who"] is None
    assert any("the run went on" in m.value for m in at.markdown)
    assert not at.warning, "no 'Please log in.' stop inside the callback"


def test_callback_ctx_is_the_signed_in_user(app_env):
    con = connect(app_env)
    ann = make_user(con, "ann", Role.ANNOTATOR)
    at = AppTest.from_function(_script, default_timeout=30)
    at.session_state["user_id"] = ann.id
    at.run()
    at.text_input(key="note").input("x").run()
    assert not at.exception, at.exception
    assert at.session_state["who"] == "ann"
