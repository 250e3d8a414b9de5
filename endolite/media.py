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


# --- decoding ---------------------------------------------------------------------------------
#
# Frame numbers are presentation-order indices from 0: the rank of a frame's pts among the
# pts of all the stream's packets, read in one demux pass (no decoding).  Ranks stay right for
# B-frames, variable frame rates and pts jitter (e.g. 0, 513, 1024, 1537 at 512 ticks/frame),
# where pts * time_base * fps rounding would collide or skip.  Timestamps are
# (pts - first pts) * time_base seconds.  Decoders run with thread_type "AUTO" (frame
# threads; PyAV's default threading does nothing for x264 streams).

from array import array  # noqa: E402 - this section is appended to the module
from collections import deque  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import cached_property  # noqa: E402

_Y_PLANE_FORMATS = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p",
                    "yuv440p", "yuvj440p", "yuv411p", "yuv410p", "nv12", "nv21", "gray"}


@dataclass(frozen=True)
class StreamIndex:
    """Demux-only index of a video's first video stream.

    ``pts``: ``(N,) int64`` ascending, frame n has ``pts[n]`` (stream time base).
    ``keyframes``: ``(K,) int64`` ascending frame numbers of packets flagged keyframe (I/IDR).
    ``time_base``: seconds per pts tick; ``fps``: average frame rate.  ``seek_points``: the
    keyframes plus frame 0 (decoding can always start at the top of the stream).
    """

    pts: np.ndarray
    keyframes: np.ndarray
    time_base: float
    fps: float

    @property
    def frame_count(self) -> int:
        return int(self.pts.shape[0])

    @cached_property
    def timestamps(self) -> np.ndarray:
        """``(N,) float64`` seconds from the first frame."""
        return (self.pts - (self.pts[0] if len(self.pts) else 0)).astype(np.float64) * self.time_base

    def frame_number(self, pts: int) -> int:
        """Frame number of a decoded frame's pts (nearest indexed pts at or after it)."""
        return int(min(np.searchsorted(self.pts, pts), len(self.pts) - 1))

    @cached_property
    def seek_points(self) -> np.ndarray:
        return np.union1d(np.zeros(1, np.int64), self.keyframes).astype(np.int64)

    def keyframe_before(self, frame_number: int) -> int:
        """The last seek point (keyframe or frame 0) at or before ``frame_number``."""
        i = int(np.searchsorted(self.seek_points, frame_number, side="right")) - 1
        return int(self.seek_points[max(i, 0)])


def index_video(path: str | os.PathLike[str]) -> StreamIndex:
    """Read every packet's pts and keyframe flag (demux only; cheap even for long videos).

    Memory: about 16 bytes per frame.  Raises InvalidInput when the file has no video packets.
    """
    import av

    path = Path(path)
    pts = array("q")
    keys = array("q")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InvalidInput(f"{path.name}: no video stream")
            stream = container.streams.video[0]
            time_base = float(stream.time_base) if stream.time_base else 0.0
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 0.0
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                value = packet.pts if packet.pts is not None else packet.dts
                if value is None:
                    value = (pts[-1] + 1) if pts else 0
                pts.append(int(value))
                if packet.is_keyframe:
                    keys.append(int(value))
    except InvalidInput:
        raise
    except Exception as exc:  # noqa: BLE001 - PyAV raises many error types for bad input
        raise InvalidInput(f"{path.name}: cannot read video packets ({exc})") from None
    if not pts:
        raise InvalidInput(f"{path.name}: video stream holds no packets")
    order = np.unique(np.frombuffer(pts, dtype=np.int64))
    keyframes = np.unique(np.searchsorted(order, np.frombuffer(keys, dtype=np.int64)))
    if not time_base:
        time_base = 1.0 / fps if fps else 1.0
    if not fps and len(order) > 1:
        fps = (len(order) - 1) / max(float(order[-1] - order[0]) * time_base, 1e-9)
    return StreamIndex(pts=order, keyframes=keyframes.astype(np.int64), time_base=time_base, fps=fps)


# sparse decoding plan ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DecodeRun:
    """Seek to keyframe ``keyframe`` (a frame number), then decode forward through ``targets``."""

    keyframe: int
    targets: tuple[int, ...]


def plan_sparse(targets, keyframes: np.ndarray) -> list[DecodeRun]:
    """Plan decoding of sorted ``targets`` (frame numbers) given keyframe frame numbers.

    Greedy and optimal in frames decoded: after a run has decoded through frame p-1, target t
    continues the run (cost t - p + 1) unless t's preceding keyframe k lies beyond p, in which
    case a seek to k (cost t - k + 1) is cheaper.  So the total never exceeds either
    ``full_scan_cost`` or ``seek_each_cost``.
    """
    keyframes = np.asarray(keyframes, dtype=np.int64)
    runs: list[tuple[int, list[int]]] = []
    position = -1                       # next frame the decoder would produce
    for t in sorted({int(t) for t in targets}):
        i = int(np.searchsorted(keyframes, t, side="right")) - 1
        k = int(keyframes[max(i, 0)])
        if runs and k <= position:
            runs[-1][1].append(t)
        else:
            runs.append((k, [t]))
        position = t + 1
    return [DecodeRun(k, tuple(ts)) for k, ts in runs]


def plan_cost(runs: list[DecodeRun]) -> int:
    """Frames decoded by a plan (presentation-order upper bound; skipping non-reference
    frames between targets only lowers it)."""
    return sum(run.targets[-1] - run.keyframe + 1 for run in runs)


def full_scan_cost(targets, keyframes: np.ndarray) -> int:
    """Frames decoded by one sequential pass from the keyframe before the first target to the last."""
    targets = sorted(int(t) for t in targets)
    if not targets:
        return 0
    keyframes = np.asarray(keyframes, dtype=np.int64)
    i = int(np.searchsorted(keyframes, targets[0], side="right")) - 1
    return targets[-1] - int(keyframes[max(i, 0)]) + 1


def seek_each_cost(targets, keyframes: np.ndarray) -> int:
    """Frames decoded when every target is reached by seeking to its preceding keyframe."""
    targets = np.asarray(sorted({int(t) for t in targets}), dtype=np.int64)
    if not len(targets):
        return 0
    keyframes = np.asarray(keyframes, dtype=np.int64)
    i = np.maximum(np.searchsorted(keyframes, targets, side="right") - 1, 0)
    return int(np.sum(targets - keyframes[i] + 1))


class DecodeCounter:
    """Mutable tally of frames a decoder produced (``frames``), shared across passes."""

    def __init__(self) -> None:
        self.frames = 0


def _open_video(path: Path, *, fast: bool = False):
    import av

    container = av.open(str(path))
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    if fast:
        # Approximate pictures are fine for thumbnails: skip deblocking, and skip decoding the
        # frames nothing references (x264's non-reference B-frames; nothing in IPPP streams).
        stream.codec_context.options = {"skip_loop_filter": "all"}
        stream.codec_context.skip_frame = "NONREF"
    return container, stream


def _seek_keyframe(container, stream, index: StreamIndex, keyframe: int) -> None:
    # Seeking to the keyframe's pts (backward, keyframes only) lands on it; its dts would land
    # on the keyframe before.  The decoder is flushed by PyAV's seek.
    container.seek(int(index.pts[keyframe]), stream=stream, backward=True, any_frame=False)


def luma_thumbnail(frame, size: int = 32) -> np.ndarray:
    """``(size, size) uint8`` area-averaged luma of an ``av.VideoFrame`` without RGB conversion.

    Reads the Y plane in place (respecting its line_size stride), takes every s-th pixel so
    that at least 4 x ``size`` samples remain per axis, and resizes with cv2.INTER_AREA.
    """
    import cv2

    if frame.format.name in _Y_PLANE_FORMATS:
        plane = frame.planes[0]
        luma = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width]
    else:
        luma = frame.to_ndarray(format="gray")
    step = max(1, min(luma.shape) // (4 * size))
    return cv2.resize(luma[::step, ::step], (size, size), interpolation=cv2.INTER_AREA)


def scan_thumbnails(path: str | os.PathLike[str], index: StreamIndex, *, start: int, stop: int,
                    size: int = 32, max_candidates: int = 3000, fast: bool = True,
                    counter: DecodeCounter | None = None,
                    progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One sequential decoding pass over frames ``[start, stop)`` making luma thumbnails.

    Returns ``(frame_numbers (M,) int64 ascending, thumbnails (M, size, size) uint8)`` with
    ``M <= max_candidates``: when the pass produces more frames, every s-th is kept, so memory
    is bounded however long the range.  ``fast`` decodes reference frames only, without the
    loop filter (see ``_open_video``): the candidates are then the reference frames, and
    cheap to reach again in ``decode_frames``.  ``counter.frames`` grows by the frames decoded.
    """
    counter = counter if counter is not None else DecodeCounter()
    span = max(stop - start, 1)
    stride = -(-span // max_candidates)
    numbers = np.zeros(-(-span // stride) + 1, dtype=np.int64)
    thumbs = np.zeros((len(numbers), size, size), dtype=np.uint8)
    kept = seen = 0
    container, stream = _open_video(Path(path), fast=fast)
    try:
        if start > 0:
            _seek_keyframe(container, stream, index, index.keyframe_before(start))
        last = -1
        for frame in container.decode(stream):
            counter.frames += 1
            n = index.frame_number(frame.pts) if frame.pts is not None else last + 1
            last = n
            if n >= stop:
                break
            if n < start:
                continue
            if seen % stride == 0 and kept < len(numbers) and (kept == 0 or n > numbers[kept - 1]):
                numbers[kept] = n
                thumbs[kept] = luma_thumbnail(frame, size)
                kept += 1
            seen += 1
            if progress is not None and seen % 64 == 0:
                progress(min((n - start + 1) / span, 1.0))
            if n >= stop - 1:
                break
    finally:
        container.close()
    return numbers[:kept].copy(), thumbs[:kept].copy()


def decode_frames(path: str | os.PathLike[str], index: StreamIndex, targets, *,
                  counter: DecodeCounter | None = None,
                  progress: Callable[[float], None] | None = None):
    """Yield ``(frame_number, av.VideoFrame)`` for each target frame number, ascending.

    Follows ``plan_sparse``: seek to a keyframe only where that decodes fewer frames than
    continuing.  Between targets, packets of non-target frames are sent with
    skip_frame="NONREF", so frames nothing references are not decoded at all (the setting is
    read per packet, frame threads included).  ``counter.frames`` counts the frames the decoder
    produced.  Frames are yielded one at a time and not held.  A target the stream does not
    produce (past its end, or lost to corruption) is skipped.
    """
    counter = counter if counter is not None else DecodeCounter()
    wanted = sorted({int(t) for t in targets if 0 <= int(t) < index.frame_count})
    if not wanted:
        return
    target_set = set(wanted)
    done = 0
    container, stream = _open_video(Path(path))
    try:
        fresh = True
        for run in plan_sparse(wanted, index.seek_points):
            remaining = deque(run.targets)
            keyframe = run.keyframe
            while remaining:
                if not (fresh and keyframe == 0):
                    _seek_keyframe(container, stream, index, keyframe)
                fresh = False
                status = "eof"
                for status, number, frame in _decode_run(container, stream, index, target_set,
                                                         remaining, counter):
                    if frame is not None:
                        done += 1
                        yield number, frame
                        if progress is not None:
                            progress(done / len(wanted))
                if status == "overshoot" and keyframe > 0:
                    keyframe = index.keyframe_before(keyframe - 1)   # seek landed late
                else:
                    remaining.clear()
    finally:
        container.close()


def _decode_run(container, stream, index: StreamIndex, target_set: set[int], remaining: deque,
                counter: DecodeCounter):
    """Decode forward from the current position, yielding (status, number, frame|None).

    Pops targets from ``remaining`` as they come out; the last item's status is "done",
    "overshoot" (the first frame was already past the next target) or "eof".  Once the
    packets of all of ``remaining`` are sent, the decoder is drained instead of fed further
    packets (frame threads and B-frame reordering would otherwise decode a few frames past
    the last target for nothing); the next seek resets it.
    """
    ctx = stream.codec_context
    unsent = set(remaining)
    first = True
    last = -1

    def packets():
        for packet in container.demux(stream):
            if packet.pts is not None:
                number = index.frame_number(packet.pts)
                unsent.discard(number)
                ctx.skip_frame = "DEFAULT" if number in target_set else "NONREF"
            else:
                ctx.skip_frame = "DEFAULT"
            yield packet
            if not unsent:
                yield None                       # drain: the rest come out without more input
                return

    for packet in packets():
        for frame in ctx.decode(packet):
            counter.frames += 1
            n = index.frame_number(frame.pts) if frame.pts is not None else last + 1
            last = n
            if first:
                first = False
                if n > remaining[0]:
                    yield "overshoot", n, None
                    return
            while remaining and remaining[0] < n:
                remaining.popleft()
            if remaining and remaining[0] == n:
                remaining.popleft()
                yield "frame", n, frame
            if not remaining:
                yield "done", n, None
                return
    yield "eof", last, None


def frame_to_bgr(frame) -> np.ndarray:
    """``(H, W, 3) uint8`` BGR array of an ``av.VideoFrame`` (libswscale; honours full range)."""
    return frame.to_ndarray(format="bgr24")


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
