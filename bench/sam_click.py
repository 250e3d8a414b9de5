"""SAM click latency and bf16-vs-fp32 encoder cost (JSON lines).

    python bench/sam_click.py [--image ../shared/data/real/images/cju0qkwl35piu0993l0dewei2.jpg]
                              [--clicks 60] [--model vit_b] [--cache-dir data/cache]

Uses SAM with random weights (``sam_model_registry[model]()`` without a checkpoint: the
compute is the real model's; weights do not change the time).  Prints:

- ``{"metric": "click_latency", ...}``: median / p95 seconds of a decoder-only click
  (``SamSegmenter.predict`` on an embedding already in memory), and of a click that first
  loads the embedding from the on-disk cache (targets: median <= 0.15 s, p95 <= 0.3 s), with
  the engine's default single decoder thread and with torch's default thread count, next to
  the same clicks through segment-anything's ``SamPredictor.predict`` on one thread (the
  reference: ``decoder_over_segment_anything``);
- ``{"metric": "precision_calibration", ...}``: what "auto" chose on this machine and why
  (:mod:`endolite.segment.precision`: both precisions timed on the image, fastest of 2 runs each,
  masks of 6 probe prompts compared), where it is stored, the seconds it took, the CPU's
  bfloat16-related flags, and whether a second engine reused the stored result (``reused``,
  ``reuse_s``).  With ``--cache-dir`` (a data directory's ``cache``) a calibration already
  stored there is reused and printed; by default a temporary folder measures afresh;
- ``{"metric": "embed_precision", ...}``: encoder seconds of the plain float32 encoder in this
  process with glibc's default allocator (``plain_fp32_s``, the reference, median of 2 runs
  after a warm-up; ``plain_fp32_runs_s`` all three), then, after
  :func:`endolite.allocator.keep_large_allocations`, the engine's float32 and bfloat16
  (endolite.segment.sam_fast) embeddings (medians of 2 runs after a warm-up), the calibrated ``auto`` choice and its time
  over the reference (``auto_over_plain_fp32``, target <= 0.3, issue #11), bf16 over tuned fp32, and the
  mask IoU between the fp32 and bf16 embeddings' masks for the same clicks on the real image
  (random weights make this a sensitivity check, not accuracy).

Thirteen encoder runs (~2 minutes for vit_b on 2 CPU cores).  Run it as its own process: the
allocator settings cannot be undone once made.
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

from endolite.allocator import keep_large_allocations  # noqa: E402
from endolite.masks import array_iou, from_image_file  # noqa: E402
from endolite.media import read_image  # noqa: E402
from endolite.segment.precision import calibration_path  # noqa: E402
from endolite.segment.sam import SamSegmenter, load_sam  # noqa: E402

DEFAULT_IMAGE = ROOT.parent / "shared" / "data" / "real" / "images" / "cju0qkwl35piu0993l0dewei2.jpg"


def plain_fp32_seconds(model, engine: SamSegmenter, image: np.ndarray) -> float:
    """One float32 encoder run as segment-anything does it (the reference; no allocator
    settings, so call it before anything calls keep_large_allocations)."""
    import torch
    from segment_anything.utils.transforms import ResizeLongestSide

    resized = ResizeLongestSide(engine.img_size).apply_image(image)
    tensor = torch.as_tensor(resized).permute(2, 0, 1).contiguous()[None].float()
    start = time.perf_counter()
    with torch.inference_mode():
        model.image_encoder(model.preprocess(tensor))
    return time.perf_counter() - start


def reference_click_seconds(model, embedding, clicks) -> float:
    """Median seconds of the same clicks through segment-anything's own ``SamPredictor.predict``
    (multimask, all three masks upscaled to the image) on the same embedding, with the engine's
    single decoder thread: the reference the engine's click is compared with."""
    import torch
    from segment_anything import SamPredictor

    predictor = SamPredictor(model)
    predictor.features = torch.from_numpy(embedding.features.astype(np.float32))[None]
    predictor.original_size = tuple(embedding.image_size)
    predictor.input_size = tuple(embedding.input_size)
    predictor.is_image_set = True
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        predictor.predict(*clicks[0], multimask_output=True)        # warm-up
        seconds = []
        for points, labels in clicks:
            start = time.perf_counter()
            predictor.predict(points, labels, multimask_output=True)
            seconds.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return float(np.median(seconds))


def cpu_flags() -> list[str]:
    """The CPU flags that decide bfloat16 speed (AVX512-BF16, AMX), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle
                          if line.startswith("flags")), [])
    except OSError:
        return []
    return sorted(f for f in flags if "bf16" in f or f.startswith("amx") or f in ("avx512f", "avx2"))


def calibration_record(model, args, image: np.ndarray, cache_dir: Path) -> tuple[dict, str]:
    """Calibrate "auto" on the image (or reuse what cache_dir holds), then check a second
    engine reuses it.  Returns the JSON record and the chosen precision."""
    engine = SamSegmenter(args.model, model=model, cache_dir=cache_dir, precision="auto")
    stored = engine.stored_calibration()
    start = time.perf_counter()
    result = engine.calibrate(image)
    took = time.perf_counter() - start
    again = SamSegmenter(args.model, model=model, cache_dir=cache_dir, precision="auto")
    start = time.perf_counter()
    reused = again.stored_calibration()
    reuse_s = time.perf_counter() - start
    record = {"metric": "precision_calibration", **result.to_json(),
              "stored_before": stored is not None, "calibration_s": round(took, 2),
              "encoder_runs": engine.calibration_runs,
              "path": str(calibration_path(cache_dir / "sam", result.machine, result.model)),
              "reused": reused == result and again.precision == result.choice
              and again.calibration_runs == 0, "reuse_s": round(reuse_s, 4),
              "cpu_flags": cpu_flags()}
    return record, result.choice


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
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="keep the precision calibration here (default: a temporary folder)")
    args = parser.parse_args(argv)
    import torch

    image = read_image(args.image)
    mask_path = args.image.parent.parent / "masks" / args.image.name
    truth = from_image_file(mask_path) if mask_path.is_file() else None
    model = load_sam(args.model, None)
    with tempfile.TemporaryDirectory() as tmp:
        engine = SamSegmenter(args.model, model=model, cache_dir=tmp, precision="fp32")

        # --- encoder: plain fp32 reference, then the engine (tuned allocator) ------------------
        plain_runs = [plain_fp32_seconds(model, engine, image) for _ in range(3)]
        plain_s = float(np.median(plain_runs[1:]))          # first: warm-up, like the others
        keep_large_allocations()
        calibration, best = calibration_record(model, args, image, args.cache_dir or Path(tmp))
        print(json.dumps(calibration), flush=True)
        timings: dict[str, list[float]] = {}
        embeddings = {}
        for mode in ("fp32", "fp32", "fp32", "bf16", "bf16", "bf16"):   # first of each: warm-up
            start = time.perf_counter()
            embeddings[mode] = engine.compute_embedding(image, key="bench", precision=mode)
            timings.setdefault(mode, []).append(time.perf_counter() - start)
        seconds = {mode: float(np.median(runs[1:])) for mode, runs in timings.items()}
        record = {"metric": "embed_precision", "model": args.model, "image": args.image.name,
                  "image_size": list(image.shape[:2]), "auto_precision": best,
                  "threads": torch.get_num_threads(), "plain_fp32_s": round(plain_s, 2),
                  "plain_fp32_runs_s": [round(v, 2) for v in plain_runs],
                  "fp32_s": round(seconds["fp32"], 2), "bf16_s": round(seconds["bf16"], 2),
                  "auto_over_plain_fp32": round(seconds[best] / plain_s, 3),
                  "target_auto_over_plain_fp32": 0.3,
                  "fp32_over_plain_fp32": round(seconds["fp32"] / plain_s, 3),
                  "bf16_over_fp32": round(seconds["bf16"] / seconds["fp32"], 3)}
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
        reference = reference_click_seconds(model, embedding, clicks)
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
                "segment_anything_predict_median_s": round(reference, 4),
                "decoder_over_segment_anything": round(float(np.median(in_memory)) / reference, 3),
                "target_median_s": 0.15, "target_p95_s": 0.3}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
