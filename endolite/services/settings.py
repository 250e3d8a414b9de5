"""Settings an administrator changes from the Users page: the session idle timeout and the
server folders that leads may import from (besides ``data/inbox``)."""

from __future__ import annotations

import os
from pathlib import Path

from endolite import auth
from endolite.errors import InvalidInput
from endolite.services.access import Action, Ctx
from endolite.storage import app_settings

IDLE_KEY = "session_idle_minutes"
ROOTS_KEY = "import_roots"
DOWNLOAD_KEY = "download_limit_mb"
DEFAULT_DOWNLOAD_MB = 4096.0


def idle_minutes(con) -> float:
    """Minutes of inactivity after which a browser session ends (0: never)."""
    return float(app_settings.get(con, IDLE_KEY, auth.DEFAULT_IDLE_MINUTES))


def inbox(settings) -> Path:
    path = settings.data_dir / "inbox"
    path.mkdir(parents=True, exist_ok=True)
    return path


def import_roots(ctx_or_con, settings) -> list[Path]:
    """Folders on the server below which leads may import (``data/inbox`` always, plus the
    folders an administrator listed), resolved (symlinks followed)."""
    con = getattr(ctx_or_con, "con", ctx_or_con)
    listed = [Path(p) for p in app_settings.get(con, ROOTS_KEY, [])]
    return [Path(os.path.realpath(p)) for p in [inbox(settings), *listed]]


def set_idle_minutes(ctx: Ctx, minutes: float) -> None:
    ctx.check(Action.SETTINGS)
    if not 0 <= float(minutes) <= 7 * 24 * 60:
        raise InvalidInput("session idle timeout: between 0 (never) and 10080 minutes")
    app_settings.put(ctx.con, IDLE_KEY, float(minutes), by=ctx.actor.name)
    ctx.record(Action.SETTINGS, entity="settings", key=IDLE_KEY, value=float(minutes))


def download_limit_mb(con) -> float:
    """Exports up to this size (MiB) get a download link on the Export page (streamed from disk);
    larger ones are named by their server path and the CLI command (copying them off the server
    with the shell tools a lab already has)."""
    return float(app_settings.get(con, DOWNLOAD_KEY, DEFAULT_DOWNLOAD_MB))


def set_download_limit_mb(ctx: Ctx, megabytes: float) -> None:
    ctx.check(Action.SETTINGS)
    if not 1 <= float(megabytes) <= 64 * 1024:
        raise InvalidInput("download limit: between 1 and 65536 MiB")
    app_settings.put(ctx.con, DOWNLOAD_KEY, float(megabytes), by=ctx.actor.name)
    ctx.record(Action.SETTINGS, entity="settings", key=DOWNLOAD_KEY, value=float(megabytes))


def set_import_roots(ctx: Ctx, folders: list[str]) -> list[Path]:
    """Replace the listed import folders: each must be an existing absolute directory."""
    ctx.check(Action.SETTINGS)
    clean = []
    for raw in folders:
        text = str(raw).strip()
        if not text:
            continue
        path = Path(text)
        if not path.is_absolute() or not path.is_dir():
            raise InvalidInput(f"import folder {text}: must be an existing absolute directory")
        if Path(os.path.realpath(path)) == Path("/"):
            raise InvalidInput("import folder /: the whole file system cannot be an import folder")
        clean.append(str(Path(os.path.realpath(path))))
    app_settings.put(ctx.con, ROOTS_KEY, clean, by=ctx.actor.name)
    ctx.record(Action.SETTINGS, entity="settings", key=ROOTS_KEY, value=clean)
    return [Path(p) for p in clean]
