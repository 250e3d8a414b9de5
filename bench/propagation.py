"""Mask propagation accuracy and speed on real sequences (one JSON line per sequence).

    python bench/propagation.py ../shared/data/real/sequences/cvc_seq01 ../shared/data/real/sequences/cvc_seq03

Each SEQUENCE_DIR holds ``images/<n>.<ext>`` and ``masks/<n>.<ext>`` (same names, sorted by the
number).  Printed per sequence:

- ``one_step_iou``: mean IoU of frame i's ground truth carried to frame i+1 (endolite.propagate)
  against frame i+1's ground truth; ``copy_one_step_iou`` copies the mask unchanged and
  ``plain_flow_one_step_iou`` warps it with plain DIS flow (the references, measured here).
- ``chained_iou`` / ``copy_chained_iou``: frame 0's mask carried through the whole sequence
  (no stop on flags), mean IoU over frames 1..n-1; after a lost step this is mostly luck.
- ``tracked_frames`` / ``tracked_iou`` / ``copy_tracked_iou``: the same run as the product does
  it (stopping after the first flagged frame): how many frames it made and their mean IoU.
- ``flagged``: steps below the confidence threshold; ``unflagged_one_step_iou`` their complement.
- ``fps`` (native size), ``fps_1280x1024`` and ``fps_720x576`` (frames and masks resized),
  chained, no stop, median of 5 runs; ``plain_flow_fps_720x576`` is the plain-flow reference timed in the same run
  (the machine may be shared: compare the two, not runs on different days).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from endolite.masks import array_iou, from_image_file  # noqa: E402
from endolite.media import read_image  # noqa: E402
from endolite.propagate import PropagationOptions, propagate, warp_step  # noqa: E402


REPEATS = 5   # speeds are medians over this many runs (the machine may be shared)


def _number(path: Path) -> int:
    found = re.findall(r"\d+", path.stem)
    return int(found[-1]) if found else 0


def load_sequence(directory: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    images = sorted((p for p in (directory / "images").iterdir() if p.is_file()), key=_number)
    frames, masks = [], []
    for image in images:
        candidates = sorted((directory / "masks").glob(image.stem + ".*"))
        if not candidates:
            continue
        frames.append(read_image(image))
        masks.append(from_image_file(candidates[0]))
    return frames, masks


def plain_flow_step(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The reference: DIS (medium) flow at half resolution from b to a, mask backward-warped."""
    import cv2

    ga = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    h, w = ga.shape
    small = (w // 2, h // 2)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = dis.calc(cv2.resize(gb, small, interpolation=cv2.INTER_AREA),
                    cv2.resize(ga, small, interpolation=cv2.INTER_AREA), None)
    flow = cv2.resize(flow, (w, h)) * np.float32([w / small[0], h / small[1]])
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    warped = cv2.remap(mask.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR)
    return warped >= 0.5


def fps_at(frames: list[np.ndarray], masks: list[np.ndarray], size: tuple[int, int] | None,
           options: PropagationOptions) -> float:
    import cv2

    if size is not None:
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames]
        masks = [cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0 for m in masks]
    rates = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        out = propagate(frames, 0, masks[0], options=options)
        rates.append(len(out) / (time.perf_counter() - start))
    return float(np.median(rates))


def plain_fps_at(frames: list[np.ndarray], masks: list[np.ndarray], size: tuple[int, int]) -> float:
    """The reference speed: chained plain_flow_step on the resized frames (same machine, same run)."""
    import cv2

    frames = [cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames]
    rates = []
    for _ in range(REPEATS):
        current = cv2.resize(masks[0].astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        start = time.perf_counter()
        for i in range(len(frames) - 1):
            current = plain_flow_step(frames[i], frames[i + 1], current)
        rates.append((len(frames) - 1) / (time.perf_counter() - start))
    return float(np.median(rates))


def bench_sequence(directory: Path, options: PropagationOptions) -> dict:
    frames, masks = load_sequence(directory)
    n = len(frames)
    steps = [warp_step(frames[i], frames[i + 1], masks[i], options=options) for i in range(n - 1)]
    one = [array_iou(s.mask, masks[i + 1]) for i, s in enumerate(steps)]
    copy_one = [array_iou(masks[i], masks[i + 1]) for i in range(n - 1)]
    plain = [array_iou(plain_flow_step(frames[i], frames[i + 1], masks[i]), masks[i + 1])
             for i in range(n - 1)]
    flagged = [s.confidence < options.min_confidence for s in steps]
    free = dataclasses.replace(options, stop_when_flagged=False)
    chained = propagate(frames, 0, masks[0], options=free)
    chained_iou = [array_iou(p.mask, masks[p.frame_index]) for p in chained]
    chained_iou += [0.0] * (n - 1 - len(chained_iou))
    copy_chained = [array_iou(masks[0], masks[i]) for i in range(1, n)]
    tracked = propagate(frames, 0, masks[0], options=options)     # as the product runs: stops
    tracked_iou = [array_iou(p.mask, masks[p.frame_index]) for p in tracked]   # at the first flag
    unflagged = [v for v, f in zip(one, flagged) if not f]
    return {
        "sequence": directory.name,
        "frames": n,
        "size": list(frames[0].shape[:2]),
        "one_step_iou": round(float(np.mean(one)), 3),
        "copy_one_step_iou": round(float(np.mean(copy_one)), 3),
        "plain_flow_one_step_iou": round(float(np.mean(plain)), 3),
        "one_step_vs_plain_flow": round(float(np.mean(one) / max(np.mean(plain), 1e-9)), 3),
        "chained_iou": round(float(np.mean(chained_iou)), 3),
        "copy_chained_iou": round(float(np.mean(copy_chained)), 3),
        "tracked_frames": len(tracked),
        "tracked_iou": round(float(np.mean(tracked_iou)), 3),
        "copy_tracked_iou": round(float(np.mean(copy_chained[:len(tracked)])), 3),
        "flagged": f"{sum(flagged)}/{len(flagged)}",
        "unflagged_one_step_iou": round(float(np.mean(unflagged)), 3) if unflagged else None,
        "flagged_one_step_iou": (round(float(np.mean([v for v, f in zip(one, flagged) if f])), 3)
                                 if any(flagged) else None),
        "fps": round(fps_at(frames, masks, None, free), 1),
        "fps_1280x1024": round(fps_at(frames, masks, (1280, 1024), free), 1),
        "fps_720x576": round(fps_at(frames, masks, (720, 576), free), 1),
        "plain_flow_fps_720x576": round(plain_fps_at(frames, masks, (720, 576)), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sequences", nargs="+", type=Path, metavar="SEQUENCE_DIR")
    parser.add_argument("--no-global-motion", action="store_true")
    parser.add_argument("--no-anchor", action="store_true")
    parser.add_argument("--boundary-sigma", type=float, default=PropagationOptions.boundary_sigma,
                        help="px; 0 turns the boundary-aware flow off")
    args = parser.parse_args(argv)
    import cv2

    cv2.setNumThreads(2)
    options = PropagationOptions(global_motion=not args.no_global_motion, anchor=not args.no_anchor,
                                 boundary_sigma=args.boundary_sigma)
    for directory in args.sequences:
        print(json.dumps(bench_sequence(directory, options)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
