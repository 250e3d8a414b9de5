"""Synthetic endoscopy-like test media with known ground truth (for tests and bench scripts).

``moving_disc_frames`` yields RGB frames ``(H, W, 3) uint8`` of a textured disc moving over a
textured background, with the disc's true mask ``(H, W) bool``; ``write_video`` encodes frames
with PyAV.  Nothing here reads real data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def _texture(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    tex = np.repeat(np.repeat(small, 8, axis=0), 8, axis=1)[:height, :width]
    return tex


def disc_mask(height: int, width: int, cx: float, cy: float, radius: float) -> np.ndarray:
    """``(H, W) bool`` disc centred at (x=cx, y=cy)."""
    yy, xx = np.mgrid[0:height, 0:width]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= radius ** 2


def disc_center(index: int, *, height: int, width: int, radius: float, speed: float = 3.0) -> tuple[float, float]:
    """(x, y) of the disc in frame ``index``: a smooth bounded path (Lissajous)."""
    span_x, span_y = width - 2 * radius - 4, height - 2 * radius - 4
    t = index * speed / max(span_x, 1)
    cx = radius + 2 + span_x * (0.5 + 0.5 * np.sin(t * 2.0))
    cy = radius + 2 + span_y * (0.5 + 0.5 * np.sin(t * 1.3 + 0.5))
    return float(cx), float(cy)


def moving_disc_frames(count: int, *, height: int = 144, width: int = 192, radius: float | None = None,
                       speed: float = 3.0, seed: int = 0, scene_cut_every: int = 0
                       ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``count`` (frame RGB uint8 (H, W, 3), true disc mask bool (H, W)) pairs.

    The disc carries its own texture (it moves with the disc, as tissue does), so optical flow
    sees the true motion inside the object, not only at its border.

    The background is a fixed texture (a new one after each scene cut when
    ``scene_cut_every`` > 0, so k-means diversity has real clusters to find).
    """
    radius = radius if radius is not None else min(height, width) / 6
    disc_tex = _texture(height, width, seed + 1000) // 2 + 100
    background = _texture(height, width, seed)
    for i in range(count):
        if scene_cut_every and i % scene_cut_every == 0:
            background = _texture(height, width, seed + 1 + i // scene_cut_every)
            background = (background.astype(np.int16) + (i // scene_cut_every) * 40) % 256
            background = background.astype(np.uint8)
        cx, cy = disc_center(i, height=height, width=width, radius=radius, speed=speed)
        mask = disc_mask(height, width, cx, cy, radius)
        frame = background.copy()
        moved = np.roll(disc_tex, (int(round(cy)), int(round(cx))), axis=(0, 1))  # texture moves with the disc
        frame[mask] = moved[mask]
        yield frame, mask


def write_video(path: str | os.PathLike[str], frames: Iterator[np.ndarray] | list[np.ndarray], *,
                fps: int = 25, codec: str = "libx264", gop: int | None = None,
                pix_fmt: str = "yuv420p", options: dict[str, str] | None = None) -> Path:
    """Encode RGB frames (H, W even for yuv420p) into ``path`` with PyAV; returns the path."""
    import av

    path = Path(path)
    iterator = iter(frames)
    first = next(iterator)
    height, width = first.shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        opts = dict(options or {})
        if codec == "libx264":
            opts.setdefault("preset", "ultrafast")
        if opts:
            stream.options = opts
        if gop:
            stream.codec_context.gop_size = gop
        for array in [first, *iterator] if not isinstance(frames, list) else frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_disc_video(path: str | os.PathLike[str], count: int, *, height: int = 144, width: int = 192,
                     fps: int = 25, gop: int | None = None, codec: str = "libx264",
                     scene_cut_every: int = 0, seed: int = 0) -> Path:
    """A moving-disc video of ``count`` frames (see moving_disc_frames)."""
    frames = (f for f, _ in moving_disc_frames(count, height=height, width=width,
                                                 scene_cut_every=scene_cut_every, seed=seed))
    return write_video(path, frames, fps=fps, codec=codec, gop=gop)
