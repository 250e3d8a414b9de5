"""Does the database agree with the files of the data directory?  ``check`` lists where not;
``repair`` (:mod:`endolite.maintenance.repair`) fixes what is safe to fix.

The database is the source of truth.  Files are written under a temporary name and moved into
place before their rows commit, so a process killed between the two leaves a file no row
references (an orphan), or a ``.tmp-*`` file beside its target; neither is ever valid.

Problems (``ProblemKind``) and what ``repair`` does about them:

==========================  =====================================================  =================
kind                        meaning                                                repair
==========================  =====================================================  =================
frame_missing               a frame row's file (path or original) is missing       no: re-extract /
frame_changed               its sha256 differs from the row's                      restore a backup
video_missing               a video row's file is missing                          no
video_changed               its size differs from the row's                        no
mask_png_missing            a mask row's PNG mirror is missing                     rewritten from
mask_png_differs            the PNG's pixels differ from the row's RLE             the row
orphan_file                 a file under frames/, masks/, videos/ no row uses      removed
tmp_leftover                an entry of tmp/ (staging folder, partial file)        removed
stale_job                   a job left queued / running by a stopped process       marked failed
orphan_segment              a segment row whose video / label is NULL or gone      no: report only
orphan_segment_frame_label  a frame-label row made from a segment whose frame is   no: report only
                            NULL, or whose frame / video / segment is gone
==========================  =====================================================  =================

The PNG of a soft-deleted mask is kept (an undo restores the row).  Repair never deletes a row
or a file a row references; orphan segment rows are therefore only reported (why, and what a
person can do: ``endolite.maintenance.orphan_rows``).

In a process that may be writing while it checks (the dashboard), pass ``grace_s``: files and
tmp/ entries changed less than ``grace_s`` seconds ago are not judged (``CheckReport.recent``
counts them), because a write in flight puts its files in place before its rows commit.  The
CLI passes 0: it holds the database alone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import duckdb

from endolite.config import Settings

LIVE_GRACE_S = 3600.0      # what the dashboard should pass: no write in flight is older


class ProblemKind(StrEnum):
    FRAME_MISSING = "frame_missing"
    FRAME_CHANGED = "frame_changed"
    VIDEO_MISSING = "video_missing"
    VIDEO_CHANGED = "video_changed"
    MASK_PNG_MISSING = "mask_png_missing"
    MASK_PNG_DIFFERS = "mask_png_differs"
    ORPHAN_FILE = "orphan_file"
    TMP_LEFTOVER = "tmp_leftover"
    STALE_JOB = "stale_job"
    ORPHAN_SEGMENT = "orphan_segment"
    ORPHAN_SEGMENT_FRAME_LABEL = "orphan_segment_frame_label"


# problems named by a row id (``<table> <id>``), ordered by that id rather than as text
_ROW_KINDS = frozenset({ProblemKind.STALE_JOB, ProblemKind.ORPHAN_SEGMENT,
                        ProblemKind.ORPHAN_SEGMENT_FRAME_LABEL})
REPAIRABLE = frozenset({ProblemKind.MASK_PNG_MISSING, ProblemKind.MASK_PNG_DIFFERS,
                        ProblemKind.ORPHAN_FILE, ProblemKind.TMP_LEFTOVER, ProblemKind.STALE_JOB})


@dataclass(frozen=True)
class Problem:
    """One disagreement.  ``path_or_id``: a path relative to the data dir, or ``job <id>``;
    ``record_id``: the frame / video / mask / job / segment / frame-label id where a row is
    involved (``path_or_id`` is then e.g. ``segment <id>``, ``frame_label <id>``)."""

    kind: ProblemKind
    path_or_id: str
    detail: str
    record_id: int | None = None

    @property
    def repairable(self) -> bool:
        return self.kind in REPAIRABLE


@dataclass(frozen=True)
class CheckReport:
    """``problems`` in a stable order (by kind, then path or row id); ``checked`` counts what was
    looked at (frames, videos, masks, files, jobs, segments, segment_frame_labels); ``recent``
    the files / tmp entries younger than the grace period that were not judged."""

    problems: tuple[Problem, ...]
    checked: dict[str, int] = field(default_factory=dict)
    recent: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def repairable(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.repairable)

    @property
    def counts(self) -> dict[str, int]:
        """How many problems of each kind (kinds with none left out), in ``ProblemKind`` order."""
        return {str(k): n for k in ProblemKind if (n := len(self.of_kind(k)))}

    def of_kind(self, kind: ProblemKind | str) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.kind == kind)


# --- what the database references -------------------------------------------------------------

@dataclass(frozen=True)
class _MaskRow:
    id: int
    frame_id: int
    height: int
    width: int
    rle: str
    deleted: bool


def _referenced(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Every file path (relative to the data dir) a row of frames / videos / masks uses."""
    refs: set[str] = set()
    for path, original in con.execute("SELECT path, original_path FROM frames").fetchall():
        refs.add(path)
        if original:
            refs.add(original)
    refs.update(r[0] for r in con.execute("SELECT path FROM videos").fetchall())
    for mask_id, frame_id in con.execute("SELECT id, frame_id FROM masks").fetchall():
        refs.add(_mask_relative(frame_id, mask_id))
    return refs


def _mask_relative(frame_id: int, mask_id: int) -> str:
    """``annotate.mask_png_path`` relative to the data dir (kept in step with it by a test)."""
    return f"masks/frame_{frame_id}/mask_{mask_id}.png"


def _walk(folder: Path) -> Iterator[Path]:
    """Every non-directory entry below ``folder`` (symbolic links are entries, never followed)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path))
        else:
            yield Path(entry.path)


def _changed_at(path: Path) -> float:
    """Latest mtime / ctime of ``path`` and (for a folder) everything below it."""
    st = path.lstat()
    newest = max(st.st_mtime, st.st_ctime)
    if path.is_dir() and not path.is_symlink():
        for sub in _walk(path):
            try:
                st = sub.lstat()
            except FileNotFoundError:
                continue
            newest = max(newest, st.st_mtime, st.st_ctime)
    return newest


# --- check ------------------------------------------------------------------------------------

def check(con: duckdb.DuckDBPyConnection, settings: Settings, *, grace_s: float = LIVE_GRACE_S,
          hashes: bool = True) -> CheckReport:
    """Compare the database with the files of ``settings.data_dir``.

    ``hashes``: also compare each frame file's sha256 with its row and each mask PNG's pixels
    with its row's RLE (False: existence only).  ``grace_s``: see the module docstring (0 when
    nothing else in this process writes).  Reads only; never changes a row or a file.
    """
    from endolite.maintenance.orphan_rows import orphan_row_problems
    from endolite.media import sha256_file
    from endolite.storage import jobs as job_store
    from endolite.storage.orphans import segment_row_counts

    now = time.time()
    cur = con.cursor()
    problems: list[Problem] = []
    recent = 0

    frame_rows = cur.execute("SELECT id, path, original_path, sha256 FROM frames ORDER BY id").fetchall()
    for frame_id, path, original, sha in frame_rows:
        hashed = original or path                 # a still image's sha256 is its original's
        for rel in dict.fromkeys(p for p in (path, original) if p):
            file = settings.absolute(rel)
            if not file.is_file():
                problems.append(Problem(ProblemKind.FRAME_MISSING, rel,
                                        f"frame {frame_id}: the file is missing (extract the frames "
                                        "again or restore a backup)", frame_id))
            elif hashes and rel == hashed and sha256_file(file) != sha:
                problems.append(Problem(ProblemKind.FRAME_CHANGED, rel,
                                        f"frame {frame_id}: the file's sha256 differs from the "
                                        "database's (changed on disk)", frame_id))

    video_rows = cur.execute("SELECT id, path, size_bytes FROM videos ORDER BY id").fetchall()
    for video_id, rel, size in video_rows:
        file = settings.absolute(rel)
        if not file.is_file():
            problems.append(Problem(ProblemKind.VIDEO_MISSING, rel,
                                    f"video {video_id}: the file is missing (restore a backup)",
                                    video_id))
        elif file.stat().st_size != size:
            problems.append(Problem(ProblemKind.VIDEO_CHANGED, rel,
                                    f"video {video_id}: {file.stat().st_size} bytes on disk, "
                                    f"{size} in the database", video_id))

    mask_rows = _mask_rows(cur)
    for m in mask_rows:
        rel = _mask_relative(m.frame_id, m.id)
        file = settings.absolute(rel)
        if not file.is_file():
            problems.append(Problem(ProblemKind.MASK_PNG_MISSING, rel,
                                    f"mask {m.id}: the PNG mirror is missing", m.id))
        elif hashes and not _png_matches(file, m):
            problems.append(Problem(ProblemKind.MASK_PNG_DIFFERS, rel,
                                    f"mask {m.id}: the PNG mirror differs from the database's "
                                    "mask (the database wins)", m.id))

    refs = _referenced(cur)
    files = 0
    for top in (settings.frames_dir, settings.masks_dir, settings.videos_dir):
        for file in _walk(top):
            files += 1
            rel = file.relative_to(settings.data_dir).as_posix()
            if rel in refs:
                continue
            if grace_s > 0 and now - _changed_at(file) < grace_s:
                recent += 1
                continue
            why = ("a temporary file of an interrupted write" if file.name.startswith(".tmp-")
                   else "no database row refers to this file")
            problems.append(Problem(ProblemKind.ORPHAN_FILE, rel, why))
    for top in (settings.cache_dir, settings.models_dir):    # no rows here: only .tmp- files
        for file in _walk(top):
            if not file.name.startswith(".tmp-"):
                continue
            if grace_s > 0 and now - _changed_at(file) < grace_s:
                recent += 1
                continue
            problems.append(Problem(ProblemKind.ORPHAN_FILE, file.relative_to(settings.data_dir).as_posix(),
                                    "a temporary file of an interrupted write"))

    for entry in sorted(settings.tmp_dir.iterdir()) if settings.tmp_dir.is_dir() else []:
        if grace_s > 0 and now - _changed_at(entry) < grace_s:
            recent += 1
            continue
        what = "staging folder" if entry.is_dir() and not entry.is_symlink() else "file"
        problems.append(Problem(ProblemKind.TMP_LEFTOVER, entry.relative_to(settings.data_dir).as_posix(),
                                f"{what} left in tmp/ by an interrupted upload or write"))

    stale = job_store.stale(cur)
    for job in stale:
        problems.append(Problem(ProblemKind.STALE_JOB, f"job {job.id}",
                                f"{job.kind} job is still {job.status} but no running process owns it",
                                job.id))

    problems += orphan_row_problems(cur)

    order = list(ProblemKind)
    problems.sort(key=lambda p: (order.index(p.kind), p.record_id if p.kind in _ROW_KINDS else 0,
                                 p.path_or_id))
    segments, segment_labels = segment_row_counts(cur)
    checked = {"frames": len(frame_rows), "videos": len(video_rows), "masks": len(mask_rows),
               "files": files, "jobs": int(cur.execute("SELECT count(*) FROM jobs").fetchone()[0]),
               "segments": segments, "segment_frame_labels": segment_labels}
    return CheckReport(problems=tuple(problems), checked=checked, recent=recent)


def _mask_rows(cur: duckdb.DuckDBPyConnection, ids: list[int] | None = None) -> list[_MaskRow]:
    sql = "SELECT id, frame_id, height, width, rle, deleted_at IS NOT NULL FROM masks"
    params: list = []
    if ids is not None:
        sql += " WHERE list_contains(?, id)"
        params.append(ids)
    return [_MaskRow(*row) for row in cur.execute(sql + " ORDER BY id", params).fetchall()]


def _decoded(m: _MaskRow):
    from endolite import masks as rle

    return rle.decode({"size": [m.height, m.width], "counts": m.rle})


def _png_matches(file: Path, m: _MaskRow) -> bool:
    import numpy as np

    from endolite import masks as rle
    from endolite.errors import InvalidInput

    try:
        on_disk = rle.from_image_file(file)
    except (InvalidInput, OSError, ValueError):
        return False
    return on_disk.shape == (m.height, m.width) and bool(np.array_equal(on_disk, _decoded(m)))


__all__ = ["CheckReport", "LIVE_GRACE_S", "Problem", "ProblemKind", "REPAIRABLE", "check"]
