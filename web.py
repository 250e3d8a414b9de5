"""The ASGI entry ``endolite serve`` runs: the dashboard (``app.py``) plus one route of our own.

``GET /download/export/{token}`` (``endolite.export.route``) streams an export zip from disk for
a ticket the Export page issued to a signed-in lead (``endolite.export.tickets``).
Streamlit's own download button holds the whole file in memory (~4x while sending,
bench/export_memory.py); this route holds none.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from endolite.export.route import routes

app = st.App(str(Path(__file__).with_name("app.py")), routes=routes())
