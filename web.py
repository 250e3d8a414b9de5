"""The ASGI entry ``endolite serve`` runs: the dashboard (``app.py``) plus one route of our own.

``GET /download/export/{token}`` streams an export zip from disk in chunks (Starlette's
``FileResponse``), for a ticket the Export page issued to a signed-in lead
(``endolite.export.tickets``).  Streamlit's own download button holds the whole file in memory
(several copies while sending); this route holds none.  Unknown or expired tickets get 404.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from endolite.export import tickets

DOWNLOAD_PATH = "/download/export/{token}"


async def download_export(request: Request) -> Response:
    ticket = tickets.resolve(request.path_params["token"])
    if ticket is None:
        return PlainTextResponse("This download link is unknown or has expired: open the Export "
                                 "page again for a fresh one.", status_code=404)
    media_type = "application/zip" if ticket.path.suffix == ".zip" else "application/octet-stream"
    return FileResponse(ticket.path, media_type=media_type, filename=ticket.path.name,
                        headers={"Cache-Control": "no-store"})


app = st.App(str(Path(__file__).with_name("app.py")),
             routes=[Route(DOWNLOAD_PATH, download_export, methods=["GET", "HEAD"])])
