"""Zips of frames in the Lightning Pose layout -> one image group.

``img%08d.png`` members (any image format; a trailing number also counts) are ordered by frame
number; with ``selected_frames.csv`` the unlisted frames become context frames of the nearest
listed frame.  A first CSV line that is a bare ``0`` is pandas' header, not frame 0.  A stray
image without a number (a cover picture) is skipped with a result of its own rather than
renumbering every frame; a zip without frame numbers is numbered in natural name order.

Refused, each with a message naming the zip and the member: zip slip (``..``, absolute or
drive paths), symbolic-link and encrypted members, and zip bombs (``ZipLimits``: member count,
declared sizes and ratio, and again the bytes actually unpacked).
"""

from __future__ import annotations

import csv
import io
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import duckdb

from endolite import media
from endolite.config import Settings
from endolite.errors import InvalidInput
from endolite.ingest.common import Input, Progress, Writes, rejected
from endolite.ingest.images import (
    GroupOutcome,
    Member,
    group_result,
    natural_key,
    prepare,
    store_group,
)
from endolite.ingest.upload import safe_name
from endolite.records import IngestResult, ItemKind
from endolite.storage import media as store

SELECTED_FRAMES = "selected_frames.csv"
_MAX_CSV_BYTES = 16 << 20


@dataclass(frozen=True)
class ZipLimits:
    """Zip-bomb guards, applied to the sizes a zip declares and again while unpacking.

    A zip is rejected when it holds more than ``max_members`` entries, unpacks to more than
    ``max_total_bytes``, or to more than ``ratio_floor_bytes`` at more than ``max_ratio`` times
    its packed size.
    """

    max_total_bytes: int = 4 << 30
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 100 << 20
    max_members: int = 100_000


DEFAULT_ZIP_LIMITS = ZipLimits()


def _escapes(member: str) -> bool:
    name = member.replace("\\", "/")
    return (name.startswith("/") or re.match(r"^[A-Za-z]:", name) is not None
            or any(part == ".." for part in name.split("/")))


def _is_link(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


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
    """Refuse zip slip (``..``, absolute or drive paths), symbolic links, encrypted members and
    zip bombs (by the declared sizes; ``_unpack`` counts the real bytes again)."""
    if len(infos) > limits.max_members:
        raise InvalidInput(f"{name}: {len(infos):,} members, over the {limits.max_members:,} "
                           "limit; refusing a possible zip bomb")
    for info in infos:
        if _escapes(info.filename):
            raise InvalidInput(f"{name}: member {info.filename!r} points outside the archive folder")
        if _is_link(info):
            raise InvalidInput(f"{name}: member {info.filename!r} is a symbolic link; "
                               "zips with links are refused")
        if info.flag_bits & 0x1:
            raise InvalidInput(f"{name}: member {info.filename!r} is encrypted")
    problem = _too_big(sum(i.file_size for i in infos), zip_size, limits)
    for info in infos:
        problem = problem or _too_big(info.file_size, info.compress_size, limits)
    if problem:
        raise InvalidInput(f"{name}: {problem}; refusing a possible zip bomb")


def _natural_ranks(names: list[str]) -> list[int]:
    rank = [0] * len(names)
    for position, i in enumerate(sorted(range(len(names)), key=lambda i: natural_key(names[i]))):
        rank[i] = position
    return rank


def _frame_numbers(names: list[str]) -> list[int | None]:
    """The number in ``imgNNNNNNNN`` (or a trailing number) of each name.

    Where at least half the names carry a number, the others get None (stray files, skipped)
    and nothing is renumbered; where fewer do, or numbers repeat (one folder per camera), every
    image is numbered by its place in natural name order.
    """
    numbers: list[int | None] = []
    for name in names:
        stem = Path(name).stem
        match = re.search(r"img(\d+)", stem, re.IGNORECASE) or re.search(r"(\d+)$", stem)
        numbers.append(int(match.group(1)) if match else None)
    numbered = [n for n in numbers if n is not None]
    if 2 * len(numbered) < len(names) or len(set(numbered)) != len(numbered):
        return _natural_ranks(names)
    return numbers


def _csv_rows(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> list[list[str]]:
    """The non-empty rows of one selected_frames.csv (cells stripped, ``\\`` -> ``/``)."""
    if info.file_size > _MAX_CSV_BYTES:
        raise InvalidInput(f"{name}: {info.filename} is larger than {_size(_MAX_CSV_BYTES)}")
    try:
        with zf.open(info) as fh:
            data = fh.read(_MAX_CSV_BYTES + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise InvalidInput(f"{name}: {info.filename} cannot be unpacked ({exc})") from None
    if len(data) > _MAX_CSV_BYTES:
        raise InvalidInput(f"{name}: {info.filename} is larger than {_size(_MAX_CSV_BYTES)}")
    text = data.decode("utf-8-sig", errors="replace")
    rows = ([c.strip().replace("\\", "/") for c in row if c.strip()]
            for row in csv.reader(io.StringIO(text)))
    return [cells for cells in rows if cells]


def _numeric_header(rows: list[list[str]]) -> bool:
    """A first row that is one bare number is pandas' column header (``0``), not a frame: when
    it is ``0``, or when the rows below name files."""
    if not rows or len(rows[0]) != 1 or not rows[0][0].isdigit():
        return False
    return rows[0][0] == "0" or any(not c.isdigit() for row in rows[1:] for c in row)


def _read_selected(zf: zipfile.ZipFile, csv_infos: list[zipfile.ZipInfo], images: list[str],
                   numbers: list[int | None], name: str) -> set[int]:
    """Indexes (into ``images``) of the frames selected_frames.csv lists (header optional, a
    bare ``0`` first line being pandas' header; names with or without folder; a bare number
    is a frame number)."""
    by_path = {n.replace("\\", "/"): i for i, n in enumerate(images)}
    by_base: dict[str, list[int]] = {}
    for i, n in enumerate(images):
        by_base.setdefault(n.replace("\\", "/").rsplit("/", 1)[-1], []).append(i)
    by_number = {num: i for i, num in enumerate(numbers) if num is not None}
    selected: set[int] = set()
    for info in csv_infos:
        rows = _csv_rows(zf, info, name)
        if _numeric_header(rows):
            rows = rows[1:]
        for k, cells in enumerate(rows):
            hits = [[by_path[c]] if c in by_path else by_base.get(c.rsplit("/", 1)[-1], [])
                    for c in cells]
            found = next((h for h in hits if h), None)
            if found is None and len(cells) == 1 and cells[0].isdigit() \
                    and int(cells[0]) in by_number:
                found = [by_number[int(cells[0])]]
            if found is None:
                if k > 0:
                    raise InvalidInput(f"{name}: {SELECTED_FRAMES} lists {cells[-1]!r}, "
                                       "which is not an image in the zip")
                continue                              # a header line
            unnumbered = [images[i] for i in found if numbers[i] is None]
            if unnumbered:
                raise InvalidInput(f"{name}: {SELECTED_FRAMES} lists {unnumbered[0]!r}, "
                                   "which has no frame number in its name")
            selected.update(found)
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


def _skipped(item: Input, member: str) -> IngestResult:
    return rejected(f"{item.name}: {member}", ItemKind.IMAGE,
                    f"{item.name}: {member} has no frame number in its name (img%08d.png); "
                    "skipped, the other frames keep their numbers")


def ingest_zip(con: duckdb.DuckDBPyConnection, settings: Settings, item: Input, *,
               user: str | None, writes: Writes, limits: ZipLimits,
               progress: Progress) -> list[IngestResult]:
    """One group from a zip of frames; stray unnumbered images come back as rejected results
    of their own after the group's results."""
    title = Path(item.name).stem
    sha = media.sha256_file(item.path)
    existing = store.find_group_by_sha(con, sha)
    if existing is not None:
        frame_ids = tuple(f.id for f in store.frames_of(con, group_id=existing.id))
        return group_result(item.given, GroupOutcome(existing.id, frame_ids, True, existing.title))
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
        strays = [_skipped(item, n) for n, num in zip(names, numbers) if num is None]
        kept = [k for k, num in enumerate(numbers) if num is not None]
        stage = writes.stage()
        budget = {"written": 0}
        members: list[tuple[int, Member]] = []
        for done, k in enumerate(kept):
            info = images[k]
            progress(0.3 * done / len(kept), f"unpacking {info.filename}")
            target = stage / f"member_{k}{Path(info.filename).suffix.lower()}"
            _unpack(zf, info, target, name=item.name, budget=budget, zip_size=zip_size,
                    limits=limits)
            members.append((k, Member(source=target, name=safe_name(info.filename),
                                      label=f"{item.name}: {info.filename}", owned=True,
                                      frame_number=int(numbers[k] or 0))))
    members.sort(key=lambda pair: (pair[1].frame_number, natural_key(names[pair[0]])))
    chosen = [n for n, (k, _) in enumerate(members) if k in selected]
    ordered = [m for _, m in members]
    if chosen:
        for n, member in enumerate(ordered):
            if n not in chosen:
                member.is_context = True
                member.parent = min(chosen, key=lambda c: (abs(ordered[c].frame_number
                                                               - member.frame_number), c))
    prepare(ordered, writes, lenient=False, progress=lambda f, m: progress(0.3 + 0.7 * f, m))
    outcome = store_group(con, settings, ordered, title=title, source="zip", user=user,
                          writes=writes, sha256=sha)
    return group_result(item.given, outcome, ordered) + strays
