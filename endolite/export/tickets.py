"""Download tickets: short-lived secret links to one export file, for the dashboard's download
route (``web.py``), so a download streams from disk instead of through Streamlit's in-memory
media store (which held ~4x the file's size per download).

A ticket is a 256-bit random token that names one file below ``exports/`` and expires after
``TTL_S`` seconds; tickets live in this process's memory only (a restart invalidates them).
The Export page issues one per visible export of a signed-in lead (``services.exports.ticket``,
audited); the route resolves it.  Pure of Streamlit.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

TTL_S = 15 * 60


@dataclass(frozen=True)
class Ticket:
    """``path``: the export file (absolute); ``user``: who asked; ``expires``: monotonic seconds."""

    path: Path
    user: str
    expires: float


_lock = threading.Lock()
_tickets: dict[str, Ticket] = {}


def issue(path: Path, *, user: str, ttl_s: float = TTL_S) -> str:
    """A new token for ``path`` (expired tickets are dropped on the way)."""
    token = secrets.token_urlsafe(32)
    now = time.monotonic()
    with _lock:
        for key in [k for k, t in _tickets.items() if t.expires <= now]:
            del _tickets[key]
        _tickets[token] = Ticket(path=Path(path), user=user, expires=now + ttl_s)
    return token


def resolve(token: str) -> Ticket | None:
    """The live ticket of ``token`` whose file still exists, else None."""
    with _lock:
        ticket = _tickets.get(token)
    if ticket is None or ticket.expires <= time.monotonic() or not ticket.path.is_file():
        return None
    return ticket
