"""Videos: anything PyAV decodes, stored once by content hash at ``videos/<sha256>.<ext>``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb

from endolite import media
from endolite.config import Settings
from endolite.errors import InvalidInput
from endolite.ingest.common import Writes, check_frame_size, renamed, transaction
from endolite.records import IngestResult, IngestStatus, ItemKind, Video
from endolite.storage import media as store

VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
    ".wmv", ".flv", ".3gp", ".ogv", ".vob", ".mxf", ".h264", ".264", ".hevc", ".mjpeg", ".mjpg",
})
# demuxers that "decode" things that are not videos (text as ANSI art, single images)
_NOT_VIDEO_CONTAINERS = {"tty", "image2", "image2pipe"}
_CONTAINER_EXT = {"matroska": "mkv", "mov": "mp4", "avi": "avi", "mpegts": "ts", "mpeg": "mpg",
                  "asf": "wmv", "flv": "flv", "ogg": "ogv", "mxf": "mxf"}


def _video_ext(name: str, container: str) -> str:
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix and suffix.isalnum() and len(suffix) <= 8:
        return suffix
    first = container.split(",")[0]
    return _CONTAINER_EXT.get(first, re.sub(r"\W", "", first)[:8] or "video")


def _duplicate(result_path: str, existing: Video) -> IngestResult:
    return IngestResult(path=result_path, kind=ItemKind.VIDEO, status=IngestStatus.DUPLICATE,
                        id=existing.id, reason=f"duplicate of video {existing.id}",
                        title=existing.title)


def import_video(con: duckdb.DuckDBPyConnection, settings: Settings, path: Path, *, name: str,
                 title: str, user: str | None, writes: Writes, result_path: str,
                 strict: bool = True, client_metadata: dict[str, Any] | None = None,
                 source_url: str | None = None) -> IngestResult:
    """Store one video (dedup by sha256).  ``strict`` False: an undecodable file is "unknown type"."""
    size = path.stat().st_size
    if size == 0:
        raise InvalidInput(f"{name}: empty file")
    sha = media.sha256_file(path)
    existing = store.find_video_by_sha(con, sha)
    if existing is not None:
        return _duplicate(result_path, existing)
    unknown = InvalidInput(f"{name}: unknown type (not a video, image, zip of frames or manifest)")
    try:
        info = media.probe(path)
    except InvalidInput as exc:
        raise (renamed(exc, path.name, name) if strict else unknown) from None
    if (info.container in _NOT_VIDEO_CONTAINERS or info.container.endswith("_pipe")
            or info.codec == "ansi"):
        raise unknown if not strict else InvalidInput(f"{name}: not a video ({info.container})")
    check_frame_size(name, info.width, info.height)
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
        return _duplicate(result_path, existing)
    return IngestResult(path=result_path, kind=ItemKind.VIDEO, status=IngestStatus.IMPORTED,
                        id=video.id, title=video.title)


def _add_video_row(con: duckdb.DuckDBPyConnection, info: media.VideoInfo, *, sha: str, title: str,
                   name: str, path: str, size: int, user: str | None,
                   client_metadata: dict[str, Any] | None, source_url: str | None) -> Video:
    with transaction(con):
        video = store.add_video(
            con, sha256=sha, title=title, original_name=name, path=path,
            container=info.container, codec=info.codec, fps=info.fps, frame_count=info.frame_count,
            duration=info.duration, width=info.width, height=info.height, size_bytes=size,
            client_metadata=client_metadata, source_url=source_url, created_by=user)
    return video
