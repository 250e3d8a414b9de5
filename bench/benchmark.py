"""Benchmark report build vs a plain pairwise pycocotools loop, on synthetic RLE masks.

Data: 5 annotators x 2,000 frames x 3 objects per frame at 1280x1024 (W x H): random ellipses
(gold), perturbed per annotator (shifted, rescaled, sometimes dropped, relabelled or with an
extra object).  RLEs are built once up front, analytically per column (no full-frame arrays),
and are not timed.

Timed (median of ``--repeat`` runs, same data, same process):
- ``report``: ``endolite.benchmark.build_report`` (IoU, matching, Encord scores, aggregation);
- ``pairwise_loop``: the reference, a plain Python loop calling ``pycocotools.mask.iou`` once
  per (annotator object, gold object) pair -- IoU only, no matching or aggregation.

Prints one JSON line per measurement and a final line with the ratio pairwise_loop / report.
Run: ``python bench/benchmark.py`` (``--frames 200`` for a quick look).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from endolite.benchmark import BenchObject, FrameInput, build_report  # noqa: E402

LABELS = ("polyp", "adenoma", "bleeding")


def ellipse_rle(height: int, width: int, cx: float, cy: float, ax: float, ay: float) -> dict:
    """COCO RLE of the axis-aligned ellipse ((x-cx)/ax)^2 + ((y-cy)/ay)^2 <= 1 (pixel indices,
    x = column, y = row), built per column without a full-frame array."""
    x = np.arange(width, dtype=np.float64)
    t = 1.0 - ((x - cx) / ax) ** 2
    dy = ay * np.sqrt(np.clip(t, 0.0, None))
    y0 = np.clip(np.ceil(cy - dy), 0, height).astype(np.int64)
    y1 = np.clip(np.floor(cy + dy) + 1, 0, height).astype(np.int64)
    cols = np.flatnonzero((t >= 0) & (y1 > y0))
    starts = cols * height + y0[cols]
    ends = cols * height + y1[cols]
    bounds = np.empty(2 * len(cols), dtype=np.int64)
    bounds[0::2], bounds[1::2] = starts, ends
    if len(cols) > 1:
        touching = np.flatnonzero(ends[:-1] == starts[1:])   # runs continuing into the next column
        keep = np.ones(len(bounds), dtype=bool)
        keep[2 * touching + 1] = False
        keep[2 * touching + 2] = False
        bounds = bounds[keep]
    counts = np.diff(np.concatenate([[0], bounds, [height * width]]))
    return mask_utils.frPyObjects({"size": [height, width], "counts": counts.tolist()}, height, width)


def make_data(*, n_frames: int, n_annotators: int, n_objects: int, height: int, width: int,
              seed: int = 0) -> list[FrameInput]:
    rng = np.random.default_rng(seed)
    frames = []
    next_id = 0
    for f in range(n_frames):
        gold_params = []
        for _ in range(n_objects):
            ax, ay = rng.uniform(30, 160, size=2)
            cx, cy = rng.uniform(ax, width - ax), rng.uniform(ay, height - ay)
            gold_params.append((cx, cy, ax, ay, LABELS[rng.integers(len(LABELS))]))
        gold = []
        for cx, cy, ax, ay, label in gold_params:
            gold.append(BenchObject(next_id, label, "mask", rle=ellipse_rle(height, width, cx, cy, ax, ay)))
            next_id += 1
        annotations = {}
        for a in range(n_annotators):
            objs = []
            for cx, cy, ax, ay, label in gold_params:
                u = rng.random()
                if u < 0.05:
                    continue                                  # missed
                if u < 0.10:
                    label = LABELS[(LABELS.index(label) + 1) % len(LABELS)]   # wrong label
                sx, sy = rng.normal(0, 4 + 3 * a, size=2)
                kx, ky = rng.uniform(0.85, 1.15, size=2)
                objs.append(BenchObject(next_id, label, "mask",
                                        rle=ellipse_rle(height, width, cx + sx, cy + sy, ax * kx, ay * ky)))
                next_id += 1
            if rng.random() < 0.05:                           # an extra object
                ax, ay = rng.uniform(20, 60, size=2)
                objs.append(BenchObject(next_id, LABELS[0], "mask", rle=ellipse_rle(
                    height, width, rng.uniform(ax, width - ax), rng.uniform(ay, height - ay), ax, ay)))
                next_id += 1
            annotations[f"annotator_{a}"] = objs
        frames.append(FrameInput(f, f"unit_{f // 100:03d}/frame_{f:05d}.jpg", gold, annotations,
                                 task_id=f // 100))
    return frames


def pairwise_loop(frames: list[FrameInput]) -> float:
    total = 0.0
    for frame in frames:
        gold = [g.rle for g in frame.gold]
        for objs in frame.annotations.values():
            for obj in objs:
                for g in gold:
                    total += float(mask_utils.iou([obj.rle], [g], [0])[0][0])
    return total


def timed(fn, repeat: int) -> tuple[float, list[float], object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--annotators", type=int, default=5)
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    frames = make_data(n_frames=args.frames, n_annotators=args.annotators, n_objects=args.objects,
                       height=args.height, width=args.width)
    n_objects = sum(len(f.gold) + sum(len(o) for o in f.annotations.values()) for f in frames)
    print(json.dumps({"step": "setup", "frames": args.frames, "annotators": args.annotators,
                      "objects": n_objects, "size_hw": [args.height, args.width],
                      "seconds": round(time.perf_counter() - t0, 3)}), flush=True)

    rep_s, rep_all, report = timed(lambda: build_report(frames, labels=LABELS), args.repeat)
    print(json.dumps({"step": "report", "median_s": round(rep_s, 4),
                      "runs_s": [round(t, 4) for t in rep_all],
                      "iou_rows": len(report.iou_rows), "frame_rows": len(report.frames)}), flush=True)
    csv_s, _, _ = timed(report.csvs, args.repeat)
    dict_s, _, _ = timed(report.to_dict, args.repeat)
    print(json.dumps({"step": "render", "csvs_median_s": round(csv_s, 4),
                      "to_dict_median_s": round(dict_s, 4)}), flush=True)
    loop_s, loop_all, _ = timed(lambda: pairwise_loop(frames), args.repeat)
    pairs = sum(len(f.gold) * len(o) for f in frames for o in f.annotations.values())
    print(json.dumps({"step": "pairwise_loop", "median_s": round(loop_s, 4),
                      "runs_s": [round(t, 4) for t in loop_all], "pairs": pairs}), flush=True)
    print(json.dumps({"ratio_loop_over_report": round(loop_s / rep_s, 2),
                      "report_under_10s": rep_s < 10.0}), flush=True)


if __name__ == "__main__":
    main()
