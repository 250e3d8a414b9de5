"""Predicted segments: a label's probability track along a video -> ``[start, end)`` segments.

Policy (pure, no I/O):

1. *Smoothing*: a centred moving average over ``window`` samples (odd windows are centred
   exactly; at the ends the average is over the samples that exist, so the track keeps its
   length and the ends are not pulled towards 0).
2. *Hysteresis*: a segment starts at a sample whose smoothed probability is ``>= high``, and
   goes on while the smoothed probability stays ``>= low`` (``low <= high``); it ends at the
   first sample below ``low`` (or at the end of the track).  A short dip between ``low`` and
   ``high`` therefore does not split a segment, and a weak bump that never reaches ``high``
   makes none.
3. *Minimum length*: segments shorter than ``min_frames`` video frames are dropped.

The track is sampled every ``every``-th video frame: sample ``i`` is at frame
``frame_numbers[i]`` (default ``i * every``) and stands for the frames up to the next sample.
A segment covering samples ``i..j`` is ``[frame_numbers[i], frame_numbers[j] + every)``
video frames (end exclusive, like every segment in endolite), with the end clipped to
``total_frames`` when given.  Its ``mean_probability`` is the mean of the *raw* (unsmoothed)
probabilities of its samples.  An empty track gives no segments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from endolite.errors import InvalidInput


@dataclass(frozen=True)
class SegmentOptions:
    """``window``: moving-average length in samples (1 = no smoothing); ``high`` / ``low``: the
    enter / stay thresholds on the smoothed probability; ``min_frames``: shortest segment kept,
    in video frames."""

    window: int = 5
    high: float = 0.6
    low: float = 0.4
    min_frames: int = 1


@dataclass(frozen=True)
class FoundSegment:
    """``[start, end)`` in video frame numbers and the mean raw probability of its samples."""

    start: int
    end: int
    mean_probability: float


def smooth(probs: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of a ``(N,)`` track over ``window`` samples; float64 ``(N,)``.
    At the ends the mean is over the samples inside the track."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if window < 1:
        raise InvalidInput(f"window: must be at least 1, got {window}")
    if window == 1 or p.size == 0:
        return p.copy()
    kernel = np.ones(window)
    before = (window - 1) // 2
    after = window - 1 - before
    padded = np.concatenate([np.zeros(before), p, np.zeros(after)])
    counts = np.concatenate([np.zeros(before), np.ones(p.size), np.zeros(after)])
    sums = np.convolve(padded, kernel, mode="valid")
    n = np.convolve(counts, kernel, mode="valid")
    return sums / n


def hysteresis(values: np.ndarray, *, high: float, low: float) -> list[tuple[int, int]]:
    """Runs ``[i, j)`` of sample indices: enter at ``>= high``, stay while ``>= low``."""
    if low > high:
        raise InvalidInput(f"thresholds: low ({low}) must not exceed high ({high})")
    runs: list[tuple[int, int]] = []
    start = None
    for i, v in enumerate(np.asarray(values, dtype=np.float64).reshape(-1)):
        if start is None:
            if v >= high:
                start = i
        elif v < low:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(values)))
    return runs


def find_segments(probs: np.ndarray, *, every: int = 1, frame_numbers: np.ndarray | None = None,
                  total_frames: int | None = None,
                  options: SegmentOptions = SegmentOptions()) -> list[FoundSegment]:
    """Segments of one label's track (see the module docstring for the policy).

    ``probs``: ``(N,)`` probabilities in [0, 1], one per sample; ``frame_numbers``: int ``(N,)``
    increasing video frame numbers of the samples (default ``arange(N) * every``);
    ``total_frames``: the video's frame count (ends are clipped to it).  Returns segments in
    frame order.
    """
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if every < 1:
        raise InvalidInput(f"every: must be at least 1, got {every}")
    nums = (np.arange(p.size, dtype=np.int64) * every if frame_numbers is None
            else np.asarray(frame_numbers, dtype=np.int64).reshape(-1))
    if nums.size != p.size:
        raise InvalidInput(f"frame_numbers: {nums.size} values for {p.size} probabilities")
    if p.size == 0:
        return []
    smoothed = smooth(p, options.window)
    out: list[FoundSegment] = []
    for i, j in hysteresis(smoothed, high=options.high, low=options.low):
        start = int(nums[i])
        end = int(nums[j - 1]) + every
        if total_frames is not None:
            end = min(end, int(total_frames))
        if end - start < options.min_frames or end <= start:
            continue
        out.append(FoundSegment(start=start, end=end, mean_probability=float(p[i:j].mean())))
    return out
