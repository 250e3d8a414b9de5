"""The ASGI entry ``endolite serve`` runs: the dashboard (``app.py``) plus routes of our own.

``GET /download/export/{token}`` (``endolite.export.route``) streams an export zip from disk for
a ticket the Export page issued to a signed-in lead (``endolite.export.tickets``).
Streamlit's own download button holds the whole file in memory (~4x while sending,
bench/export_memory.py); this route holds none.

``POST /session/start`` and ``POST /session/end`` (``endolite.session_cookie``) set and clear
the HttpOnly session cookie that keeps a user signed in across a reload.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from endolite import session_cookie
from endolite.export import route as export_route

app = st.App(str(Path(__file__).with_name("app.py")),
             routes=[*export_route.routes(), *session_cookie.routes()])
