"""Each user's own small display preferences (the Annotate page's last label, canvas size):
kept in ``app_settings`` under ``pref:<username>:<name>``, so they survive a logout and a new
login.  A user reads and writes only their own; nothing shared changes, so no role check beyond
being signed in and no audit entry (the row records who wrote it and when)."""

from __future__ import annotations

from typing import Any

from endolite.errors import InvalidInput
from endolite.services.access import Ctx
from endolite.storage import app_settings

NAMES = frozenset({"annotate.label", "annotate.canvas"})


def _key(username: str, name: str) -> str:
    if name not in NAMES:
        raise InvalidInput(f"unknown preference {name!r} (one of {', '.join(sorted(NAMES))})")
    return f"pref:{username}:{name}"


def get(ctx: Ctx, name: str, default: Any = None) -> Any:
    """The acting user's preference ``name`` (``default`` when never set)."""
    return app_settings.get(ctx.con, _key(ctx.actor.name, name), default)


def put(ctx: Ctx, name: str, value: Any) -> None:
    """Remember the acting user's preference ``name`` (a JSON value); unchanged values are not
    rewritten."""
    key = _key(ctx.actor.name, name)
    if app_settings.get(ctx.con, key) != value:
        app_settings.put(ctx.con, key, value, by=ctx.actor.name)
