"""SAM click latency and bf16-vs-fp32 encoder cost (JSON lines).

    python bench/sam_click.py [--image ../shared/data/real/images/cju0qkwl35piu0993l0dewei2.jpg]
                              [--clicks 60] [--model vit_b]

Uses SAM with random weights (``sam_model_registry[model]()`` without a checkpoint: the
compute is the real model's; weights do not change the time).  Prints:

- ``{"metric": "click_latency", ...}``: median / p95 seconds of a decoder-only click
  (``SamSegmenter.predict`` on an embedding already in memory), and of a click that first
  loads the embedding from the on-disk cache (targets: median <= 0.15 s, p95 <= 0.3 s), with
  the engine's default single decoder thread and with torch's default thread count;
- ``{"metric": "embed_precision", ...}``: encoder seconds in fp32 and bf16 autocast, their
  ratio (target <= 0.5), and the mask IoU between the two embeddings' masks for the same
  clicks on the real image (random weights make this a sensitivity check, not accuracy).

Only three encoder runs (one bf16 warm-up, one fp32, one bf16): an fp32 vit_b embedding takes
~15-20 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from endolite.masks import array_iou, from_image_file  # noqa: E402
from endolite.media import read_image  # noqa: E402
from endolite.segment.sam import SamSegmenter, load_sam, resolve_precision  # noqa: E402

DEFAULT_IMAGE = ROOT.parent / "shared" / "data" / "real" / "images" / "cju0qkwl35piu0993l0dewei2.jpg"


def _clicks(image_size: tuple[int, int], count: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    height, width = image_size
    out = []
    for _ in range(count):
        n = int(rng.integers(1, 4))
        points = np.column_stack([rng.uniform(0, width, n), rng.uniform(0, height, n)])
        labels = np.array([1] + [int(v) for v in rng.integers(0, 2, n - 1)])
        out.append((points, labels))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--clicks", type=int, default=60)
    parser.add_argument("--model", default="vit_b", choices=("vit_b", "vit_l", "vit_h"))
    args = parser.parse_args(argv)
    import torch

    image = read_image(args.image)
    mask_path = args.image.parent.parent / "masks" / args.image.name
    truth = from_image_file(mask_path) if mask_path.is_file() else None
    model = load_sam(args.model, None)
    with tempfile.TemporaryDirectory() as tmp:
        engine = SamSegmenter(args.model, model=model, cache_dir=tmp, precision="auto")
        best = resolve_precision("auto")

        # --- encoder: bf16 warm-up, fp32, bf16 ------------------------------------------------
        timings: dict[str, float] = {}
        embeddings = {}
        plan = (["bf16", "fp32", "bf16"] if best == "bf16" else ["fp32"])
        for mode in plan:
            start = time.perf_counter()
            embeddings[mode] = engine.compute_embedding(image, key="bench", precision=mode)
            timings[mode] = time.perf_counter() - start
        record = {"metric": "embed_precision", "model": args.model, "image": args.image.name,
                  "image_size": list(image.shape[:2]), "auto_precision": best,
                  "threads": torch.get_num_threads(), "fp32_s": round(timings["fp32"], 2)}
        if "bf16" in embeddings:
            record["bf16_s"] = round(timings["bf16"], 2)
            record["bf16_over_fp32"] = round(timings["bf16"] / timings["fp32"], 3)
            # masks for the same prompts from both embeddings
            prompts = _clicks(image.shape[:2], 12, seed=1)
            if truth is not None:
                ys, xs = np.nonzero(truth)
                prompts.insert(0, (np.array([[xs.mean(), ys.mean()]]), np.array([1])))
            ious = []
            for points, labels in prompts:
                a, _ = engine.predict(embeddings["fp32"], points, labels)
                b, _ = engine.predict(embeddings["bf16"], points, labels)
                ious.extend(array_iou(x, y) for x, y in zip(a, b))
            feats_a = embeddings["fp32"].features.astype(np.float32)
            feats_b = embeddings["bf16"].features.astype(np.float32)
            record["mask_iou_bf16_vs_fp32_mean"] = round(float(np.mean(ious)), 4)
            record["mask_iou_bf16_vs_fp32_min"] = round(float(np.min(ious)), 4)
            record["embedding_rel_error"] = round(float(np.linalg.norm(feats_a - feats_b)
                                                        / max(np.linalg.norm(feats_a), 1e-9)), 4)
        print(json.dumps(record), flush=True)

        # --- clicks: decoder only, and cache load + decoder --------------------------------------
        embedding = embeddings[best]
        engine._store(embedding)              # what embed() writes on a cache miss
        clicks = _clicks(image.shape[:2], args.clicks)
        default_threads = torch.get_num_threads()
        for decoder_threads in (1, None):       # the engine's default, then torch's default
            clicker = SamSegmenter(args.model, model=model, cache_dir=tmp,
                                   decoder_threads=decoder_threads)
            clicker.predict(embedding, *clicks[0])  # warm-up
            in_memory, from_cache = [], []
            for points, labels in clicks:
                start = time.perf_counter()
                clicker.predict(embedding, points, labels)
                in_memory.append(time.perf_counter() - start)
                start = time.perf_counter()
                loaded = clicker.cached("bench")
                clicker.predict(loaded, points, labels)
                from_cache.append(time.perf_counter() - start)
            print(json.dumps({
                "metric": "click_latency", "model": args.model, "clicks": len(clicks),
                "decoder_threads": decoder_threads or default_threads,
                "image_size": list(image.shape[:2]),
                "decoder_median_s": round(float(np.median(in_memory)), 4),
                "decoder_p95_s": round(float(np.percentile(in_memory, 95)), 4),
                "cache_load_plus_decoder_median_s": round(float(np.median(from_cache)), 4),
                "cache_load_plus_decoder_p95_s": round(float(np.percentile(from_cache, 95)), 4),
                "target_median_s": 0.15, "target_p95_s": 0.3}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
