"""JSON manifests shaped like Encord's registration JSON -> the local files they name.

``videos`` entries become videos, ``images`` entries one image group (each reported alone) and
each ``image_groups`` entry a group of its ``objectUrl_0, objectUrl_1, ...``.  URLs must be
local paths (relative to the manifest) or file:// URLs; nothing is downloaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import duckdb

from endolite.config import Settings
from endolite.errors import InvalidInput
from endolite.ingest.common import Input, Progress, Writes, guarded, rejected
from endolite.ingest.images import (
    Member,
    group_result,
    ingest_image_batch,
    prepare,
    store_group,
)
from endolite.ingest.videos import import_video
from endolite.ingest.roots import ImportRoots, admitted
from endolite.ingest.upload import safe_name
from endolite.records import IngestResult, IngestStatus, ItemKind
from endolite.storage import media as store

MANIFEST_KEYS = ("videos", "images", "image_groups")
MAX_MANIFEST_BYTES = 64 << 20


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


def _resolve(url: str, base: Path, label: str, roots: ImportRoots | None) -> Path:
    """A local file named by ``url``: a path (relative to ``base`` or absolute) or file:// URL;
    with ``roots``, its real path, which must lie inside one of them."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = Path(url2pathname(parsed.path))
    elif len(parsed.scheme) > 1:
        raise InvalidInput(f"{label}: {url}: only local files and file:// URLs can be registered "
                           "(nothing is downloaded)")
    else:
        path = Path(url).expanduser()
        path = path if path.is_absolute() else base / path
    path = admitted(roots, path, label=label, shown=url)
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


def _already_registered(con: duckdb.DuckDBPyConnection, url: str,
                        kind: ItemKind) -> IngestResult | None:
    """A duplicate result when ``url`` was registered before (``skip_duplicate_urls``)."""
    hit = store.find_by_source_url(con, url)
    if hit is None:
        return None
    return IngestResult(path=url, kind=kind, status=IngestStatus.DUPLICATE, id=hit[1],
                        reason=f"{url} is already registered as {hit[0]} {hit[1]}")


def ingest_manifest(con: duckdb.DuckDBPyConnection, settings: Settings, item: Input, *,
                    user: str | None, progress: Progress) -> list[IngestResult]:
    if item.path.stat().st_size > MAX_MANIFEST_BYTES:
        return [rejected(item.given, ItemKind.UNKNOWN, f"{item.name}: a manifest larger than "
                                                       f"{MAX_MANIFEST_BYTES >> 20} MB is refused")]
    try:
        data = json.loads(item.path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [rejected(item.given, ItemKind.UNKNOWN, f"{item.name}: not readable JSON ({exc})")]
    except RecursionError:
        return [rejected(item.given, ItemKind.UNKNOWN,
                         f"{item.name}: not readable JSON (nested too deeply)")]
    if not isinstance(data, dict) or not any(k in data for k in MANIFEST_KEYS):
        return [rejected(item.given, ItemKind.UNKNOWN,
                         f"{item.name}: unknown type (JSON without videos, images or image_groups)")]
    for key in MANIFEST_KEYS:
        if not isinstance(data.get(key, []), list):
            return [rejected(item.given, ItemKind.UNKNOWN, f"{item.name}: '{key}' must be a list")]
    base = item.path.parent
    stem = Path(item.name).stem
    skip = bool(data.get("skip_duplicate_urls", False))
    videos, images, groups = (data.get(k, []) for k in MANIFEST_KEYS)
    total = max(len(videos) + len(images) + len(groups), 1)
    results: list[IngestResult] = []
    done = 0

    def each(entries: list[Any], key: str, noun: str, url_key: str, kind: ItemKind,
             work: Callable[[str, int, Any, Writes], list[IngestResult]]) -> None:
        """Every entry of one list on its own, all-or-nothing (``guarded``)."""
        nonlocal done
        for i, entry in enumerate(entries):
            progress(done / total, f"{item.name}: {noun} {i + 1} of {len(entries)}")
            label = f"{item.name}: {key}[{i}]"
            path = entry.get(url_key) if isinstance(entry, dict) else None
            results.extend(guarded(settings, path=str(path or label), kind=kind, label=label,
                                   work=partial(work, label, i, entry)))
            done += 1

    def video_entry(label: str, i: int, entry: Any, writes: Writes) -> list[IngestResult]:
        url = _object_url(entry, "objectUrl", label)
        meta = _client_metadata(entry, label)
        if skip and (dup := _already_registered(con, url, ItemKind.VIDEO)) is not None:
            return [dup]
        path = _resolve(url, base, label, item.roots)
        return [import_video(con, settings, path, name=path.name,
                             title=_entry_title(entry, path.stem), user=user, writes=writes,
                             result_path=url, client_metadata=meta, source_url=url)]

    def group_entry(label: str, i: int, entry: Any, writes: Writes) -> list[IngestResult]:
        if not isinstance(entry, dict):
            raise InvalidInput(f"{label}: an entry must be a JSON object")
        keys = sorted((k for k in entry if re.fullmatch(r"objectUrl_\d+", k)),
                      key=lambda k: int(k.split("_")[1]))
        if not keys:
            raise InvalidInput(f"{label}: no objectUrl_0, objectUrl_1, ...")
        urls = [_object_url(entry, k, label) for k in keys]
        meta = _client_metadata(entry, label)
        if skip and (dup := _already_registered(con, urls[0], ItemKind.IMAGE_GROUP)) is not None:
            return [dup]
        paths = [_resolve(u, base, label, item.roots) for u in urls]
        members = [Member(source=p, name=safe_name(p.name), label=f"{label}: {u}", result_path=u,
                          frame_number=n) for n, (p, u) in enumerate(zip(paths, urls))]
        prepare(members, writes, lenient=False, progress=lambda f, m: None)
        meta.setdefault("objectUrls", urls)
        outcome = store_group(con, settings, members, title=_entry_title(entry, f"{stem} {i + 1}"),
                              source="manifest", user=user, writes=writes,
                              client_metadata=meta, source_url=urls[0])
        return group_result(urls[0], outcome, members)

    each(videos, "videos", "video", "objectUrl", ItemKind.VIDEO, video_entry)

    members: list[Member] = []
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
            file = _resolve(url, base, label, item.roots)
        except InvalidInput as exc:
            slots.append(rejected(str(path or label), ItemKind.IMAGE, str(exc)))
            continue
        members.append(Member(source=file, name=safe_name(file.name), label=f"{label}: {url}",
                              result_path=url, extra={"objectUrl": url, "clientMetadata": meta,
                                                      "title": _entry_title(entry, file.stem)}))
        slots.append(None)
    if members:
        def image_metadata(ok: list[Member]) -> dict[str, Any]:
            return {"manifest": item.name,
                    "images": [{"frame_number": m.frame_number, **m.extra} for m in ok]}

        batch = iter(ingest_image_batch(
            con, settings, members, user=user, source="manifest", title=lambda ok: stem,
            metadata=image_metadata,
            progress=lambda f, m: progress((done + f * len(images)) / total, m)))
        slots = [s if s is not None else next(batch) for s in slots]
    results += [s for s in slots if s is not None]
    done += len(images)

    each(groups, "image_groups", "image group", "objectUrl_0", ItemKind.IMAGE_GROUP, group_entry)
    if not results:
        results.append(rejected(item.given, ItemKind.UNKNOWN,
                                f"{item.name}: the manifest lists nothing"))
    progress(1.0, f"{item.name}: done")
    return results
