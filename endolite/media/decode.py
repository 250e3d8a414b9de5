"""Decoding with PyAV: thumbnails in one sequential pass, and target frames by a sparse plan.

Frame numbers come from a ``StreamIndex`` (see ``endolite.media.video``).  Decoders run with
thread_type "AUTO" (frame threads; PyAV's default threading does nothing for x264 streams).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

from endolite.media.plan import plan_sparse
from endolite.media.video import StreamIndex

_Y_PLANE_FORMATS = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p",
                    "yuv440p", "yuvj440p", "yuv411p", "yuv410p", "nv12", "nv21", "gray"}


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
