"""Ingest bookkeeping shared by every kind of input: inputs, progress, staged writes that a
failure takes back, the transaction, and the rejected-result helpers."""

from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb

from endolite import media
from endolite.config import Settings
from endolite.errors import EndoliteError, InvalidInput, StorageError, describe_os_error
from endolite.ingest.roots import ImportRoots
from endolite.ingest.upload import safe_name
from endolite.records import IngestResult, IngestStatus, ItemKind

Progress = Callable[[float, str], None]
MAX_FRAME_PIXELS = 8192 * 8192      # stills and video frames; endoscopy is at most 4K


def check_frame_size(label: str, width: int, height: int) -> None:
    """InvalidInput naming ``label`` when a declared frame is larger than MAX_FRAME_PIXELS."""
    if width * height > MAX_FRAME_PIXELS:
        raise InvalidInput(f"{label}: {width}x{height} pixels, over the limit of "
                           f"{MAX_FRAME_PIXELS:,} pixels (8192x8192)")


@dataclass
class Input:
    path: Path
    given: str          # the path as given (IngestResult.path)
    name: str           # the name a person knows the file by
    refusal: str | None = None   # why it may not be read at all (outside the import roots)
    roots: ImportRoots | None = None   # what the files it names must lie in (None: anywhere)

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix.lower() or self.path.suffix.lower()

    @property
    def kind(self) -> str:
        if self.refusal is not None:
            return "refused"
        if not self.path.exists():
            return "missing"
        if self.path.is_dir():
            return "folder"
        if self.suffix in media.IMAGE_EXTENSIONS:
            return "image"
        if self.suffix == ".zip":
            return "zip"
        if self.suffix == ".json":
            return "json"
        return "other"


def display_name(path: str | Path, names: Mapping[str, str]) -> str:
    """The name a person gave ``path`` (a browser's, so made safe), else its own file name."""
    given = names.get(str(path))
    return safe_name(given) if given else Path(path).name


class Meter:
    """Maps each item's own 0..1 progress onto the whole batch."""

    def __init__(self, callback: Progress | None, total: int) -> None:
        self.callback, self.total, self.done = callback, total, 0

    def emit(self, fraction: float, message: str) -> None:
        if self.callback is not None:
            self.callback(min(max(fraction, 0.0), 1.0), message)

    def sub(self, units: int) -> Progress:
        start = self.done

        def report(fraction: float, message: str) -> None:
            self.emit((start + min(max(fraction, 0.0), 1.0) * units) / self.total, message)
        return report

    def advance(self, units: int) -> None:
        self.done += units


class Writes:
    """Every file written for one item, so a failure can take them all back.

    As a context manager: any exception undoes the writes (and propagates); the staging
    folder is always removed on the way out.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.files: list[Path] = []
        self.dirs: list[Path] = []
        self._stage: Path | None = None

    def __enter__(self) -> Writes:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.undo()
        self.close()

    def stage(self) -> Path:
        """A private staging folder under data/tmp (always removed by ``close``)."""
        if self._stage is None:
            self._stage = self.settings.tmp_dir / f"ingest-{uuid.uuid4().hex}"
            self._stage.mkdir(parents=True)
        return self._stage

    def new_dir(self, folder: Path) -> None:
        if not folder.exists():
            folder.mkdir(parents=True)
            self.dirs.append(folder)

    def file(self, path: Path) -> Path:
        self.files.append(path)
        return path

    def undo(self) -> None:
        """Delete what was written, best effort (a failing delete must not hide the failure
        that called for it)."""
        for path in reversed(self.files):
            with suppress(OSError):
                path.unlink(missing_ok=True)
        for folder in reversed(self.dirs):
            shutil.rmtree(folder, ignore_errors=True)
        self.files, self.dirs = [], []

    def close(self) -> None:
        if self._stage is not None:
            shutil.rmtree(self._stage, ignore_errors=True)
            self._stage = None


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # a failed COMMIT has already rolled back
        raise


@dataclass(frozen=True)
class Copy:
    """Where an image's bytes are already stored: a frame of an image group or of a video."""

    frame_id: int
    group_id: int | None
    video_id: int | None

    def describe(self) -> str:
        if self.group_id is not None:
            return f"duplicate of frame {self.frame_id} in group {self.group_id}"
        return f"duplicate of frame {self.frame_id} of video {self.video_id}"


def library_copies(con: duckdb.DuckDBPyConnection, hashes: list[str]) -> dict[str, Copy]:
    """The first stored frame (lowest id) holding each of ``hashes`` (sha256 hex), by hash."""
    wanted = sorted({h for h in hashes if h})
    if not wanted:
        return {}
    rows = con.execute("SELECT sha256, id, group_id, video_id FROM frames "
                       "WHERE list_contains(?, sha256) ORDER BY id", [wanted]).fetchall()
    found: dict[str, Copy] = {}
    for sha, frame_id, group_id, video_id in rows:
        found.setdefault(sha, Copy(frame_id, group_id, video_id))
    return found


_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


def _storage_error(exc: BaseException, data_dir: Path | None) -> StorageError | None:
    """The StorageError for a failed write: an OSError that only writing raises (disk full,
    file size limit, read-only file system), or permission denied inside the data directory,
    or the same causes inside a DuckDB error (a failed WAL write or commit).  None for anything else (e.g. a read)."""
    if isinstance(exc, duckdb.Error):
        for number in _WRITE_ERRNOS:
            if os.strerror(number) in str(exc):
                return describe_os_error(OSError(number, os.strerror(number)),
                                         doing="writing the database")
        return None
    if not isinstance(exc, OSError):
        return None
    inside = None
    if exc.filename and data_dir is not None:
        where = Path(os.path.abspath(os.fsdecode(exc.filename)))
        inside = where.relative_to(data_dir).as_posix() if where.is_relative_to(data_dir) else None
    if exc.errno in _WRITE_ERRNOS or (exc.errno in (errno.EACCES, errno.EPERM) and inside):
        shown = OSError(exc.errno, exc.strerror, inside) if inside else OSError(exc.errno, exc.strerror)
        return describe_os_error(shown)
    return None


_ERRNO = re.compile(r"\[Errno -?\d+\]\s*")
_STAGED = re.compile(r"""(?::\s*)?(['"])[^'"]*upload-[0-9a-f]{8,}[/\\][^'"]*\1""")


def plain_reason(text: str, data_dir: Path | None = None) -> str:
    """``text`` without what only the server knows: ``[Errno N]`` prefixes (PyAV's FFmpeg
    codes mean nothing to a person) and quoted paths of staged uploads or inside ``data_dir``
    (e.g. PyAV's ``Invalid data found when processing input: '/srv/data/tmp/upload-1f.../0/a.mp4'``).
    Other quoted text (a zip member's own name) stays."""
    text = _STAGED.sub("", _ERRNO.sub("", text))
    if data_dir is not None:
        for root in {str(data_dir), str(Path(data_dir).resolve())}:
            text = re.sub(r"""(?::\s*)?(['"])""" + re.escape(root) + r"""[/\\][^'"]*\1""", "", text)
    return text.strip()


def reason_for(label: str, exc: BaseException, *, data_dir: Path | None = None) -> str:
    """What went wrong with ``label``, for a rejected result.  A failed write inside
    ``data_dir`` names its cause (``describe_os_error``) and a path relative to ``data_dir``;
    staged uploads and temporary files are named relative to ``data_dir/tmp``; decoder
    messages lose their errno and the absolute path they quote (:func:`plain_reason`)."""
    exc = _storage_error(exc, data_dir) or exc
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, StorageError):
        text = plain_reason(text, data_dir)
    if data_dir is not None:                  # staged files: the server's layout stays hidden
        text = text.replace(f"{data_dir / 'tmp'}{os.sep}", "")
    if isinstance(exc, EndoliteError):
        return text if label in text else f"{label}: {text}"
    if isinstance(exc, OSError) and exc.strerror:
        name = f" {os.fsdecode(exc.filename)}" if exc.filename else ""
        return f"{label}: cannot read{name} ({exc.strerror.lower()})"
    return f"{label}: {type(exc).__name__}: {text}"


def renamed(exc: InvalidInput, old: str, new: str) -> InvalidInput:
    """``exc`` with a leading temporary file name replaced by the name a person knows."""
    text = str(exc)
    if old != new and text.startswith(old + ":"):
        text = new + text[len(old):]
    return InvalidInput(text)


def rejected(path: str, kind: ItemKind, reason: str) -> IngestResult:
    return IngestResult(path=path, kind=kind, status=IngestStatus.REJECTED, reason=reason)


def guarded(settings: Settings, *, path: str, kind: ItemKind, label: str,
            work: Callable[[Writes], list[IngestResult]]) -> list[IngestResult]:
    """Run one item's ``work``; on failure delete its files and return a rejection."""
    try:
        with Writes(settings) as writes:
            return work(writes)
    except Exception as exc:  # noqa: BLE001 - any failure rejects this item only
        return [rejected(path, kind, reason_for(label, exc, data_dir=settings.data_dir))]
