"""Media primitives: hashing, PyAV probing, image reading, atomic file writes.

Images are numpy arrays ``(H, W, 3) uint8`` in RGB order unless said otherwise.  Frame numbers
count from 0 in presentation order; timestamps are seconds from the stream start.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from endolite.errors import InvalidInput

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

def _temp_beside(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".tmp-", suffix=target.suffix, dir=target.parent)
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


def encode_image(rgb: np.ndarray, *, fmt: str = "jpg", quality: int = 90) -> bytes:
    """Encode an ``(H, W, 3) uint8`` RGB (or ``(H, W)`` grey) array as JPEG or PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    image = Image.fromarray(rgb)
    if fmt in ("jpg", "jpeg"):
        image.save(buf, format="JPEG", quality=quality)
    elif fmt == "png":
        image.save(buf, format="PNG", compress_level=1)
    else:
        raise InvalidInput(f"image format {fmt!r}: use jpg or png")
    return buf.getvalue()


def write_image_atomic(target: str | os.PathLike[str], rgb: np.ndarray, *, fmt: str = "jpg",
                       quality: int = 90) -> Path:
    return write_bytes_atomic(target, encode_image(rgb, fmt=fmt, quality=quality))


# --- still images -----------------------------------------------------------------------------

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
BROWSER_EXTENSIONS = {".jpg", ".jpeg", ".png"}


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file to ``(H, W, 3) uint8`` RGB.

    Pillow first; TIFFs Pillow cannot open (e.g. CVC-ClinicDB's) go through tifffile.  Grey
    images are repeated to 3 channels, alpha is dropped, 16-bit data is scaled to 8 bits.
    Raises InvalidInput naming the file when nothing can decode it.
    """
    path = Path(path)
    array: np.ndarray | None = None
    error = "not an image Pillow or tifffile can decode"
    try:
        from PIL import Image

        with Image.open(path) as im:
            im.load()
            array = np.asarray(im.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - fall through to tifffile for TIFFs
        error = str(exc) or error
        if path.suffix.lower() in (".tif", ".tiff"):
            try:
                import tifffile

                array = _to_rgb8(np.asarray(tifffile.imread(path)))
            except Exception as exc2:  # noqa: BLE001
                error = f"{error}; tifffile: {exc2}"
    if array is None or array.size == 0:
        raise InvalidInput(f"{path.name}: cannot decode image ({error})")
    return array


def _to_rgb8(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8:
        top = float(array.max()) or 1.0
        array = (array.astype(np.float32) * (255.0 / top)).clip(0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] >= 3:
        array = array[:, :, :3]
    elif array.ndim == 3 and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    else:
        raise ValueError(f"unsupported image shape {array.shape}")
    return np.ascontiguousarray(array)


# --- videos -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` finds: container format, codec, fps, frame count, duration (s), size (px)."""

    container: str
    codec: str
    fps: float
    frame_count: int
    duration: float
    width: int
    height: int


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Open a video with PyAV and read its stream header, and decode one frame to prove it decodes.

    The frame count comes from the stream header when present, else from counting packets
    (demux only, no decoding).  Raises InvalidInput naming the file and the reason for
    empty, truncated, undecodable or video-less files.
    """
    import av

    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        raise InvalidInput(f"{path.name}: empty file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InvalidInput(f"{path.name}: no video stream")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 0.0
            frames = int(stream.frames or 0)
            duration = 0.0
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            if frames <= 0:
                frames = sum(1 for p in container.demux(stream) if p.size > 0)
                container.seek(0)
            first = next(container.decode(stream), None)
            if first is None:
                raise InvalidInput(f"{path.name}: video stream holds no decodable frame")
            width, height = (ctx.width or first.width), (ctx.height or first.height)
            if not duration and fps:
                duration = frames / fps
            if not fps and duration:
                fps = frames / duration
            return VideoInfo(container=container.format.name, codec=ctx.name, fps=fps,
                             frame_count=frames, duration=duration, width=int(width), height=int(height))
    except InvalidInput:
        raise
    except Exception as exc:  # noqa: BLE001 - PyAV raises many error types for bad input
        raise InvalidInput(f"{path.name}: not a decodable video ({exc})") from None
