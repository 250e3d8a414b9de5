"""Still images -> image groups: loose images, folders, and the group storage every kind of
group (zips and manifests too) goes through.

Originals are kept byte-for-byte at ``frames/group_<gid>/<original name>``; formats a browser
cannot show (bmp, tif) also get ``frames/group_<gid>/frame_<fid>.png``, which ``frame.path``
points to.  Deduplication is by content hash: a group whose hash is stored already is a
duplicate as a whole, and an image whose bytes are in any stored frame (or earlier in the same
batch) is not stored again but reported as a duplicate of that frame.
"""

from __future__ import annotations

import os
import re
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from endolite import media
from endolite.config import Settings
from endolite.errors import InvalidInput
from endolite.ingest.common import (
    Copy,
    Input,
    Progress,
    Writes,
    check_frame_size,
    library_copies,
    reason_for,
    rejected,
    renamed,
    transaction,
)
from endolite.ingest.roots import admitted
from endolite.ingest.upload import safe_name
from endolite.records import IngestResult, IngestStatus, ItemKind
from endolite.storage import media as store


_BROWSER_FORMATS = {"JPEG", "PNG"}


@dataclass
class Member:
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
class GroupOutcome:
    """What ``store_group`` did with its members.

    ``group_id``: the group they went to (None when every member was stored before).  Per
    member, in member order: ``frame_ids`` its frame (a duplicate's: the stored copy's) and
    ``copies`` the stored copy it duplicates (None: stored now).  ``duplicate``: the whole
    group was stored before (same group hash).
    """

    group_id: int | None
    frame_ids: tuple[int | None, ...]
    duplicate: bool
    title: str
    copies: tuple[Copy | None, ...] = ()

    def copy_of(self, index: int) -> Copy | None:
        return self.copies[index] if index < len(self.copies) else None


def natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]


def _stored_names(members: list[Member], reserved: set[str]) -> list[str]:
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


def _image_format(path: Path, label: str) -> str | None:
    """The format Pillow reads in ``path``'s header (None when Pillow cannot open it; tifffile
    may).  Raises InvalidInput when the header declares more than MAX_FRAME_PIXELS, before
    anything is decoded."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                fmt, (width, height) = im.format, im.size
    except Exception:  # noqa: BLE001 - read_image reports what cannot be decoded
        return None
    check_frame_size(label, width, height)
    return fmt


def prepare(members: list[Member], writes: Writes, *, lenient: bool, progress: Progress) -> None:
    """Hash and decode every member; stage a PNG where the browser needs one (a format other
    than JPEG/PNG by content, whatever the extension says).

    ``lenient``: an undecodable member gets ``error`` set; otherwise it raises InvalidInput.
    """
    for index, member in enumerate(members):
        progress(0.8 * index / max(len(members), 1), f"reading {member.label}")
        try:
            if member.source.stat().st_size == 0:
                raise InvalidInput(f"{member.label}: empty file")
            member.sha256 = media.sha256_file(member.source)
            fmt = _image_format(member.source, member.label)
            try:
                rgb = media.read_image(member.source)
            except InvalidInput as exc:
                raise renamed(exc, member.source.name, member.label) from None
            member.height, member.width = int(rgb.shape[0]), int(rgb.shape[1])
            browser_ready = (fmt in _BROWSER_FORMATS if fmt is not None
                             else Path(member.name).suffix.lower() in media.BROWSER_EXTENSIONS)
            if not browser_ready:
                member.png = writes.stage() / f"view_{index}_{uuid.uuid4().hex[:8]}.png"
                member.png.write_bytes(media.encode_image(rgb, fmt="png"))
        except InvalidInput as exc:
            if not lenient:
                raise
            member.error = reason_for(member.label, exc, data_dir=writes.settings.data_dir)


def store_group(con: duckdb.DuckDBPyConnection, settings: Settings, members: list[Member], *,
                title: str | Callable[[list[Member]], str], source: str, user: str | None,
                writes: Writes, sha256: str | None = None,
                client_metadata: dict[str, Any] | Callable[[list[Member]], dict[str, Any]] | None = None,
                source_url: str | None = None) -> GroupOutcome:
    """Store prepared ``members`` as one group; frames get frame_number from the members.

    A group whose hash (``sha256``; default: of the sorted member hashes) is stored already is a
    duplicate as a whole.  Otherwise a member whose bytes are already in the library (any
    frame, by sha256) or earlier in ``members`` is not stored again: it reports that copy, and
    a context frame of it points to that copy.  ``title`` and ``client_metadata`` may be
    functions of the members actually stored.
    """
    if sha256 is None:
        sha256 = media.sha256_bytes("\n".join(sorted(m.sha256 for m in members)).encode())
    known = library_copies(con, [m.sha256 for m in members])
    existing = store.find_group_by_sha(con, sha256)
    if existing is not None:
        mine = {f.sha256: Copy(f.id, existing.id, None)
                for f in reversed(store.frames_of(con, group_id=existing.id))}
        copies = tuple(mine.get(m.sha256) or known.get(m.sha256) for m in members)
        return GroupOutcome(existing.id, tuple(c.frame_id if c else None for c in copies), True,
                            existing.title, copies)
    first: dict[str, int] = {}
    pending: list[Copy | int | None] = []       # a stored copy, an earlier member, or new
    for index, member in enumerate(members):
        pending.append(known.get(member.sha256, first.get(member.sha256)))
        first.setdefault(member.sha256, index)
    fresh = [i for i, p in enumerate(pending) if p is None]
    new = [members[i] for i in fresh]
    title = title(new or members) if callable(title) else title
    if not new:
        copies = tuple(p for p in pending if isinstance(p, Copy))
        return GroupOutcome(None, tuple(c.frame_id for c in copies), False, title, copies)
    group_id = store.reserve_group_id(con)
    new_ids = dict(zip(fresh, store.reserve_frame_ids(con, len(fresh))))
    copies = tuple(Copy(new_ids[p], group_id, None) if isinstance(p, int) else p for p in pending)
    frame_ids = tuple(c.frame_id if c else new_ids[i] for i, c in enumerate(copies))
    folder = settings.group_frames_dir(group_id)
    writes.new_dir(folder)
    reserved = {f"frame_{new_ids[i]}.png" for i in fresh if members[i].png is not None}
    rows = []
    for index, member, stored in zip(fresh, new, _stored_names(new, reserved)):
        frame_id = new_ids[index]
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
    meta = client_metadata(new) if callable(client_metadata) else client_metadata
    with transaction(con):
        store.add_group(con, group_id=group_id, title=title, source=source, sha256=sha256,
                        client_metadata=meta, source_url=source_url, created_by=user)
        store.insert_frames(con, rows)
    return GroupOutcome(group_id, frame_ids, False, title, copies)


def loose_title(members: list[Member]) -> str:
    return Path(members[0].name).stem if len(members) == 1 else f"{len(members)} images"


def ingest_image_batch(con: duckdb.DuckDBPyConnection, settings: Settings, members: list[Member],
                       *, user: str | None, source: str, title: Callable[[list[Member]], str],
                       progress: Progress,
                       metadata: Callable[[list[Member]], dict[str, Any]] | None = None,
                       ) -> list[IngestResult]:
    """Images that each report alone (kind=image) but are stored as one group; an unreadable
    one is rejected by itself and the others still form the group."""
    try:
        with Writes(settings) as writes:
            prepare(members, writes, lenient=True, progress=progress)
            ok = [m for m in members if m.error is None]
            for number, member in enumerate(ok):
                member.frame_number = number
            outcome = None
            if ok:
                outcome = store_group(con, settings, ok, title=title, source=source,
                                      user=user, writes=writes, client_metadata=metadata)
    except Exception as exc:  # noqa: BLE001 - the whole batch failed: reject each member
        return [rejected(m.result_path, ItemKind.IMAGE,
                         m.error or reason_for(m.label, exc, data_dir=settings.data_dir))
                for m in members]
    progress(1.0, "images stored")
    position = {id(m): k for k, m in enumerate(ok)}
    results = []
    for member in members:
        if member.error is not None or outcome is None:
            results.append(rejected(member.result_path, ItemKind.IMAGE, member.error or ""))
            continue
        k = position[id(member)]
        copy = outcome.copy_of(k)
        if copy is not None:
            results.append(duplicate_image(member.result_path, copy, outcome))
            continue
        fid = outcome.frame_ids[k]
        status = IngestStatus.DUPLICATE if outcome.duplicate else IngestStatus.IMPORTED
        results.append(IngestResult(
            path=member.result_path, kind=ItemKind.IMAGE, status=status, id=outcome.group_id,
            reason=f"duplicate of image group {outcome.group_id}" if outcome.duplicate else None,
            frame_ids=(fid,) if fid is not None else (), title=outcome.title))
    return results


def duplicate_image(path: str, copy: Copy, outcome: GroupOutcome) -> IngestResult:
    """The result of an image whose bytes are stored already (as ``copy``)."""
    return IngestResult(path=path, kind=ItemKind.IMAGE, status=IngestStatus.DUPLICATE,
                        id=copy.group_id, reason=copy.describe(), frame_ids=(copy.frame_id,),
                        title=outcome.title if copy.group_id == outcome.group_id else None)


def group_result(path: str, outcome: GroupOutcome,
                 members: list[Member] | tuple[()] = ()) -> list[IngestResult]:
    """The group's result, then one duplicate result per member stored before (named by its
    ``result_path`` or label).  No group result when every member was stored before."""
    if outcome.duplicate:
        return [IngestResult(
            path=path, kind=ItemKind.IMAGE_GROUP, status=IngestStatus.DUPLICATE,
            id=outcome.group_id, reason=f"duplicate of image group {outcome.group_id}",
            frame_ids=tuple(f for f in outcome.frame_ids if f is not None), title=outcome.title)]
    results = []
    if outcome.group_id is not None:
        results.append(IngestResult(
            path=path, kind=ItemKind.IMAGE_GROUP, status=IngestStatus.IMPORTED,
            id=outcome.group_id, title=outcome.title,
            frame_ids=tuple(f for k, f in enumerate(outcome.frame_ids)
                            if f is not None and outcome.copy_of(k) is None)))
    for k, member in enumerate(members):
        copy = outcome.copy_of(k)
        if copy is not None:
            results.append(duplicate_image(member.result_path or member.label, copy, outcome))
    return results


def ingest_folder(con: duckdb.DuckDBPyConnection, settings: Settings, item: Input, *,
                  user: str | None, writes: Writes, progress: Progress) -> list[IngestResult]:
    files = sorted((p for p in item.path.iterdir()
                    if p.is_file() and not p.name.startswith(".")
                    and p.suffix.lower() in media.IMAGE_EXTENSIONS),
                   key=lambda p: natural_key(p.name))
    if not files:
        raise InvalidInput(f"{item.name}: no images (jpg, png, bmp, tif) in the folder")
    members = [Member(source=admitted(item.roots, p, label=item.name), name=safe_name(p.name),
                      label=f"{item.name}/{p.name}", frame_number=n) for n, p in enumerate(files)]
    prepare(members, writes, lenient=False, progress=progress)
    outcome = store_group(con, settings, members, title=item.name, source="folder", user=user,
                          writes=writes)
    return group_result(item.given, outcome, members)
