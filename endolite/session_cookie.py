"""The session cookie's routes (mounted by ``web.py``) and the one-time codes the page hands them.

Streamlit lets a script read the request's cookies (``st.context.cookies``) but not set one, so
after a login the page asks this process for a one-time code (``issue_code``: 256 random bits,
single use, ``CODE_TTL_S`` seconds, kept in this process's memory only) and the browser trades it
at ``POST /session/start`` for the cookie ``auth.SESSION_COOKIE``: the session token, HttpOnly,
SameSite=Strict, Path=/, Secure when the request came over https (or a proxy's
X-Forwarded-Proto says https), for ``auth.SESSION_LIFETIME``.  ``POST /session/end`` clears it
(the page has revoked the session in the database before: that is what makes a copied cookie
useless).  Both refuse (403) a request the browser marks as not same-origin
(``Sec-Fetch-Site``), so another site cannot plant its own session in a user's browser.
No Streamlit and no database here.
"""

from __future__ import annotations

import secrets
import threading
import time

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from endolite import auth

START_PATH = "/session/start"
END_PATH = "/session/end"
CODE_TTL_S = 60.0

_lock = threading.Lock()
_codes: dict[str, tuple[str, float]] = {}      # code -> (session token, monotonic expiry)


def issue_code(token: str, *, ttl_s: float = CODE_TTL_S) -> str:
    """A one-time code that ``POST /session/start`` trades for a cookie holding ``token``."""
    code = secrets.token_urlsafe(32)
    now = time.monotonic()
    with _lock:
        for key in [k for k, (_t, expires) in _codes.items() if expires <= now]:
            del _codes[key]
        _codes[code] = (token, now + ttl_s)
    return code


def redeem(code: str) -> str | None:
    """The token of a live ``code`` (which is used up now), else None."""
    with _lock:
        entry = _codes.pop(code, None)
    if entry is None or entry[1] <= time.monotonic():
        return None
    return entry[0]


def _secure(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def _cookie_args(request: Request) -> dict:
    return {"key": auth.SESSION_COOKIE, "path": "/", "httponly": True, "samesite": "strict",
            "secure": _secure(request)}


def _cross_site(request: Request) -> Response | None:
    """403 for a request the browser says came from another site or origin (None: go on)."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return PlainTextResponse("session requests come from the dashboard's own pages only",
                                 status_code=403, headers={"Cache-Control": "no-store"})
    return None


async def start(request: Request) -> Response:
    if (refused := _cross_site(request)) is not None:
        return refused
    token = redeem(request.query_params.get("code", ""))
    if token is None:
        return PlainTextResponse("unknown or expired session code: log in again",
                                 status_code=404, headers={"Cache-Control": "no-store"})
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    response.set_cookie(value=token, max_age=int(auth.SESSION_LIFETIME.total_seconds()),
                        **_cookie_args(request))
    return response


async def end(request: Request) -> Response:
    if (refused := _cross_site(request)) is not None:
        return refused
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    response.delete_cookie(**_cookie_args(request))
    return response


def routes() -> list[Route]:
    return [Route(START_PATH, start, methods=["POST"]), Route(END_PATH, end, methods=["POST"])]


def start_script(code: str) -> str:
    """The HTML the page renders (``st.html(..., unsafe_allow_javascript=True)``) so the browser
    trades ``code`` for the cookie in the background."""
    return (f"<script>fetch({START_PATH!r} + '?code=' + encodeURIComponent({code!r}), "
            "{method: 'POST', credentials: 'same-origin', cache: 'no-store'});</script>")


def end_script() -> str:
    """The HTML that asks the browser to drop the session cookie."""
    return (f"<script>fetch({END_PATH!r}, {{method: 'POST', credentials: 'same-origin', "
            "cache: 'no-store'});</script>")
