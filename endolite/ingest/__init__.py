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
item is deleted; the rest of the batch carries on.  A write that fails (disk full, file size
limit, read-only or unwritable data directory; also inside DuckDB) rejects the item with its
cause named (``errors.describe_os_error``) and leaves stored data as it was.

Modules: ``common`` (inputs, progress, staged writes, transaction, rejections), ``videos``,
``images`` (loose images, folders, the group storage), ``zips`` (Lightning Pose zips, zip-bomb
guards), ``manifest`` (Encord-style JSON) and ``upload`` (a browser's file -> a staging file
under a safe name); this module dispatches each input to one of them.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb

from endolite.config import Settings
from endolite.errors import InvalidInput
from endolite.ingest.common import (
    Input,
    Meter,
    Progress,
    display_name,
    guarded,
    reason_for,
    rejected,
)
from endolite.ingest.images import Member, ingest_folder, ingest_image_batch, loose_title
from endolite.ingest.manifest import MANIFEST_KEYS, ingest_manifest
from endolite.ingest.roots import ImportRoots, admitted, default_import_roots
from endolite.ingest.upload import discard_staging, safe_name, stage_upload
from endolite.ingest.videos import VIDEO_EXTENSIONS, import_video
from endolite.ingest.zips import DEFAULT_ZIP_LIMITS, SELECTED_FRAMES, ZipLimits, ingest_zip
from endolite.records import IngestResult, IngestStatus, ItemKind
from endolite.storage import media as store  # noqa: F401 - kept as ``ingest.store``

__all__ = ["DEFAULT_ZIP_LIMITS", "MANIFEST_KEYS", "SELECTED_FRAMES", "VIDEO_EXTENSIONS", "Progress",
           "ZipLimits", "default_import_roots", "discard_staging", "ingest_paths", "safe_name", "stage_upload"]


def ingest_paths(con: duckdb.DuckDBPyConnection, settings: Settings, paths: Sequence[str | Path], *,
                 user: str | None, roots: Sequence[str | Path] | None = None,
                 progress: Progress | None = None,
                 display_names: Mapping[str, str] | None = None,
                 zip_limits: ZipLimits = DEFAULT_ZIP_LIMITS) -> list[IngestResult]:
    """Import ``paths`` (files or folders); one result per input, per entry for a manifest.

    ``display_names`` maps ``str(path)`` to the name a person uploaded the file under (titles,
    original names, type detection and messages use it).  ``user`` is recorded as created_by
    (the service layer, endolite.services.media, writes the audit entry).  ``roots`` (folders; see ``default_import_roots``): every path given,
    every file in a given folder and every local file a manifest names must resolve
    (symlinks followed) inside one of them, else it is rejected as outside the allowed import
    folders; None (the command line) allows any path.  Bad inputs come back as rejected
    results with a reason naming the file; they never stop the rest of the batch.
    """
    names = {str(k): v for k, v in (display_names or {}).items()}
    allowed = ImportRoots.of(roots)
    inputs = [_input(p, display_name(p, names), allowed) for p in paths]
    try:
        settings.ensure_dirs()
    except OSError as exc:          # e.g. a read-only data directory: nothing can be stored
        return [_failed(item, exc, settings) for item in inputs]
    meter = Meter(progress, max(len(inputs), 1))
    slots: list[list[IngestResult]] = [[] for _ in inputs]
    loose = [i for i, item in enumerate(inputs) if item.kind == "image"]
    for index, item in enumerate(inputs):
        if item.kind == "image":
            if index == loose[0]:
                sub = meter.sub(len(loose))
                sub(0.0, f"{len(loose)} image(s)")
                batch = [Member(source=inputs[j].path, name=safe_name(inputs[j].name),
                                label=inputs[j].name, result_path=inputs[j].given) for j in loose]
                results = ingest_image_batch(con, settings, batch, user=user, source="images",
                                             title=loose_title, progress=sub)
                for j, result in zip(loose, results):
                    slots[j] = [result]
                meter.advance(len(loose))
            continue
        sub = meter.sub(1)
        sub(0.0, item.name)
        try:
            slots[index] = _ingest_one(con, settings, item, user=user, progress=sub,
                                       limits=zip_limits)
        except Exception as exc:  # noqa: BLE001 - one input's failure never stops the batch
            slots[index] = [_failed(item, exc, settings)]
        meter.advance(1)
    out = [result for slot in slots for result in slot]
    counts = {s: sum(r.status == s for r in out) for s in IngestStatus}
    meter.emit(1.0, f"{counts[IngestStatus.IMPORTED]} imported, {counts[IngestStatus.DUPLICATE]} "
                    f"duplicate, {counts[IngestStatus.REJECTED]} rejected")
    return out


def _input(path: str | Path, name: str, roots: ImportRoots | None) -> Input:
    """The input for ``path``: its real path when ``roots`` admit it, else refused."""
    try:
        return Input(admitted(roots, Path(path)), str(path), name, roots=roots)
    except InvalidInput as exc:
        return Input(Path(path), str(path), name, refusal=str(exc))


def _failed(item: Input, exc: Exception, settings: Settings) -> IngestResult:
    return rejected(item.given, ItemKind.UNKNOWN,
                    reason_for(item.name, exc, data_dir=settings.data_dir))


def _ingest_one(con: duckdb.DuckDBPyConnection, settings: Settings, item: Input, *,
                user: str | None, progress: Progress, limits: ZipLimits) -> list[IngestResult]:
    kind = item.kind
    if kind == "refused":
        return [rejected(item.given, ItemKind.UNKNOWN, item.refusal or item.name)]
    if kind == "missing":
        return [rejected(item.given, ItemKind.UNKNOWN, f"{item.name}: no such file")]
    if kind == "folder":
        return guarded(settings, path=item.given, kind=ItemKind.IMAGE_GROUP, label=item.name,
                       work=lambda w: ingest_folder(con, settings, item, user=user, writes=w,
                                                   progress=progress))
    if item.path.stat().st_size == 0:
        return [rejected(item.given, ItemKind.UNKNOWN, f"{item.name}: empty file")]
    if kind == "json":
        return ingest_manifest(con, settings, item, user=user, progress=progress)
    if kind == "zip" or (kind == "other" and zipfile.is_zipfile(item.path)):
        return guarded(settings, path=item.given, kind=ItemKind.IMAGE_GROUP, label=item.name,
                       work=lambda w: ingest_zip(con, settings, item, user=user, writes=w,
                                                limits=limits, progress=progress))
    guessed = ItemKind.VIDEO if item.suffix in VIDEO_EXTENSIONS else ItemKind.UNKNOWN
    return guarded(settings, path=item.given, kind=guessed, label=item.name,
                   work=lambda w: [import_video(con, settings, item.path, name=item.name,
                                                title=Path(item.name).stem, user=user, writes=w,
                                                result_path=item.given,
                                                strict=item.suffix in VIDEO_EXTENSIONS)])

