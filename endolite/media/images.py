"""Still images: decode files to RGB arrays, encode arrays as JPEG / PNG bytes, write them
atomically.

Images are numpy arrays ``(H, W, 3) uint8`` in RGB order unless said otherwise (``encode_bgr``
takes OpenCV's BGR order).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from endolite.errors import InvalidInput
from endolite.media.files import write_bytes_atomic

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


def encode_bgr(bgr: np.ndarray, *, fmt: str = "jpg", quality: int = 90) -> bytes:
    """JPEG (``quality`` 1-100, 4:2:0) or PNG (fast compression) bytes of a BGR array.

    OpenCV's libjpeg-turbo path: about 2.5x faster than Pillow's for the same bytes at
    1280x1024, which matters when an extraction writes hundreds of frames.
    """
    import cv2

    if fmt in ("jpg", "jpeg"):
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    elif fmt == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    else:
        raise InvalidInput(f"image format {fmt!r}: use jpg or png")
    if not ok:
        raise InvalidInput(f"could not encode a {bgr.shape} frame as {fmt}")
    return buf.tobytes()
