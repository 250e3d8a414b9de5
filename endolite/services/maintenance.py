"""Maintenance for administrators: check / repair the data directory, back it up while the
dashboard runs (``endolite.maintenance``)."""

from __future__ import annotations

from pathlib import Path

from endolite.services.access import Action, Ctx


def check(ctx: Ctx, *, repair: bool = False):
    """(report, repairs done): disagreements between the database and data/, and with
    ``repair`` what was fixed (only what is safe: orphaned files, tmp leftovers, mask PNG
    mirrors, jobs left running)."""
    run = run_check(ctx, fix=repair)
    return run.final, list(run.repaired)


def run_check(ctx: Ctx, *, fix: bool = False, grace_s: float | None = None, hashes: bool = True):
    """``endolite.maintenance.run_check`` for administrators (a CheckRun); a repair that did
    something is audited.  ``grace_s``: default the dashboard's (``LIVE_GRACE_S``)."""
    # (``endolite.maintenance.check`` is the function the package re-exports, not the module)
    from endolite.maintenance.check import LIVE_GRACE_S
    from endolite.maintenance.repair import run_check as checked

    ctx.check(Action.CHECK)
    run = checked(ctx.con, ctx.settings, fix=fix, hashes=hashes,
                  grace_s=LIVE_GRACE_S if grace_s is None else grace_s)
    if run.repaired:
        ctx.record(Action.CHECK, entity="data_dir", problems=len(run.report.problems),
                   repaired=list(run.repaired))
    return run


def backup(ctx: Ctx, dest: str | Path):
    """A consistent copy of the database and the files in ``dest`` (empty or new folder)."""
    from endolite.maintenance.backup import backup as make_backup

    ctx.check(Action.BACKUP)
    result = make_backup(ctx.con, ctx.settings, Path(dest))
    ctx.record(Action.BACKUP, entity="data_dir", dest=str(dest))
    return result
