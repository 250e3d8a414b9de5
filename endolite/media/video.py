"""Videos, demux only: ``probe`` (header facts, proof that a frame decodes) and ``index_video``
(every packet's pts and keyframe flag) -> ``StreamIndex``.

Frame numbers are presentation-order indices from 0: the rank of a frame's pts among the
pts of all the stream's packets, read in one demux pass (no decoding).  Ranks stay right for
B-frames, variable frame rates and pts jitter (e.g. 0, 513, 1024, 1537 at 512 ticks/frame),
where pts * time_base * fps rounding would collide or skip.  Timestamps are
(pts - first pts) * time_base seconds.
"""

from __future__ import annotations

import os
from array import array
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from endolite.errors import InvalidInput


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
