"""Writing an export zip as a stream, with the checks before handing it over.

A format (``endolite.export.formats``) describes what goes in as ``Contents``: small metadata
documents (bytes), frame files (the gate's blanked copies), frames decoded from anonymized
videos, anonymized videos, and the paths its metadata refers to.  ``write_zip`` streams all of
it into ``tmp/`` (files are copied in 1 MiB chunks; memory stays flat whatever the size),
checks, and only then moves the finished file to ``exports/`` (``os.replace``): a refused or
failed export leaves no zip behind.

Checks (lx-annotate's list before handing over), each refusing with ``ExportRefused``:

* at least one annotation row;
* every path the metadata refers to (``Contents.referenced``) is a member of the zip;
* every blanked frame and anonymized video copied has the sha256 the gate approved (hashed
  while copying, so a file changed after the gate cannot leave).

``--encrypt-to``: the finished zip is encrypted to an age X25519 recipient (``age1...``) with
pyrage, so only the holder of the matching identity (``AGE-SECRET-KEY-1...``) can open it; the
plain zip never reaches ``exports/``.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from endolite.config import Settings
from endolite.errors import ExportRefused, InvalidInput
from endolite.export.plan import ExportFrame, ExportVideo
from endolite.media import sha256_file

CHUNK = 1 << 20
Progress = Callable[[float, str], None]

# already-compressed media are stored as they are; text documents are deflated
_STORED_SUFFIXES = {".jpg", ".jpeg", ".png", ".mp4", ".webp", ".gz", ".zip"}


@dataclass(frozen=True)
class Transcode:
    """Frames decoded from an anonymized video: ``numbers`` (0-based decode indices) written as
    ``arcname_of(number)`` images of ``ext`` (jpg | png) at JPEG ``quality``."""

    video: ExportVideo
    numbers: tuple[int, ...]
    names: tuple[str, ...]            # arcname per number, same order
    ext: str = "jpg"
    quality: int = 90


@dataclass(frozen=True)
class Contents:
    """Everything one export zip holds.  ``annotation_count``: the rows / annotations its
    metadata carries (0 is refused); ``referenced``: zip paths the metadata names."""

    documents: tuple[tuple[str, bytes], ...]
    frames: tuple[tuple[str, ExportFrame], ...] = ()
    transcodes: tuple[Transcode, ...] = ()
    videos: tuple[ExportVideo, ...] = ()
    annotation_count: int = 0
    referenced: tuple[str, ...] = ()
    extra_documents: Callable[[], Iterator[tuple[str, bytes]]] | None = field(default=None)
    extra_names: tuple[str, ...] = ()       # the members extra_documents will yield, if known

    def member_names(self) -> set[str]:
        names = {a for a, _ in self.documents} | {a for a, _ in self.frames}
        names |= set(self.extra_names)
        names |= {v.arcname for v in self.videos}
        for t in self.transcodes:
            names |= set(t.names)
        return names


@dataclass(frozen=True)
class Written:
    """A finished export: its file (absolute), size, sha256 and member count."""

    path: Path
    size_bytes: int
    sha256: str
    members: int
    encrypted_to: str | None


def check_recipient(recipient: str):
    """The pyrage recipient for an age X25519 public key, or InvalidInput naming the field."""
    import pyrage

    try:
        return pyrage.x25519.Recipient.from_str(recipient.strip())
    except Exception as exc:  # noqa: BLE001 - pyrage raises its own RecipientError / ValueError
        raise InvalidInput(f"--encrypt-to: {recipient.strip()[:80]!r} is not an age X25519 public "
                           f"key (age1...): {exc}") from None


def precheck(contents: Contents) -> None:
    """The checks that need no file written: rows present, references resolve."""
    if contents.annotation_count <= 0:
        raise ExportRefused("export refused: no annotation rows for the chosen media and options")
    members = contents.member_names()
    missing = sorted(set(contents.referenced) - members)
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ExportRefused("export refused: the metadata names files the zip would not hold: "
                            + ", ".join(missing[:3]) + more)


def _copy_checked(zf: zipfile.ZipFile, arcname: str, source: Path, sha256: str, what: str) -> int:
    digest = hashlib.sha256()
    size = 0
    info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = (zipfile.ZIP_STORED if source.suffix.lower() in _STORED_SUFFIXES
                          else zipfile.ZIP_DEFLATED)
    try:
        src = open(source, "rb")
    except FileNotFoundError:
        raise ExportRefused(f"export refused: {what}: its anonymized file is missing") from None
    with src, zf.open(info, "w", force_zip64=True) as dst:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
    if digest.hexdigest() != sha256:
        raise ExportRefused(f"export refused: {what}: its anonymized file changed after the "
                            "anonymization was recorded (sha256 differs)")
    return size


def as_jpeg(frame: ExportFrame, quality: int = 95) -> bytes:
    """The blanked copy of ``frame`` re-encoded as JPEG (for ``frame_<id>.jpg`` paths when the
    copy is a PNG), after checking its sha256 against the approved one."""
    from PIL import Image

    data = frame.source.read_bytes()
    if hashlib.sha256(data).hexdigest() != frame.sha256:
        raise ExportRefused(f"export refused: frame {frame.frame_id}: its anonymized file changed "
                            "after the anonymization was recorded (sha256 differs)")
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _document(zf: zipfile.ZipFile, arcname: str, data: bytes) -> None:
    info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def _transcoded(t: Transcode) -> Iterator[tuple[str, bytes]]:
    """Decode ``t.video``'s anonymized file once, in order, encoding the wanted frames."""
    import av

    wanted = dict(zip(t.numbers, t.names))
    last = max(wanted) if wanted else -1
    fmt = "JPEG" if t.ext in ("jpg", "jpeg") else "PNG"
    with av.open(str(t.video.source)) as container:
        for n, frame in enumerate(container.decode(video=0)):
            if n > last:
                break
            if n in wanted:
                buf = io.BytesIO()
                image = frame.to_image()
                image.save(buf, format=fmt, **({"quality": t.quality} if fmt == "JPEG" else {}))
                yield wanted.pop(n), buf.getvalue()
    if wanted:
        raise ExportRefused(f"export refused: video {t.video.video_id}: frames "
                            f"{sorted(wanted)[:3]} are beyond the anonymized video's end")


def write_zip(settings: Settings, contents: Contents, *, name: str,
              encrypt_to: str | None = None, progress: Progress | None = None) -> Written:
    """Stream ``contents`` into ``exports/<name>.zip`` (``.zip.age`` when encrypted).

    ``name``: a file stem of letters, digits, ``-`` and ``_`` only (InvalidInput otherwise).
    Raises ExportRefused when a check fails; nothing is left in ``exports/`` then.
    """
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise InvalidInput(f"export name {name!r}: use letters, digits, '-' and '_' only")
    recipient = check_recipient(encrypt_to) if encrypt_to else None
    precheck(contents)
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    settings.exports_dir.mkdir(parents=True, exist_ok=True)
    part = settings.tmp_dir / f"export-{uuid.uuid4().hex}.zip.part"
    encrypted = part.with_suffix(".age.part")
    final = settings.exports_dir / (f"{name}.zip.age" if recipient else f"{name}.zip")
    total = max(1, len(contents.documents) + len(contents.frames) + len(contents.videos)
                + sum(len(t.numbers) for t in contents.transcodes))
    done = 0

    def step(message: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(min(done / total, 1.0), message)

    members = 0
    try:
        with open(part, "wb") as raw, zipfile.ZipFile(raw, "w", allowZip64=True) as zf:
            for arcname, data in contents.documents:
                _document(zf, arcname, data)
                members += 1
                step(arcname)
            if contents.extra_documents is not None:
                for arcname, data in contents.extra_documents():
                    _document(zf, arcname, data)
                    members += 1
            for arcname, fr in contents.frames:
                _copy_checked(zf, arcname, fr.source, fr.sha256, f"frame {fr.frame_id}")
                members += 1
                step(arcname)
            for t in contents.transcodes:
                for arcname, data in _transcoded(t):
                    info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
                    zf.writestr(info, data, compress_type=zipfile.ZIP_STORED)
                    members += 1
                    step(arcname)
            for v in contents.videos:
                _copy_checked(zf, v.arcname, v.source, v.sha256, f"video {v.video_id}")
                members += 1
                step(v.arcname)
            names = set(zf.namelist())
        missing = sorted(set(contents.referenced) - names)
        if missing:
            raise ExportRefused("export refused: the metadata names files missing from the zip: "
                                + ", ".join(missing[:3]))
        if recipient is not None:
            import pyrage

            pyrage.encrypt_file(str(part), str(encrypted), [recipient])
            part.unlink()
            os.replace(encrypted, final)
        else:
            os.replace(part, final)
    finally:
        for leftover in (part, encrypted):
            leftover.unlink(missing_ok=True)
    return Written(path=final, size_bytes=final.stat().st_size, sha256=sha256_file(final),
                   members=members, encrypted_to=encrypt_to.strip() if encrypt_to else None)
