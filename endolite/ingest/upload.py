"""Browser uploads -> a private staging file under ``data/tmp``, safe from the name sent with it.

A browser sends a file name it chose; treat it as hostile.  ``safe_name`` reduces it to a plain
base name (no folders, no control characters, not hidden, at most ``MAX_NAME_BYTES`` bytes of
UTF-8, extension kept).  ``stage_upload`` streams the bytes to
``tmp/upload-<uuid>/<safe name>`` through a ``.part`` name that is os.replace'd into place, so a
crash or a full disk never leaves a half file under the real name; ``discard_staging`` removes
that folder again once the upload is ingested.
"""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
import uuid
from pathlib import Path
from typing import Protocol

from endolite.config import Settings
from endolite.errors import InvalidInput, describe_os_error

MAX_NAME_BYTES = 200
_MAX_SUFFIX_BYTES = 16
_STAGING = re.compile(r"upload-[0-9a-f]{32}")


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


def _clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, never inside a character."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def safe_name(name: str, *, fallback: str = "upload") -> str:
    """A plain file name from a browser-sent ``name`` (``fallback`` when nothing usable is left).

    Drops every folder part (``/`` and ``\\``), control and format characters (NUL, bidi
    overrides), leading dots and trailing dots; runs of white space become one space.  A
    name that was all extension (``".png"``) becomes ``fallback + ".png"``; ``"."``, ``".."``
    and ``""`` become ``fallback``.  Long names are cut to ``MAX_NAME_BYTES`` bytes, keeping a
    short extension.
    """
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    kept = []
    for char in base:
        category = unicodedata.category(char)
        if char.isspace() or category.startswith("Z"):
            kept.append(" ")
        elif not category.startswith("C"):
            kept.append(char)
    base = " ".join("".join(kept).split()).rstrip(" .")
    stripped = base.lstrip(". ")
    if not stripped:
        return fallback
    if stripped != base:                 # ".png" -> "upload.png"; "..x" -> "upload.x"
        base = f"{fallback}.{stripped}"
    suffix = Path(base).suffix
    if len(suffix.encode("utf-8")) > _MAX_SUFFIX_BYTES:
        suffix = ""
    stem = base[: len(base) - len(suffix)] if suffix else base
    stem = _clip(stem, MAX_NAME_BYTES - len(suffix.encode("utf-8"))).rstrip(" .")
    return f"{stem or fallback}{suffix}"


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def stage_upload(settings: Settings, name: str, source: Readable, *, chunk: int = 8 << 20,
                 max_bytes: int | None = None) -> Path:
    """Stream ``source`` (anything with ``.read(n)``, e.g. Streamlit's UploadedFile; read from
    its start when it can seek) to ``tmp/upload-<uuid>/<safe_name(name)>``; returns that path.

    Raises InvalidInput for an upload over ``max_bytes`` or a source that does not yield bytes,
    StorageError (via ``describe_os_error``) when the disk is full or not writable; either way
    the staging folder is removed again.
    """
    if chunk <= 0:
        raise InvalidInput(f"chunk: must be positive, got {chunk}")
    folder = settings.tmp_dir / f"upload-{uuid.uuid4().hex}"
    target = folder / safe_name(name)
    if not (_inside(target, settings.tmp_dir) and target.parent == folder):
        raise InvalidInput(f"upload {name!r}: the staged name leaves the staging folder")
    part = target.with_name(target.name + ".part")
    if hasattr(source, "seek") and getattr(source, "seekable", lambda: False)():
        source.seek(0)
    try:
        folder.mkdir(parents=True)
        written = 0
        with open(part, "wb") as out:
            while data := source.read(chunk):
                if not isinstance(data, (bytes, bytearray, memoryview)):
                    raise InvalidInput(f"upload {target.name}: the upload did not yield bytes")
                written += len(data)
                if max_bytes is not None and written > max_bytes:
                    raise InvalidInput(f"upload {target.name}: larger than the "
                                       f"{max_bytes:,} byte limit")
                out.write(data)
        os.replace(part, target)
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise describe_os_error(exc, doing=f"upload {target.name}") from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return target


def discard_staging(path: str | os.PathLike[str]) -> None:
    """Remove the staging folder of a ``stage_upload`` file (or the folder itself); a folder
    already gone is fine.  Anything that is not an ``upload-<uuid>`` folder is refused."""
    path = Path(path)
    folder = path if _STAGING.fullmatch(path.name) else path.parent
    if not _STAGING.fullmatch(folder.name) or folder.is_symlink():
        raise InvalidInput(f"{path}: not an upload staging folder (upload-<uuid>); not removed")
    shutil.rmtree(folder, ignore_errors=True)
