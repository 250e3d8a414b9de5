"""The sequence loop: ``iter_propagate`` / ``propagate`` and the record of each frame they make.

The next frame's decoding, preparation and plain flow run in a worker thread while the current
mask is finished; frame getters are therefore called from that one thread, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from endolite.errors import InvalidInput
from endolite.propagate.anchor import _Anchor
from endolite.propagate.flow import dense_flow, make_flow
from endolite.propagate.options import Direction, PropagationOptions
from endolite.propagate.prepare import _prepare, _Prepared
from endolite.propagate.refine import Refiner
from endolite.propagate.step import warp_step

FrameSource = Sequence[np.ndarray] | Callable[[int], "np.ndarray | None"]
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True, eq=False)
class PropagatedMask:
    """One propagated frame: ``mask`` ``(H, W) bool`` of frame ``frame_index``.

    ``confidence`` in [0, 1] rates the step into this frame (not cumulative); ``flagged`` is
    ``confidence < min_confidence``; ``reason`` says why ("appearance", "area", "left view",
    "empty") when flagged; ``refined`` is True when the refine hook replaced the warped mask;
    ``hypothesis`` is "flow" or "global+flow".
    """

    frame_index: int
    mask: np.ndarray
    confidence: float
    flagged: bool
    reason: str = ""
    refined: bool = False
    hypothesis: str = "flow"
    details: dict[str, float] = field(default_factory=dict)


def _frame_getter(frames: FrameSource) -> Callable[[int], np.ndarray | None]:
    if callable(frames) and not isinstance(frames, (list, tuple, np.ndarray)):
        def get(index: int) -> np.ndarray | None:
            if index < 0:
                return None
            try:
                return frames(index)
            except IndexError:
                return None
        return get

    def get_seq(index: int) -> np.ndarray | None:
        return frames[index] if 0 <= index < len(frames) else None
    return get_seq


def iter_propagate(frames: FrameSource, start_index: int, mask: np.ndarray, *,
                   direction: Direction | str = Direction.FORWARD, stop_at: int | None = None,
                   refine: Refiner | None = None, options: PropagationOptions = PropagationOptions(),
                   ) -> Iterator[PropagatedMask]:
    """Generator form of :func:`propagate` (yields each frame as soon as it is done)."""
    direction = Direction(direction)
    step = 1 if direction is Direction.FORWARD else -1
    if stop_at is not None and (stop_at - start_index) * step < 0:
        raise InvalidInput(f"stop_at {stop_at} lies {'before' if step > 0 else 'after'} the start "
                           f"frame {start_index} for direction {direction}")
    get = _frame_getter(frames)
    first = get(start_index)
    if first is None:
        raise InvalidInput(f"start frame {start_index} does not exist")
    current = np.asarray(mask, dtype=bool)
    if current.shape != first.shape[:2]:
        raise InvalidInput(f"mask is {current.shape}, frames are {first.shape[:2]}")
    if not current.any():
        raise InvalidInput("cannot propagate an empty mask: draw or segment the object first")
    prepared = _prepare(first, options.flow_long_side)
    dis = make_flow(options, long_side=max(prepared.grey.shape))
    anchor = _Anchor(prepared, current) if options.anchor else None
    fine = ((make_flow(replace(options, finest_scale=0)), make_flow(replace(options, finest_scale=1)))
            if options.anchor else None)
    # The next frame's decoding, preparation and plain flow do not depend on the mask: a worker
    # thread does them while this one finishes the current frame (OpenCV releases the GIL).
    ahead = make_flow(options, long_side=max(prepared.grey.shape))

    def load(index: int, previous: _Prepared) -> tuple[np.ndarray, _Prepared, np.ndarray] | None:
        frame = get(index)
        if frame is None:
            return None
        target = _prepare(frame, options.flow_long_side)
        if target.full_shape != previous.full_shape:
            raise InvalidInput(f"frame {index} is {target.full_shape[::-1]}, the sequence "
                               f"{previous.full_shape[::-1]} (width x height)")
        return frame, target, dense_flow(ahead, target.grey, previous.grey)

    def last(index: int) -> bool:
        return stop_at is not None and index == stop_at

    index = start_index
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="propagate")
    try:
        pending = None if last(index) else pool.submit(load, index + step, prepared)
        while pending is not None:
            index += step
            loaded = pending.result()
            if loaded is None:
                return
            frame, target, flow = loaded
            pending = None if last(index) else pool.submit(load, index + step, target)
            result = warp_step(prepared, target, current, options=options, dis=dis,
                               full=anchor is None, flow=flow)
            if anchor is not None:
                out_mask = anchor.advance(result, prepared, current, target, dis=fine, options=options)
            else:
                out_mask = result.mask
            refined = False
            if refine is not None and out_mask.any():
                better = refine(index, frame, out_mask)
                if better is not None and np.asarray(better).shape == out_mask.shape:
                    out_mask, refined = np.asarray(better, dtype=bool), True
            flagged = result.confidence < options.min_confidence or not out_mask.any()
            yield PropagatedMask(index, out_mask, result.confidence, flagged,
                                 result.reason or ("empty" if not out_mask.any() else ""), refined,
                                 result.hypothesis, result.details)
            if not out_mask.any() or (flagged and options.stop_when_flagged):
                return
            if anchor is not None and (refined or flagged):
                anchor = _Anchor(target, out_mask)       # a new mask the anchor does not explain
            current, prepared = out_mask, target
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def propagate(frames: FrameSource, start_index: int, mask: np.ndarray, *,
              direction: Direction | str = Direction.FORWARD, stop_at: int | None = None,
              refine: Refiner | None = None, progress: Progress | None = None,
              options: PropagationOptions = PropagationOptions()) -> list[PropagatedMask]:
    """Carry ``mask`` (``(H, W) bool`` of frame ``start_index``) through ``frames``.

    ``frames`` is a sequence of ``(H, W, 3) uint8`` RGB arrays or a callable ``index -> frame``
    returning None (or raising IndexError) past the end.  ``direction`` "forward" visits
    ``start_index + 1, + 2, ...``, "backward" ``start_index - 1, ...``; ``stop_at`` is the last
    frame index to produce (inclusive), else the sequence end.  The start frame itself is not in
    the result.  With ``options.stop_when_flagged`` (default) the loop ends after the first
    flagged frame, which is included so the page can show where tracking was lost.
    ``progress(done, total)`` is called after every frame (total None when unknown).
    """
    total = None
    if stop_at is not None:
        total = abs(stop_at - start_index)
    elif not callable(frames) or isinstance(frames, (list, tuple, np.ndarray)):
        total = (len(frames) - 1 - start_index) if Direction(direction) is Direction.FORWARD else start_index
    results: list[PropagatedMask] = []
    for item in iter_propagate(frames, start_index, mask, direction=direction, stop_at=stop_at,
                               refine=refine, options=options):
        results.append(item)
        if progress is not None:
            progress(len(results), total)
    return results
