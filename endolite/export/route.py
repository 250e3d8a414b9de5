"""The dashboard's download route (mounted by ``web.py``): ``GET /download/export/{token}``
streams an export file from disk in chunks (Starlette's ``FileResponse``) for a live ticket
(``endolite.export.tickets``); unknown or expired tickets get 404.  No Streamlit here."""

from __future__ import annotations

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
    headers = {"Cache-Control": "no-store"}
    if ticket.path.suffix == ".zip":
        media_type = "application/zip"                # Starlette's gzip middleware skips zips
    else:                                             # .zip.age: encrypted, incompressible;
        media_type = "application/octet-stream"       # a set Content-Encoding keeps gzip off
        headers["Content-Encoding"] = "identity"
    return FileResponse(ticket.path, media_type=media_type, filename=ticket.path.name,
                        headers=headers)


def routes() -> list[Route]:
    return [Route(DOWNLOAD_PATH, download_export, methods=["GET", "HEAD"])]
