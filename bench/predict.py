"""Prediction speed over a video against the video's own frame rate ("online mode").

    python bench/predict.py VIDEO [--backbone resnet18] [--image-size 224] [--every 1]
                                  [--repeat 3] [--batch-size 16] [--threads N]

Makes a random-init checkpoint of ``--backbone`` (no download; the head is scaled down so the
probabilities are not saturated), then, for each inference form this machine offers
(``float32``, ``float32+cl`` = channels_last, ``bfloat16`` / ``bfloat16+cl`` = autocast, where
the CPU has bfloat16 instructions), runs ``Predictor.predict_video`` over the whole video:
decoding (PyAV, in a thread, scaled to the model size by the decoder) and inference together.
Prints one JSON line per form: predicted frames per second (median of ``--repeat`` runs after a
warm-up batch, and the best run: other work on the machine only ever slows a run down), the
video's fps, the ratio (>= 1: real time, counting every ``--every``-th frame as covering
``every`` video frames), the process CPU seconds per predicted frame (decoding included) and
``cores_for_real_time`` = that times the video's fps (steadier than wall time on a shared
machine; below the core count means real time is within reach when the machine is quiet), and
the agreement with float32 (max abs probability difference over all predicted frames).  Also ``decode_only``: the decoder thread's
frames per second alone (the ceiling), and a ``summary`` line with the form ``auto`` picks.
ONNX Runtime would need the ``onnx`` package for the export; a line says when it is missing.

Measured (2-core Xeon with AMX-BF16, shared machine at load ~3.5; the real sample video
470x410, 30 fps, 884 frames; resnet18 at 224, every frame, 2 torch threads, medians of 3):
decode alone 635 frames/s; decode + predict float32 21.6 frames/s (0.72x real time),
float32+channels_last 32.7 (1.09x), bfloat16 76.4 (2.55x), bfloat16+channels_last 136.1
(4.54x; 0.43 cores for real time); bfloat16 agrees with float32 within 6e-5 (max abs
probability, random-init weights); ``auto`` chose bfloat16+cl.  One torch thread at load ~4.5:
float32 16.2, bfloat16+cl 58.6 frames/s (1.95x real time).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_checkpoint(path: Path, backbone: str, size: int, labels: int = 5) -> Path:
    import timm
    import torch

    from endolite.train.model import CHECKPOINT_FORMAT, IMAGENET_MEAN, IMAGENET_STD, timm_name

    torch.manual_seed(0)
    name = timm_name(backbone)
    model = timm.create_model(name, pretrained=False, num_classes=labels)
    with torch.no_grad():
        model.get_classifier().weight.mul_(0.05)
    torch.save({"format": CHECKPOINT_FORMAT, "backbone": backbone, "timm_name": name,
                "labels": [f"label{i}" for i in range(labels)], "image_size": size,
                "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                "state_dict": model.state_dict(), "epoch": 0, "val_macro_f1": None,
                "thresholds": [0.5] * labels}, path)
    return path


def video_fps(path: Path) -> tuple[float, int]:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return float(s.average_rate or s.guessed_rate or 0), int(s.frames or 0)


def decode_only(path: Path, size: int, every: int) -> float:
    import av

    t0 = time.perf_counter()
    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for i, frame in enumerate(c.decode(s)):
            if i % every == 0:
                frame.to_ndarray(width=size, height=size, format="rgb24")
                n += 1
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", type=Path)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()

    import numpy as np
    import torch

    from endolite.train.predict import Predictor, candidate_precisions

    if args.threads:
        torch.set_num_threads(args.threads)
    fps, frames = video_fps(args.video)
    emit = lambda **kw: print(json.dumps(kw), flush=True)   # noqa: E731
    emit(measurement="setup", video=str(args.video), video_fps=fps, frames=frames,
         backbone=args.backbone, image_size=args.image_size, every=args.every,
         torch_threads=torch.get_num_threads(), torch=torch.__version__,
         cpus=os.cpu_count(), load_average_1min=round(os.getloadavg()[0], 2))
    runs = [decode_only(args.video, args.image_size, args.every) for _ in range(args.repeat)]
    dec = statistics.median(runs)
    emit(measurement="decode_only", fps=round(dec, 1), ratio=round(dec * args.every / fps, 2))

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = make_checkpoint(Path(tmp) / "best.pt", args.backbone, args.image_size)
        warm = np.random.default_rng(0).integers(0, 256, (args.batch_size, args.image_size,
                                                          args.image_size, 3), dtype=np.uint8)
        reference = None
        results = {}
        for form in candidate_precisions("cpu"):
            pred = Predictor.load(ckpt, device="cpu", precision=form)
            pred.predict(warm)
            speeds, cpu, probs = [], [], None
            for _ in range(args.repeat):
                c0 = time.process_time()
                res = pred.predict_video(args.video, every=args.every, batch_size=args.batch_size)
                cpu.append((time.process_time() - c0) / max(len(res.probs), 1))
                speeds.append(res.fps)
                probs = res.probs
            if reference is None:
                reference = probs
            diff = float(np.abs(probs - reference).max()) if probs is not None and probs.size else 0.0
            med = statistics.median(speeds)
            results[form] = (med, diff)
            cpu_frame = statistics.median(cpu)
            emit(measurement="predict", precision=form, fps=round(med, 1),
                 fps_best=round(max(speeds), 1), runs=[round(s, 1) for s in speeds],
                 video_fps=fps, ratio=round(med * args.every / fps, 2),
                 ratio_best=round(max(speeds) * args.every / fps, 2),
                 cpu_seconds_per_frame=round(cpu_frame, 4),
                 cores_for_real_time=round(cpu_frame * fps / args.every, 2),
                 max_abs_diff_vs_float32=round(diff, 5), frames=int(len(probs)),
                 load_average_1min=round(os.getloadavg()[0], 2))
        auto = Predictor.load(ckpt, device="cpu")
        auto.predict(warm)
        emit(measurement="summary", auto_chooses=auto.precision,
             auto_seconds_per_image={k: round(v, 5) for k, v in
                                     auto.calibration.seconds_per_image.items()},
             best=max(results, key=lambda k: results[k][0]),
             speedup_vs_float32={k: round(v[0] / results["float32"][0], 2) for k, v in results.items()})
    import importlib.util

    if importlib.util.find_spec("onnx") is None:
        emit(measurement="onnxruntime", skipped="torch.onnx.export needs the onnx package, "
                                               "which is not installed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
