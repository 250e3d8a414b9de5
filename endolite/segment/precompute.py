"""Background precomputation of image embeddings, nearest frame first (engine-agnostic)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FrameToEmbed:
    """A frame for :func:`precompute`: ``key`` its sha256, ``index`` its position (frame number,
    for nearest-first order), ``load`` returns its ``(H, W, 3) uint8`` RGB pixels."""

    key: str
    index: int
    load: Callable[[], np.ndarray]


@dataclass(frozen=True)
class PrecomputeResult:
    computed: int
    cached: int
    failed: tuple[tuple[str, str], ...]      # (key, reason)
    stopped: bool = False


def nearest_first(frames: Iterable[FrameToEmbed], around: int | None) -> list[FrameToEmbed]:
    """Frames ordered by distance to frame number ``around`` (ties: earlier first); unchanged
    order when ``around`` is None."""
    items = list(frames)
    if around is None:
        return items
    return sorted(items, key=lambda f: (abs(f.index - around), f.index))


def precompute(engine: Any, frames: Iterable[FrameToEmbed], progress: Callable[[int, int], None] | None = None,
               *, around: int | None = None, should_stop: Callable[[], bool] | None = None
               ) -> PrecomputeResult:
    """Embed every frame not yet cached, nearest to ``around`` first (for a background job).

    ``engine`` needs ``embed`` and ``is_cached`` (engines without a cache, like the classical
    one, have nothing to precompute: every frame counts as cached).  ``progress(done, total)``
    is called after each frame; ``should_stop()`` returning True ends the loop early.  A frame
    that fails to load or embed is reported in ``failed`` and the loop goes on.
    """
    ordered = nearest_first(frames, around)
    total = len(ordered)
    is_cached = getattr(engine, "is_cached", None)
    computed = cached = 0
    failed: list[tuple[str, str]] = []
    for done, frame in enumerate(ordered, start=1):
        if should_stop is not None and should_stop():
            return PrecomputeResult(computed, cached, tuple(failed), stopped=True)
        if is_cached is None or is_cached(frame.key):
            cached += 1
        else:
            try:
                engine.embed(frame.load(), key=frame.key)
                computed += 1
            except Exception as exc:  # noqa: BLE001 - report and continue with the next frame
                failed.append((frame.key, str(exc) or type(exc).__name__))
        if progress is not None:
            progress(done, total)
    return PrecomputeResult(computed, cached, tuple(failed))
