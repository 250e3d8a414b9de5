"""Random access to the pictures of a sequence for frame-to-frame work (propagation).

A sequence is a video (index = frame number, every decoded frame, stored or not) or an image
group (index = the group's frame_number).  Getters return ``(H, W, 3) uint8`` RGB or None past
either end, and are cheap when called with consecutive indices in either direction.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np

from endolite import media
from endolite.config import Settings
from endolite.records import Frame


class VideoFrames:
    """``get(i)`` for a video file: decodes chunks of ``chunk`` frames around the request
    (ahead when walking forward, behind when walking backward) and keeps the last few chunks."""

    def __init__(self, path: str | Path, *, chunk: int = 32, keep_chunks: int = 2) -> None:
        self.path = Path(path)
        self.index = media.index_video(self.path)
        self.chunk = chunk
        self.keep = keep_chunks * chunk
        self.cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self.last: int | None = None
        self.decoded = 0

    def __len__(self) -> int:
        return self.index.frame_count

    def __call__(self, i: int) -> np.ndarray | None:
        if not 0 <= i < self.index.frame_count:
            return None
        if i not in self.cache:
            backward = self.last is not None and i < self.last
            lo = max(0, i - self.chunk + 1) if backward else i
            hi = i + 1 if backward else min(self.index.frame_count, i + self.chunk)
            counter = media.DecodeCounter()
            for number, frame in media.decode_frames(self.path, self.index, range(lo, hi), counter=counter):
                self.cache[number] = frame.to_ndarray(format="rgb24")
            self.decoded += counter.frames
            while len(self.cache) > self.keep:
                self.cache.popitem(last=False)
        self.last = i
        return self.cache.get(i)


class GroupFrames:
    """``get(i)`` over an image group's frames by frame_number (files read on demand)."""

    def __init__(self, settings: Settings, frames: list[Frame]) -> None:
        self.settings = settings
        self.by_number = {f.frame_number: f for f in frames}

    def __len__(self) -> int:
        return len(self.by_number)

    def __call__(self, i: int) -> np.ndarray | None:
        frame = self.by_number.get(i)
        return None if frame is None else media.read_image(self.settings.absolute(frame.path))
