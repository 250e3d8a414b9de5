"""Content hashes (sha256) and atomic file writes (a temporary name beside the target, then
os.replace: a crash never leaves a half file under a real name)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- atomic writes ----------------------------------------------------------------------------

def _process_umask() -> int:
    mask = os.umask(0o077)     # read it (set and restore) once, at import, before any thread
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_process_umask()


def _temp_beside(target: Path) -> Path:
    """A temporary file beside ``target`` with the mode a plain ``open`` would give (the
    process umask decides; mkstemp's 0600 would leave stored files readable by no one else,
    e.g. a backup user; the systemd unit's UMask=0027 keeps them from everyone else)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".tmp-", suffix=target.suffix, dir=target.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
    finally:
        os.close(fd)
    return Path(name)


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a temporary name beside ``target`` and os.replace it into place."""
    target = Path(target)
    tmp = _temp_beside(target)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def copy_file_atomic(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Copy ``source`` to ``target`` through a temporary name (a crash leaves no half file)."""
    import shutil

    target = Path(target)
    tmp = _temp_beside(target)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
