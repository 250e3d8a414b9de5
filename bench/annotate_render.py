"""Server time to open a frame with 20 masks on the annotation page (target < 0.5 s at 1280x1024).

Prints JSON lines: the median seconds of (query masks + decode + overlay), the median of only
reading the frame image (the reference measured in the same run) and their ratio.
Usage: python bench/annotate_render.py [--masks 20] [--repeat 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from endolite import annotate
from endolite.config import Settings
from endolite.ingest import ingest_paths
from endolite.media import read_image, write_image_atomic
from endolite.storage import annotations, connect, labels
from endolite.synthetic import disc_mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--masks", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1024)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.resolve(Path(tmp) / "data")
        con = connect(settings)
        image = rng.integers(0, 255, size=(args.height, args.width, 3), dtype=np.uint8)
        write_image_atomic(Path(tmp) / "frame.jpg", image)
        [result] = ingest_paths(con, settings, [Path(tmp) / "frame.jpg"], user="bench")
        frame_id = result.frame_ids[0]
        names = [labels.add(con, f"label{i}").name for i in range(4)]
        for i in range(args.masks):
            cx, cy = rng.uniform(100, args.width - 100), rng.uniform(100, args.height - 100)
            mask = disc_mask(args.height, args.width, cx, cy, rng.uniform(30, 150))
            annotate.save_mask(con, settings, annotate.NewMask(frame_id=frame_id, mask=mask),
                               label=names[i % 4], annotator="bench")
        from endolite.storage import media

        frame = media.get_frame(con, frame_id)
        full, ref = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            shown = annotations.masks_of(con, frame_ids=[frame_id])
            out = annotate.render_frame(settings, frame, shown)
            full.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            read_image(settings.absolute(frame.path))
            ref.append(time.perf_counter() - t0)
        assert out.shape == (args.height, args.width, 3) and len(shown) == args.masks
        med, ref_med = statistics.median(full), statistics.median(ref)
        print(json.dumps({"measure": "open_frame_with_masks", "masks": args.masks,
                          "size": f"{args.width}x{args.height}", "median_s": round(med, 4),
                          "p95_s": round(sorted(full)[int(0.95 * (len(full) - 1))], 4),
                          "target_s": 0.5, "within_target": med < 0.5}))
        print(json.dumps({"measure": "open_frame_vs_image_read", "image_read_median_s": round(ref_med, 4),
                          "ratio": round(med / ref_med, 2)}))


if __name__ == "__main__":
    main()
