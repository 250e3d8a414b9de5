"""Ingest: videos, still images, zips of frames and JSON manifests -> stored items.

``ingest_paths`` takes any mix of paths and returns one ``IngestResult`` per input (per entry for
a manifest), in input order:

- videos (anything PyAV decodes) are stored once by content hash at ``videos/<sha256>.<ext>``;
- loose still images (jpg, png, bmp, tif) of one call form ONE image group, in the order given;
  a folder of images is one group in natural file-name order (``2.tif`` before ``10.tif``);
- a zip of frames in the Lightning Pose layout (``img%08d.png`` + optional ``selected_frames.csv``)
  is one group whose unlisted frames are context frames of the nearest listed frame;
- a JSON manifest shaped like Encord's registration JSON (``videos``, ``images``,
  ``image_groups``) registers the local files it names.

Still images are kept byte-for-byte at ``frames/group_<gid>/<original name>``; formats a browser
cannot show (bmp, tif) also get ``frames/group_<gid>/frame_<fid>.png``, which ``frame.path``
points to.  Every item is all-or-nothing: files are written through temporary names, rows go in
one transaction, and on any failure the rows are rolled back and every file written for that
item is deleted; the rest of the batch carries on.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import duckdb

from endolite import media
from endolite.config import Settings
from endolite.errors import InvalidInput
from endolite.records import IngestResult, IngestStatus, ItemKind, Video
from endolite.storage import audit
from endolite.storage import media as store

Progress = Callable[[float, str], None]

VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
    ".wmv", ".flv", ".3gp", ".ogv", ".vob", ".mxf", ".h264", ".264", ".hevc", ".mjpeg", ".mjpg",
})
MANIFEST_KEYS = ("videos", "images", "image_groups")
SELECTED_FRAMES = "selected_frames.csv"
# demuxers that "decode" things that are not videos (text as ANSI art, single images)
_NOT_VIDEO_CONTAINERS = {"tty", "image2", "image2pipe"}
_CONTAINER_EXT = {"matroska": "mkv", "mov": "mp4", "avi": "avi", "mpegts": "ts", "mpeg": "mpg",
                  "asf": "wmv", "flv": "flv", "ogg": "ogv", "mxf": "mxf"}
_MAX_CSV_BYTES = 16 << 20


@dataclass(frozen=True)
class ZipLimits:
    """Zip-bomb guards, applied to the sizes a zip declares and again while unpacking.

    A zip is rejected when it unpacks to more than ``max_total_bytes``, or to more than
    ``ratio_floor_bytes`` at more than ``max_ratio`` times its packed size.
    """

    max_total_bytes: int = 4 << 30
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 100 << 20


DEFAULT_ZIP_LIMITS = ZipLimits()


def ingest_paths(con: duckdb.DuckDBPyConnection, settings: Settings, paths: Sequence[str | Path], *,
                 user: str | None, progress: Progress | None = None,
                 display_names: Mapping[str, str] | None = None,
                 zip_limits: ZipLimits = DEFAULT_ZIP_LIMITS) -> list[IngestResult]:
    """Import ``paths`` (files or folders); one result per input, per entry for a manifest.

    ``display_names`` maps ``str(path)`` to the name a person uploaded the file under (titles,
    original names, type detection and messages use it).  ``user`` is recorded as created_by
    and in the audit log.  Bad inputs come back as rejected results with a reason naming the
    file; they never stop the rest of the batch.
    """
    names = {str(k): v for k, v in (display_names or {}).items()}
    settings.ensure_dirs()
    inputs = [_Input(Path(p), str(p), _display_name(p, names)) for p in paths]
    meter = _Meter(progress, max(len(inputs), 1))
    slots: list[list[IngestResult]] = [[] for _ in inputs]
    loose = [i for i, item in enumerate(inputs) if item.kind == "image"]
    for index, item in enumerate(inputs):
        if item.kind == "image":
            if index == loose[0]:
                sub = meter.sub(len(loose))
                sub(0.0, f"{len(loose)} image(s)")
                batch = [_Member(source=inputs[j].path, name=_safe_name(inputs[j].name),
                                 label=inputs[j].name, result_path=inputs[j].given) for j in loose]
                results = _ingest_image_batch(con, settings, batch, user=user, source="images",
                                              title=_loose_title, progress=sub)
                for j, result in zip(loose, results):
                    slots[j] = [result]
                meter.advance(len(loose))
            continue
        sub = meter.sub(1)
        sub(0.0, item.name)
        slots[index] = _ingest_one(con, settings, item, user=user, progress=sub, limits=zip_limits)
        meter.advance(1)
    out = [result for slot in slots for result in slot]
    counts = {s: sum(r.status == s for r in out) for s in IngestStatus}
    meter.emit(1.0, f"{counts[IngestStatus.IMPORTED]} imported, {counts[IngestStatus.DUPLICATE]} "
                    f"duplicate, {counts[IngestStatus.REJECTED]} rejected")
    return out


# --- inputs and bookkeeping -------------------------------------------------------------------

@dataclass
class _Input:
    path: Path
    given: str          # the path as given (IngestResult.path)
    name: str           # the name a person knows the file by

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix.lower() or self.path.suffix.lower()

    @property
    def kind(self) -> str:
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


def _display_name(path: str | Path, names: Mapping[str, str]) -> str:
    given = names.get(str(path))
    return given.replace("\\", "/").rsplit("/", 1)[-1] if given else Path(path).name


class _Meter:
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


class _Writes:
    """Every file written for one item, so a failure can take them all back."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.files: list[Path] = []
        self.dirs: list[Path] = []
        self._stage: Path | None = None

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
        for path in reversed(self.files):
            path.unlink(missing_ok=True)
        for folder in reversed(self.dirs):
            shutil.rmtree(folder, ignore_errors=True)
        self.files, self.dirs = [], []

    def close(self) -> None:
        if self._stage is not None:
            shutil.rmtree(self._stage, ignore_errors=True)
            self._stage = None


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
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


def _reason(label: str, exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, InvalidInput):
        return text if label in text else f"{label}: {text}"
    return f"{label}: {type(exc).__name__}: {text}"


def _renamed(exc: InvalidInput, old: str, new: str) -> InvalidInput:
    """``exc`` with a leading temporary file name replaced by the name a person knows."""
    text = str(exc)
    if old != new and text.startswith(old + ":"):
        text = new + text[len(old):]
    return InvalidInput(text)


def _rejected(path: str, kind: ItemKind, reason: str) -> IngestResult:
    return IngestResult(path=path, kind=kind, status=IngestStatus.REJECTED, reason=reason)


def _guarded(settings: Settings, *, path: str, kind: ItemKind, label: str,
             work: Callable[[_Writes], list[IngestResult]]) -> list[IngestResult]:
    """Run one item's ``work``; on failure delete its files and return a rejection."""
    writes = _Writes(settings)
    try:
        return work(writes)
    except Exception as exc:  # noqa: BLE001 - any failure rejects this item only
        writes.undo()
        return [_rejected(path, kind, _reason(label, exc))]
    except BaseException:
        writes.undo()
        raise
    finally:
        writes.close()


def _ingest_one(con: duckdb.DuckDBPyConnection, settings: Settings, item: _Input, *,
                user: str | None, progress: Progress, limits: ZipLimits) -> list[IngestResult]:
    kind = item.kind
    if kind == "missing":
        return [_rejected(item.given, ItemKind.UNKNOWN, f"{item.name}: no such file")]
    if kind == "folder":
        return _guarded(settings, path=item.given, kind=ItemKind.IMAGE_GROUP, label=item.name,
                        work=lambda w: [_ingest_folder(con, settings, item, user=user, writes=w,
                                                       progress=progress)])
    if item.path.stat().st_size == 0:
        return [_rejected(item.given, ItemKind.UNKNOWN, f"{item.name}: empty file")]
    if kind == "json":
        return _ingest_manifest(con, settings, item, user=user, progress=progress)
    if kind == "zip" or (kind == "other" and zipfile.is_zipfile(item.path)):
        return _guarded(settings, path=item.given, kind=ItemKind.IMAGE_GROUP, label=item.name,
                        work=lambda w: [_ingest_zip(con, settings, item, user=user, writes=w,
                                                    limits=limits, progress=progress)])
    guessed = ItemKind.VIDEO if item.suffix in VIDEO_EXTENSIONS else ItemKind.UNKNOWN
    return _guarded(settings, path=item.given, kind=guessed, label=item.name,
                    work=lambda w: [_import_video(con, settings, item.path, name=item.name,
                                                  title=Path(item.name).stem, user=user, writes=w,
                                                  result_path=item.given,
                                                  strict=item.suffix in VIDEO_EXTENSIONS)])


# --- videos -----------------------------------------------------------------------------------

def _video_ext(name: str, container: str) -> str:
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix and suffix.isalnum() and len(suffix) <= 8:
        return suffix
    first = container.split(",")[0]
    return _CONTAINER_EXT.get(first, re.sub(r"\W", "", first)[:8] or "video")


def _import_video(con: duckdb.DuckDBPyConnection, settings: Settings, path: Path, *, name: str,
                  title: str, user: str | None, writes: _Writes, result_path: str,
                  strict: bool = True, client_metadata: dict[str, Any] | None = None,
                  source_url: str | None = None) -> IngestResult:
    """Store one video (dedup by sha256).  ``strict`` False: an undecodable file is "unknown type"."""
    size = path.stat().st_size
    if size == 0:
        raise InvalidInput(f"{name}: empty file")
    sha = media.sha256_file(path)
    existing = store.find_video_by_sha(con, sha)
    if existing is not None:
        return IngestResult(path=result_path, kind=ItemKind.VIDEO, status=IngestStatus.DUPLICATE,
                            id=existing.id, reason=f"duplicate of video {existing.id}",
                            title=existing.title)
    unknown = InvalidInput(f"{name}: unknown type (not a video, image, zip of frames or manifest)")
    try:
        info = media.probe(path)
    except InvalidInput as exc:
        raise (_renamed(exc, path.name, name) if strict else unknown) from None
    if (info.container in _NOT_VIDEO_CONTAINERS or info.container.endswith("_pipe")
            or info.codec == "ansi"):
        raise unknown if not strict else InvalidInput(f"{name}: not a video ({info.container})")
    target = settings.videos_dir / f"{sha}.{_video_ext(name, info.container)}"
    if not (target.is_file() and media.sha256_file(target) == sha):
        media.copy_file_atomic(path, writes.file(target))   # a file already there is never undone
    try:
        video = _add_video_row(con, info, sha=sha, title=title, name=name,
                               path=settings.relative(target), size=size, user=user,
                               client_metadata=client_metadata, source_url=source_url)
    except duckdb.ConstraintException:
        existing = store.find_video_by_sha(con, sha)   # the same bytes committed meanwhile
        if existing is None:
            raise
        writes.files.clear()                           # the stored file is that video's now
        return IngestResult(path=result_path, kind=ItemKind.VIDEO, status=IngestStatus.DUPLICATE,
                            id=existing.id, reason=f"duplicate of video {existing.id}",
                            title=existing.title)
    return IngestResult(path=result_path, kind=ItemKind.VIDEO, status=IngestStatus.IMPORTED,
                        id=video.id, title=video.title)


def _add_video_row(con: duckdb.DuckDBPyConnection, info: media.VideoInfo, *, sha: str, title: str,
                   name: str, path: str, size: int, user: str | None,
                   client_metadata: dict[str, Any] | None, source_url: str | None) -> Video:
    with _transaction(con):
        video = store.add_video(
            con, sha256=sha, title=title, original_name=name, path=path,
            container=info.container, codec=info.codec, fps=info.fps, frame_count=info.frame_count,
            duration=info.duration, width=info.width, height=info.height, size_bytes=size,
            client_metadata=client_metadata, source_url=source_url, created_by=user)
        details = {"title": title, "original_name": name, "sha256": sha, "size_bytes": size}
        if source_url:
            details["source_url"] = source_url
        audit.record(con, username=user, action="import", entity="video", entity_id=video.id,
                     details=details)
    return video


# --- image groups -----------------------------------------------------------------------------

@dataclass
class _Member:
    """One still image on its way into a group."""

    source: Path                  # a readable local file
    name: str                     # plain original file name (no folders)
    label: str                    # how messages name it (display name, zip member, URL)
    result_path: str = ""
    frame_number: int = 0
    is_context: bool = False
    parent: int | None = None     # index of the labeling frame a context frame belongs to
    owned: bool = False           # a staged copy: moved into place instead of copied
    extra: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    width: int = 0
    height: int = 0
    png: Path | None = None       # staged browser-viewable copy (bmp, tif)
    error: str | None = None


@dataclass(frozen=True)
class _GroupOutcome:
    group_id: int
    frame_ids: tuple[int | None, ...]   # per member, in member order
    duplicate: bool
    title: str


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]


def _safe_name(name: str) -> str:
    """A plain file name: no folders, no control characters, not hidden."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if c.isprintable()).strip().lstrip(".")
    return base or "image"


def _stored_names(members: list[_Member], reserved: set[str]) -> list[str]:
    """Unique file names for the originals (``a.png``, ``a_2.png``, ...), avoiding ``reserved``."""
    used = {n.lower() for n in reserved}
    out = []
    for member in members:
        candidate, stem, suffix, k = member.name, Path(member.name).stem, Path(member.name).suffix, 2
        while candidate.lower() in used:
            candidate, k = f"{stem}_{k}{suffix}", k + 1
        used.add(candidate.lower())
        out.append(candidate)
    return out


def _prepare(members: list[_Member], writes: _Writes, *, lenient: bool, progress: Progress) -> None:
    """Hash and decode every member; stage a PNG where the browser needs one.

    ``lenient``: an undecodable member gets ``error`` set; otherwise it raises InvalidInput.
    """
    for index, member in enumerate(members):
        progress(0.8 * index / max(len(members), 1), f"reading {member.label}")
        try:
            if member.source.stat().st_size == 0:
                raise InvalidInput(f"{member.label}: empty file")
            member.sha256 = media.sha256_file(member.source)
            try:
                rgb = media.read_image(member.source)
            except InvalidInput as exc:
                raise _renamed(exc, member.source.name, member.label) from None
            member.height, member.width = int(rgb.shape[0]), int(rgb.shape[1])
            if Path(member.name).suffix.lower() not in media.BROWSER_EXTENSIONS:
                member.png = writes.stage() / f"view_{index}_{uuid.uuid4().hex[:8]}.png"
                member.png.write_bytes(media.encode_image(rgb, fmt="png"))
        except InvalidInput as exc:
            if not lenient:
                raise
            member.error = str(exc)


def _store_group(con: duckdb.DuckDBPyConnection, settings: Settings, members: list[_Member], *,
                 title: str, source: str, user: str | None, writes: _Writes,
                 sha256: str | None = None, client_metadata: dict[str, Any] | None = None,
                 source_url: str | None = None) -> _GroupOutcome:
    """Store prepared ``members`` as one group (dedup by ``sha256``, default: of the sorted
    member hashes).  Frames get frame_number from the members, in member order."""
    if sha256 is None:
        sha256 = media.sha256_bytes("\n".join(sorted(m.sha256 for m in members)).encode())
    existing = store.find_group_by_sha(con, sha256)
    if existing is not None:
        by_sha = {f.sha256: f.id for f in store.frames_of(con, group_id=existing.id)}
        return _GroupOutcome(existing.id, tuple(by_sha.get(m.sha256) for m in members), True,
                             existing.title)
    group_id = store.reserve_group_id(con)
    frame_ids = store.reserve_frame_ids(con, len(members))
    folder = settings.group_frames_dir(group_id)
    writes.new_dir(folder)
    reserved = {f"frame_{fid}.png" for fid, m in zip(frame_ids, members) if m.png is not None}
    rows = []
    for member, frame_id, stored in zip(members, frame_ids, _stored_names(members, reserved)):
        original = writes.file(folder / stored)
        if member.owned:
            os.replace(member.source, original)
        else:
            media.copy_file_atomic(member.source, original)
        view = original
        if member.png is not None:
            view = writes.file(folder / f"frame_{frame_id}.png")
            os.replace(member.png, view)
        rows.append({
            "id": frame_id, "video_id": None, "group_id": group_id,
            "frame_number": member.frame_number, "timestamp": None,
            "path": settings.relative(view), "original_name": member.name,
            "original_path": settings.relative(original), "width": member.width,
            "height": member.height, "sha256": member.sha256, "is_context": member.is_context,
            "parent_id": frame_ids[member.parent] if member.parent is not None else None,
            "extraction_id": None, "created_by": user,
        })
    with _transaction(con):
        store.add_group(con, group_id=group_id, title=title, source=source, sha256=sha256,
                        client_metadata=client_metadata, source_url=source_url, created_by=user)
        store.insert_frames(con, rows)
        details = {"title": title, "source": source, "frames": len(rows), "sha256": sha256}
        if source_url:
            details["source_url"] = source_url
        audit.record(con, username=user, action="import", entity="image_group",
                     entity_id=group_id, details=details)
    return _GroupOutcome(group_id, tuple(frame_ids), False, title)


def _loose_title(members: list[_Member]) -> str:
    return Path(members[0].name).stem if len(members) == 1 else f"{len(members)} images"


def _ingest_image_batch(con: duckdb.DuckDBPyConnection, settings: Settings, members: list[_Member],
                        *, user: str | None, source: str, title: Callable[[list[_Member]], str],
                        progress: Progress,
                        metadata: Callable[[list[_Member]], dict[str, Any]] | None = None,
                        ) -> list[IngestResult]:
    """Images that each report alone (kind=image) but are stored as one group; an unreadable
    one is rejected by itself and the others still form the group."""
    writes = _Writes(settings)
    try:
        _prepare(members, writes, lenient=True, progress=progress)
        ok = [m for m in members if m.error is None]
        for number, member in enumerate(ok):
            member.frame_number = number
        outcome = None
        if ok:
            outcome = _store_group(con, settings, ok, title=title(ok), source=source, user=user,
                                   writes=writes, client_metadata=metadata(ok) if metadata else None)
    except Exception as exc:  # noqa: BLE001 - the whole batch failed: reject each member
        writes.undo()
        return [_rejected(m.result_path, ItemKind.IMAGE, m.error or _reason(m.label, exc))
                for m in members]
    except BaseException:
        writes.undo()
        raise
    finally:
        writes.close()
    progress(1.0, "images stored")
    frame_of = dict(zip(map(id, ok), outcome.frame_ids)) if outcome else {}
    results = []
    for member in members:
        if member.error is not None or outcome is None:
            results.append(_rejected(member.result_path, ItemKind.IMAGE, member.error or ""))
            continue
        fid = frame_of[id(member)]
        status = IngestStatus.DUPLICATE if outcome.duplicate else IngestStatus.IMPORTED
        results.append(IngestResult(
            path=member.result_path, kind=ItemKind.IMAGE, status=status, id=outcome.group_id,
            reason=f"duplicate of image group {outcome.group_id}" if outcome.duplicate else None,
            frame_ids=(fid,) if fid is not None else (), title=outcome.title))
    return results


def _group_result(path: str, outcome: _GroupOutcome) -> IngestResult:
    return IngestResult(
        path=path, kind=ItemKind.IMAGE_GROUP,
        status=IngestStatus.DUPLICATE if outcome.duplicate else IngestStatus.IMPORTED,
        id=outcome.group_id,
        reason=f"duplicate of image group {outcome.group_id}" if outcome.duplicate else None,
        frame_ids=tuple(f for f in outcome.frame_ids if f is not None), title=outcome.title)


def _ingest_folder(con: duckdb.DuckDBPyConnection, settings: Settings, item: _Input, *,
                   user: str | None, writes: _Writes, progress: Progress) -> IngestResult:
    files = sorted((p for p in item.path.iterdir()
                    if p.is_file() and not p.name.startswith(".")
                    and p.suffix.lower() in media.IMAGE_EXTENSIONS),
                   key=lambda p: _natural_key(p.name))
    if not files:
        raise InvalidInput(f"{item.name}: no images (jpg, png, bmp, tif) in the folder")
    members = [_Member(source=p, name=_safe_name(p.name), label=f"{item.name}/{p.name}",
                       frame_number=n) for n, p in enumerate(files)]
    _prepare(members, writes, lenient=False, progress=progress)
    outcome = _store_group(con, settings, members, title=item.name, source="folder", user=user,
                           writes=writes)
    return _group_result(item.given, outcome)


# --- zips of frames (Lightning Pose layout) ---------------------------------------------------

def _escapes(member: str) -> bool:
    name = member.replace("\\", "/")
    return (name.startswith("/") or re.match(r"^[A-Za-z]:", name) is not None
            or any(part == ".." for part in name.split("/")))


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _too_big(unpacked: int, packed: int, limits: ZipLimits) -> str | None:
    if unpacked > limits.max_total_bytes:
        return f"unpacks to {_size(unpacked)}, over the {_size(limits.max_total_bytes)} limit"
    if unpacked > limits.ratio_floor_bytes and unpacked > limits.max_ratio * max(packed, 1):
        return (f"unpacks to {_size(unpacked)} from {_size(packed)} "
                f"(over {limits.max_ratio:g}x compression)")
    return None


def _check_zip(name: str, infos: list[zipfile.ZipInfo], zip_size: int, limits: ZipLimits) -> None:
    for info in infos:
        if _escapes(info.filename):
            raise InvalidInput(f"{name}: member {info.filename!r} points outside the archive folder")
    problem = _too_big(sum(i.file_size for i in infos), zip_size, limits)
    for info in infos:
        problem = problem or _too_big(info.file_size, info.compress_size, limits)
    if problem:
        raise InvalidInput(f"{name}: {problem}; refusing a possible zip bomb")


def _frame_numbers(names: list[str]) -> list[int]:
    """The number in ``imgNNNNNNNN`` (or a trailing number) of each name; else natural order."""
    numbers = []
    for name in names:
        stem = Path(name).stem
        match = re.search(r"img(\d+)", stem, re.IGNORECASE) or re.search(r"(\d+)$", stem)
        numbers.append(int(match.group(1)) if match else None)
    if None in numbers or len(set(numbers)) != len(numbers):
        rank = [0] * len(names)
        for position, i in enumerate(sorted(range(len(names)), key=lambda i: _natural_key(names[i]))):
            rank[i] = position
        return rank
    return numbers


def _read_selected(zf: zipfile.ZipFile, csv_infos: list[zipfile.ZipInfo], images: list[str],
                   numbers: list[int], name: str) -> set[int]:
    """Indexes (into ``images``) of the frames selected_frames.csv lists (header optional;
    names with or without folder; a bare number is a frame number)."""
    by_path = {n.replace("\\", "/"): i for i, n in enumerate(images)}
    by_base: dict[str, list[int]] = {}
    for i, n in enumerate(images):
        by_base.setdefault(n.replace("\\", "/").rsplit("/", 1)[-1], []).append(i)
    by_number = {num: i for i, num in enumerate(numbers)}
    selected: set[int] = set()
    for info in csv_infos:
        if info.file_size > _MAX_CSV_BYTES:
            raise InvalidInput(f"{name}: {info.filename} is larger than {_size(_MAX_CSV_BYTES)}")
        text = zf.read(info).decode("utf-8-sig", errors="replace")
        first = True
        for row in csv.reader(io.StringIO(text)):
            cells = [c.strip().replace("\\", "/") for c in row if c.strip()]
            if not cells:
                continue
            hits = [[by_path[c]] if c in by_path else by_base.get(c.rsplit("/", 1)[-1], [])
                    for c in cells]
            found = next((h for h in hits if h), None)
            if found is None and len(cells) == 1 and cells[0].isdigit() \
                    and int(cells[0]) in by_number:
                found = [by_number[int(cells[0])]]
            if found is None:
                if not first:
                    raise InvalidInput(f"{name}: {SELECTED_FRAMES} lists {cells[-1]!r}, "
                                       "which is not an image in the zip")
            else:
                selected.update(found)
            first = False
    return selected


def _unpack(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, *, name: str,
            budget: dict[str, int], zip_size: int, limits: ZipLimits) -> None:
    """Copy one member out, counting real bytes (declared sizes can lie)."""
    try:
        with zf.open(info) as src, open(target, "wb") as dst:
            while chunk := src.read(1 << 20):
                budget["written"] += len(chunk)
                problem = _too_big(budget["written"], zip_size, limits)
                if problem:
                    raise InvalidInput(f"{name}: {problem}; refusing a possible zip bomb")
                dst.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as exc:
        raise InvalidInput(f"{name}: member {info.filename!r} cannot be unpacked ({exc})") from None


def _ingest_zip(con: duckdb.DuckDBPyConnection, settings: Settings, item: _Input, *,
                user: str | None, writes: _Writes, limits: ZipLimits,
                progress: Progress) -> IngestResult:
    title = Path(item.name).stem
    sha = media.sha256_file(item.path)
    existing = store.find_group_by_sha(con, sha)
    if existing is not None:
        frame_ids = tuple(f.id for f in store.frames_of(con, group_id=existing.id))
        return IngestResult(path=item.given, kind=ItemKind.IMAGE_GROUP,
                            status=IngestStatus.DUPLICATE, id=existing.id,
                            reason=f"duplicate of image group {existing.id}",
                            frame_ids=frame_ids, title=existing.title)
    zip_size = item.path.stat().st_size
    try:
        zf = zipfile.ZipFile(item.path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput(f"{item.name}: not a readable zip ({exc})") from None
    with zf:
        infos = zf.infolist()
        _check_zip(item.name, infos, zip_size, limits)
        images: list[zipfile.ZipInfo] = []
        csvs: list[zipfile.ZipInfo] = []
        for info in infos:
            parts = info.filename.replace("\\", "/").split("/")
            if info.is_dir() or "__MACOSX" in parts or parts[-1].startswith("."):
                continue
            if parts[-1].lower() == SELECTED_FRAMES:
                csvs.append(info)
            elif Path(parts[-1]).suffix.lower() in media.IMAGE_EXTENSIONS:
                images.append(info)
        if not images:
            raise InvalidInput(f"{item.name}: no images (img%08d.png, jpg, png, bmp, tif) in the zip")
        names = [i.filename for i in images]
        numbers = _frame_numbers(names)
        selected = _read_selected(zf, csvs, names, numbers, item.name) if csvs else set()
        stage = writes.stage()
        budget = {"written": 0}
        members = []
        for k, info in enumerate(images):
            progress(0.3 * k / len(images), f"unpacking {info.filename}")
            target = stage / f"member_{k}{Path(info.filename).suffix.lower()}"
            _unpack(zf, info, target, name=item.name, budget=budget, zip_size=zip_size,
                    limits=limits)
            members.append(_Member(source=target, name=_safe_name(info.filename),
                                   label=f"{item.name}: {info.filename}", owned=True,
                                   frame_number=numbers[k]))
    order = sorted(range(len(members)), key=lambda i: (numbers[i], _natural_key(names[i])))
    members = [members[i] for i in order]
    chosen = [n for n, i in enumerate(order) if i in selected]
    if chosen:
        chosen_set = set(chosen)
        for n, member in enumerate(members):
            if n in chosen_set:
                continue
            member.is_context = True
            member.parent = min(chosen, key=lambda c: (abs(members[c].frame_number
                                                           - member.frame_number), c))
    _prepare(members, writes, lenient=False,
             progress=lambda f, m: progress(0.3 + 0.7 * f, m))
    outcome = _store_group(con, settings, members, title=title, source="zip", user=user,
                           writes=writes, sha256=sha)
    return _group_result(item.given, outcome)


# --- JSON manifests (Encord registration JSON) ------------------------------------------------

def _key_frames(frames: Any, label: str) -> list[int]:
    items = list(frames.keys()) if isinstance(frames, dict) else frames
    if not isinstance(items, list):
        raise InvalidInput(f"{label}: clientMetadata.$encord.frames must be a list or an object")
    out = set()
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool) and item >= 0:
            out.add(item)
        elif isinstance(item, str) and item.strip().isdigit():
            out.add(int(item))
        else:
            raise InvalidInput(f"{label}: clientMetadata.$encord.frames: {item!r} is not a frame number")
    return sorted(out)


def _client_metadata(entry: dict[str, Any], label: str) -> dict[str, Any]:
    """The entry's clientMetadata as given, plus ``key_frames`` (sorted) from $encord.frames."""
    meta = entry.get("clientMetadata")
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise InvalidInput(f"{label}: clientMetadata must be a JSON object")
    meta = dict(meta)
    encord = meta.get("$encord")
    if isinstance(encord, dict) and encord.get("frames") is not None:
        meta["key_frames"] = _key_frames(encord["frames"], label)
    return meta


def _resolve(url: str, base: Path, label: str) -> Path:
    """A local file named by ``url``: a path (relative to ``base`` or absolute) or file:// URL."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = Path(url2pathname(parsed.path))
    elif len(parsed.scheme) > 1:
        raise InvalidInput(f"{label}: {url}: only local files and file:// URLs can be registered "
                           "(nothing is downloaded)")
    else:
        path = Path(url).expanduser()
        path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise InvalidInput(f"{label}: no such file {url} (looked for {path})")
    return path


def _object_url(entry: Any, key: str, label: str) -> str:
    if not isinstance(entry, dict):
        raise InvalidInput(f"{label}: an entry must be a JSON object")
    url = entry.get(key)
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput(f"{label}: no {key}")
    return url


def _entry_title(entry: dict[str, Any], fallback: str) -> str:
    title = entry.get("title")
    return title.strip() if isinstance(title, str) and title.strip() else fallback


def _ingest_manifest(con: duckdb.DuckDBPyConnection, settings: Settings, item: _Input, *,
                     user: str | None, progress: Progress) -> list[IngestResult]:
    try:
        data = json.loads(item.path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [_rejected(item.given, ItemKind.UNKNOWN, f"{item.name}: not readable JSON ({exc})")]
    if not isinstance(data, dict) or not any(k in data for k in MANIFEST_KEYS):
        return [_rejected(item.given, ItemKind.UNKNOWN,
                          f"{item.name}: unknown type (JSON without videos, images or image_groups)")]
    for key in MANIFEST_KEYS:
        if not isinstance(data.get(key, []), list):
            return [_rejected(item.given, ItemKind.UNKNOWN, f"{item.name}: '{key}' must be a list")]
    base = item.path.parent
    stem = Path(item.name).stem
    skip = bool(data.get("skip_duplicate_urls", False))
    videos, images, groups = (data.get(k, []) for k in MANIFEST_KEYS)
    total = max(len(videos) + len(images) + len(groups), 1)
    results: list[IngestResult] = []

    def video_entry(i: int, entry: Any, writes: _Writes) -> list[IngestResult]:
        label = f"{item.name}: videos[{i}]"
        url = _object_url(entry, "objectUrl", label)
        meta = _client_metadata(entry, label)
        if skip and (hit := store.find_by_source_url(con, url)) is not None:
            return [IngestResult(path=url, kind=ItemKind.VIDEO, status=IngestStatus.DUPLICATE,
                                 id=hit[1], reason=f"{url} is already registered as {hit[0]} {hit[1]}")]
        path = _resolve(url, base, label)
        return [_import_video(con, settings, path, name=path.name,
                              title=_entry_title(entry, path.stem), user=user, writes=writes,
                              result_path=url, client_metadata=meta, source_url=url)]

    def group_entry(i: int, entry: Any, writes: _Writes) -> list[IngestResult]:
        label = f"{item.name}: image_groups[{i}]"
        if not isinstance(entry, dict):
            raise InvalidInput(f"{label}: an entry must be a JSON object")
        keys = sorted((k for k in entry if re.fullmatch(r"objectUrl_\d+", k)),
                      key=lambda k: int(k.split("_")[1]))
        if not keys:
            raise InvalidInput(f"{label}: no objectUrl_0, objectUrl_1, ...")
        urls = [_object_url(entry, k, label) for k in keys]
        meta = _client_metadata(entry, label)
        if skip and (hit := store.find_by_source_url(con, urls[0])) is not None:
            return [IngestResult(path=urls[0], kind=ItemKind.IMAGE_GROUP,
                                 status=IngestStatus.DUPLICATE, id=hit[1],
                                 reason=f"{urls[0]} is already registered as {hit[0]} {hit[1]}")]
        paths = [_resolve(u, base, label) for u in urls]
        members = [_Member(source=p, name=_safe_name(p.name), label=f"{label}: {u}",
                           frame_number=n) for n, (p, u) in enumerate(zip(paths, urls))]
        _prepare(members, writes, lenient=False, progress=lambda f, m: None)
        meta.setdefault("objectUrls", urls)
        outcome = _store_group(con, settings, members, title=_entry_title(entry, f"{stem} {i + 1}"),
                               source="manifest", user=user, writes=writes,
                               client_metadata=meta, source_url=urls[0])
        return [_group_result(urls[0], outcome)]

    done = 0
    for i, entry in enumerate(videos):
        progress(done / total, f"{item.name}: video {i + 1} of {len(videos)}")
        path = entry.get("objectUrl") if isinstance(entry, dict) else None
        results += _guarded(settings, path=str(path or f"{item.name}: videos[{i}]"),
                            kind=ItemKind.VIDEO, label=f"{item.name}: videos[{i}]",
                            work=lambda w, i=i, entry=entry: video_entry(i, entry, w))
        done += 1

    members: list[_Member] = []
    slots: list[IngestResult | None] = []
    for i, entry in enumerate(images):
        label = f"{item.name}: images[{i}]"
        path = entry.get("objectUrl") if isinstance(entry, dict) else None
        try:
            url = _object_url(entry, "objectUrl", label)
            meta = _client_metadata(entry, label)
            hit = store.find_image_by_source_url(con, url) if skip else None
            if hit is not None:
                slots.append(IngestResult(
                    path=url, kind=ItemKind.IMAGE, status=IngestStatus.DUPLICATE, id=hit[0],
                    reason=f"{url} is already registered in image group {hit[0]}",
                    frame_ids=(hit[1],) if hit[1] is not None else ()))
                continue
            file = _resolve(url, base, label)
        except InvalidInput as exc:
            slots.append(_rejected(str(path or label), ItemKind.IMAGE, str(exc)))
            continue
        members.append(_Member(source=file, name=_safe_name(file.name), label=f"{label}: {url}",
                               result_path=url, extra={"objectUrl": url, "clientMetadata": meta,
                                                       "title": _entry_title(entry, file.stem)}))
        slots.append(None)
    if members:
        def image_metadata(ok: list[_Member]) -> dict[str, Any]:
            return {"manifest": item.name,
                    "images": [{"frame_number": m.frame_number, **m.extra} for m in ok]}

        batch = iter(_ingest_image_batch(
            con, settings, members, user=user, source="manifest", title=lambda ok: stem,
            metadata=image_metadata,
            progress=lambda f, m: progress((done + f * len(images)) / total, m)))
        slots = [s if s is not None else next(batch) for s in slots]
    results += [s for s in slots if s is not None]
    done += len(images)

    for i, entry in enumerate(groups):
        progress(done / total, f"{item.name}: image group {i + 1} of {len(groups)}")
        path = entry.get("objectUrl_0") if isinstance(entry, dict) else None
        results += _guarded(settings, path=str(path or f"{item.name}: image_groups[{i}]"),
                            kind=ItemKind.IMAGE_GROUP, label=f"{item.name}: image_groups[{i}]",
                            work=lambda w, i=i, entry=entry: group_entry(i, entry, w))
        done += 1
    if not results:
        results.append(_rejected(item.given, ItemKind.UNKNOWN, f"{item.name}: the manifest lists nothing"))
    progress(1.0, f"{item.name}: done")
    return results
