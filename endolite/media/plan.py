"""Sparse decoding plans (pure): which keyframes to seek to so that a set of target frame
numbers is decoded with the fewest frames, and what the alternatives would cost."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
