"""Still images -> image groups: loose images, folders, and the group storage every kind of
group (zips and manifests too) goes through.

Originals are kept byte-for-byte at ``frames/group_<gid>/<original name>``; formats a browser
cannot show (bmp, tif) also get ``frames/group_<gid>/frame_<fid>.png``, which ``frame.path``
points to.  A group is deduplicated by content hash.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from endolite import media
from endolite.config import Settings
from endolite.errors import InvalidInput
from endolite.ingest.common import (
    Input,
    Progress,
    Writes,
    reason_for,
    record_import,
    rejected,
    renamed,
    transaction,
)
from endolite.ingest.roots import admitted
from endolite.ingest.upload import safe_name
from endolite.records import IngestResult, IngestStatus, ItemKind
from endolite.storage import media as store


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
    group_id: int
    frame_ids: tuple[int | None, ...]   # per member, in member order
    duplicate: bool
    title: str


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


def prepare(members: list[Member], writes: Writes, *, lenient: bool, progress: Progress) -> None:
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
                raise renamed(exc, member.source.name, member.label) from None
            member.height, member.width = int(rgb.shape[0]), int(rgb.shape[1])
            if Path(member.name).suffix.lower() not in media.BROWSER_EXTENSIONS:
                member.png = writes.stage() / f"view_{index}_{uuid.uuid4().hex[:8]}.png"
                member.png.write_bytes(media.encode_image(rgb, fmt="png"))
        except InvalidInput as exc:
            if not lenient:
                raise
            member.error = str(exc)


def store_group(con: duckdb.DuckDBPyConnection, settings: Settings, members: list[Member], *,
                title: str, source: str, user: str | None, writes: Writes,
                sha256: str | None = None, client_metadata: dict[str, Any] | None = None,
                source_url: str | None = None) -> GroupOutcome:
    """Store prepared ``members`` as one group (dedup by ``sha256``, default: of the sorted
    member hashes).  Frames get frame_number from the members, in member order."""
    if sha256 is None:
        sha256 = media.sha256_bytes("\n".join(sorted(m.sha256 for m in members)).encode())
    existing = store.find_group_by_sha(con, sha256)
    if existing is not None:
        by_sha = {f.sha256: f.id for f in store.frames_of(con, group_id=existing.id)}
        return GroupOutcome(existing.id, tuple(by_sha.get(m.sha256) for m in members), True,
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
    with transaction(con):
        store.add_group(con, group_id=group_id, title=title, source=source, sha256=sha256,
                        client_metadata=client_metadata, source_url=source_url, created_by=user)
        store.insert_frames(con, rows)
        record_import(con, user=user, entity="image_group", entity_id=group_id,
                      details={"title": title, "source": source, "frames": len(rows),
                               "sha256": sha256},
                      source_url=source_url)
    return GroupOutcome(group_id, tuple(frame_ids), False, title)


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
                outcome = store_group(con, settings, ok, title=title(ok), source=source,
                                      user=user, writes=writes,
                                      client_metadata=metadata(ok) if metadata else None)
    except Exception as exc:  # noqa: BLE001 - the whole batch failed: reject each member
        return [rejected(m.result_path, ItemKind.IMAGE, m.error or reason_for(m.label, exc))
                for m in members]
    progress(1.0, "images stored")
    frame_of = dict(zip(map(id, ok), outcome.frame_ids)) if outcome else {}
    results = []
    for member in members:
        if member.error is not None or outcome is None:
            results.append(rejected(member.result_path, ItemKind.IMAGE, member.error or ""))
            continue
        fid = frame_of[id(member)]
        status = IngestStatus.DUPLICATE if outcome.duplicate else IngestStatus.IMPORTED
        results.append(IngestResult(
            path=member.result_path, kind=ItemKind.IMAGE, status=status, id=outcome.group_id,
            reason=f"duplicate of image group {outcome.group_id}" if outcome.duplicate else None,
            frame_ids=(fid,) if fid is not None else (), title=outcome.title))
    return results


def group_result(path: str, outcome: GroupOutcome) -> IngestResult:
    return IngestResult(
        path=path, kind=ItemKind.IMAGE_GROUP,
        status=IngestStatus.DUPLICATE if outcome.duplicate else IngestStatus.IMPORTED,
        id=outcome.group_id,
        reason=f"duplicate of image group {outcome.group_id}" if outcome.duplicate else None,
        frame_ids=tuple(f for f in outcome.frame_ids if f is not None), title=outcome.title)


def ingest_folder(con: duckdb.DuckDBPyConnection, settings: Settings, item: Input, *,
                  user: str | None, writes: Writes, progress: Progress) -> IngestResult:
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
    return group_result(item.given, outcome)
