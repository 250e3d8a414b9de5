"""What every ``endolite`` sub-command shares: output, opening the data directory, who acts.

Who acts: ``--user NAME`` (or ``$ENDOLITE_USER``) acts as that user of the data directory, with
that user's role; a refused action exits non-zero naming the user, the role and the action.
Without either, the command acts as the server's shell user with administrator rights (shell
access already reads the database file), recorded in the audit log as ``shell:<login>``.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from collections.abc import Sequence
from typing import Any

from endolite.config import Settings


class Output:
    """Prints either JSON (``--json``) or plain lines."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def emit(self, data: Any, lines: Sequence[str]) -> None:
        if self.as_json:
            print(json.dumps(data, indent=2, default=str))
        else:
            for line in lines:
                print(line)


def _open(args):
    from endolite.storage import connect

    settings = Settings.resolve(args.data)
    return settings, connect(settings)


def user_name(args) -> str | None:
    """The ``--user`` / $ENDOLITE_USER name, or None for the server's shell user."""
    return args.user or os.environ.get("ENDOLITE_USER") or None


def context(args):
    """Open the data directory and resolve the acting user: a ``services.Ctx``."""
    from endolite.services import Actor, Ctx
    from endolite.services.users import actor_named

    settings, con = _open(args)
    name = user_name(args)
    actor = actor_named(con, name) if name else Actor.server_shell()
    return Ctx(con=con, settings=settings, actor=actor, client="cli")


def _acting_user(args) -> str:
    """The acting user's name (for commands that only read)."""
    from endolite.services import Actor

    return user_name(args) or Actor.server_shell().name


def as_job(ctx, kind: str, params: dict[str, Any], work) -> Any:
    """Run ``work(ctx, progress)`` as a recorded job of this process (so a killed command leaves
    a job row that the next start marks failed); returns what ``work`` returned and raises the
    error it raised."""
    from endolite import jobs

    box: dict[str, Any] = {}

    def run(cur, progress):
        try:
            box["value"] = work(replace(ctx, con=cur), progress)
        except BaseException as exc:
            box["error"] = exc
            raise
        return {"ok": True}

    jobs.start(ctx.con, kind, run, params=params, created_by=ctx.actor.name, background=False)
    if "error" in box:
        raise box["error"]
    return box["value"]
