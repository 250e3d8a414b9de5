"""``repair``: fix what ``check`` (:mod:`endolite.maintenance.check`) found and is safe to fix
(orphaned files and tmp/ leftovers removed, mask PNGs written again from their rows, stale jobs
marked failed), and ``run_check``: the check, with ``fix`` the repair and a second check, the
one entry the CLI and the admin page call.  Never deletes a row or a file a row references."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from endolite.config import Settings
from endolite.maintenance.check import (LIVE_GRACE_S, CheckReport, ProblemKind, _decoded,
                                        _mask_relative, _mask_rows, _referenced, check)


def repair(con: duckdb.DuckDBPyConnection, settings: Settings, report: CheckReport) -> list[str]:
    """Fix the repairable problems of ``report``; returns what was done, one line each.

    Orphaned files and tmp/ leftovers are removed (an orphan is looked up again first: a file
    a row refers to by now is kept; folders left empty under frames/ and masks/ go too); mask
    PNGs are written again from their rows; stale jobs are marked failed.  Frame and video
    files that are missing or changed are left for a person (re-extract, restore a backup).
    A file that cannot be removed or written gets a "could not" line instead.
    """
    from endolite import masks as rle
    from endolite.jobs import recover_jobs
    from endolite.media import write_bytes_atomic

    done: list[str] = []
    cur = con.cursor()
    todo = report.repairable

    orphans = [p for p in todo if p.kind == ProblemKind.ORPHAN_FILE]
    if orphans:
        refs = _referenced(cur)
        keep_dirs = {settings.frames_dir, settings.masks_dir, settings.videos_dir, settings.cache_dir,
                     settings.models_dir}
        for p in orphans:
            if p.path_or_id in refs:
                continue
            file = settings.absolute(p.path_or_id)
            if not _remove(file, f"orphaned file {p.path_or_id}", p.detail, done):
                continue
            parent = file.parent
            while parent not in keep_dirs and settings.data_dir in parent.parents:
                try:
                    parent.rmdir()                       # only when empty
                except OSError:
                    break
                done.append(f"removed empty folder {parent.relative_to(settings.data_dir).as_posix()}")
                parent = parent.parent

    for p in todo:
        if p.kind != ProblemKind.TMP_LEFTOVER:
            continue
        entry = settings.absolute(p.path_or_id)
        if entry.parent != settings.tmp_dir:             # only ever inside tmp/
            continue
        _remove(entry, p.path_or_id, p.detail, done)

    mask_ids = [p.record_id for p in todo
                if p.kind in (ProblemKind.MASK_PNG_MISSING, ProblemKind.MASK_PNG_DIFFERS)]
    for m in _mask_rows(cur, mask_ids) if mask_ids else []:
        rel = _mask_relative(m.frame_id, m.id)
        try:
            write_bytes_atomic(settings.absolute(rel), rle.to_png(_decoded(m)))
        except OSError as exc:
            done.append(f"could not write {rel}: {exc.strerror or exc}")
            continue
        done.append(f"wrote {rel} from mask {m.id} in the database")

    if any(p.kind == ProblemKind.STALE_JOB for p in todo):
        for job in recover_jobs(cur):
            done.append(f"marked job {job.id} ({job.kind}) failed: {job.message}")
    return done


@dataclass(frozen=True)
class CheckRun:
    """``check``, and with ``fix`` also ``repair`` and a second ``check``."""

    report: CheckReport                    # before any repair
    repaired: tuple[str, ...] = ()         # what repair did, one line each
    after: CheckReport | None = None       # the check after repairing (None without fix)

    @property
    def final(self) -> CheckReport:
        return self.after if self.after is not None else self.report


def run_check(con: duckdb.DuckDBPyConnection, settings: Settings, *, fix: bool = False,
              grace_s: float = LIVE_GRACE_S, hashes: bool = True) -> CheckRun:
    """Check; with ``fix`` repair what is safe and check again.  The one entry the CLI and the
    admin page call (``final.ok``: nothing is left to fix)."""
    report = check(con, settings, grace_s=grace_s, hashes=hashes)
    if not fix or not report.repairable:
        return CheckRun(report=report, after=report if fix else None)
    done = repair(con, settings, report)
    return CheckRun(report=report, repaired=tuple(done),
                    after=check(con, settings, grace_s=grace_s, hashes=hashes))


def _remove(entry: Path, what: str, why: str, done: list[str]) -> bool:
    """Remove a file, link or folder tree; say so (or why not) in ``done``.  True if removed."""
    try:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        done.append(f"could not remove {what}: {exc.strerror or exc}")
        return False
    done.append(f"removed {what} ({why})")
    return True


__all__ = ["CheckRun", "repair", "run_check"]
