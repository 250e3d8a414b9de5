"""Maintenance for administrators: check / repair the data directory, back it up while the
dashboard runs (``endolite.maintenance``)."""

from __future__ import annotations

from pathlib import Path

from endolite.services.access import Action, Ctx


def check(ctx: Ctx, *, repair: bool = False):
    """(report, repairs done): disagreements between the database and data/, and with
    ``repair`` what was fixed (only what is safe: orphaned files, tmp leftovers, mask PNG
    mirrors, jobs left running)."""
    from endolite.maintenance import check as checker

    ctx.check(Action.CHECK)
    report = checker.check(ctx.con, ctx.settings)
    done: list[str] = []
    if repair and report.problems:
        done = checker.repair(ctx.con, ctx.settings, report)
        ctx.record(Action.CHECK, entity="data_dir", problems=len(report.problems), repaired=done)
        report = checker.check(ctx.con, ctx.settings)
    return report, done


def backup(ctx: Ctx, dest: str | Path):
    """A consistent copy of the database and the files in ``dest`` (empty or new folder)."""
    from endolite.maintenance.backup import backup as make_backup

    ctx.check(Action.BACKUP)
    result = make_backup(ctx.con, ctx.settings, Path(dest))
    ctx.record(Action.BACKUP, entity="data_dir", dest=str(dest))
    return result
