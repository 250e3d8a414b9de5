"""Training-throughput benchmark: a full epoch from image files against the model alone.

    python bench/training.py [--backbone resnet18] [--image-size 224] [--batch-size 16]
                             [--images 256] [--num-workers 2] [--repeat 3] [--device auto]
                             [--precision fp32|bf16|fp16|auto]

Writes ``--images`` synthetic JPEG frames (``--source-size`` px, endoscope-like: a bright disc
with texture on black, quality 90) to a temp directory, then measures, warm (one unmeasured
pass of each first) and as the median of ``--repeat`` interleaved runs:

* ``epoch``: what the worker does per epoch (endolite.train.data.FrameDataset with the
  training augmentations, DataLoader with ``--num-workers`` workers, the plain sampler,
  forward + masked BCE + backward + AdamW step, channels_last) -> images / s;
* ``model``: the same model, batch size, loss and optimizer on random tensors already on the
  device (forward + backward + step; no data loading) -> images / s;

and prints one JSON line with both and their ratio (goal: ``ratio >= 0.8``, the data pipeline
costs at most a fifth of the model's speed).  With a CUDA device the timing synchronises.

``--precision`` trains as the worker does in that precision (:mod:`endolite.train.amp`;
``auto`` resolves as a run would, measuring on this machine).  Other than float32, the
float32 model-only throughput is measured in the same runs as the reference and
``speedup_over_fp32_model`` = epoch images/s over it is printed too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def write_images(folder: Path, n: int, size: int) -> list[dict]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (0.45 * size) ** 2
    rows = []
    for i in range(n):
        tex = rng.normal(0, 18, (size // 8, size // 8, 3)).repeat(8, 0).repeat(8, 1)
        arr = np.clip(np.array([170, 90, 80]) + tex, 0, 255) * disc[..., None]
        path = folder / f"frame_{i:05d}.jpg"
        Image.fromarray(arr.astype(np.uint8)).save(path, quality=90)
        rows.append({"frame_id": i, "path": str(path), "y": [i % 2, (i // 2) % 2],
                     "known": [1, 1]})
    return rows


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--source-size", type=int, default=512)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16", "auto"))
    args = parser.parse_args(argv)

    import torch
    from torch.utils.data import DataLoader

    from endolite.train import amp as amp_mod
    from endolite.train.data import FrameDataset, ShardedSampler
    from endolite.train.losses import make_loss
    from endolite.train.model import create

    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available()
                          else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    net, _ = create(args.backbone, 2)
    net.to(device).to(memory_format=torch.channels_last).train()
    optim = torch.optim.AdamW(net.parameters(), lr=1e-4)
    loss_fn = make_loss("bce", num_labels=2)

    fp32 = amp_mod.Amp("fp32", "reference")
    chosen = amp_mod.resolve_fixed(args.precision, device)

    def step(images, y, known, amp=None) -> None:
        amp = amp or chosen
        images = images.to(device, non_blocking=True).contiguous(
            memory_format=torch.channels_last)
        y, known = y.to(device, non_blocking=True), known.to(device, non_blocking=True)
        with amp.autocast(device):
            logits = net(images)
        loss = loss_fn(logits.float(), y, known)
        optim.zero_grad(set_to_none=True)
        if scaler is None or amp.precision != "fp16":
            loss.backward()
            optim.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optim)
            scaler.update()

    with tempfile.TemporaryDirectory(prefix="endolite-bench-train-") as tmp:
        rows = write_images(Path(tmp), args.images, args.source_size)
        ds = FrameDataset(rows, image_size=args.image_size, augment=True)
        sampler = ShardedSampler(len(rows), seed=0)
        loader = DataLoader(ds, batch_size=args.batch_size, sampler=sampler,
                            num_workers=args.num_workers, drop_last=True,
                            persistent_workers=args.num_workers > 0,
                            pin_memory=device.type == "cuda")
        n_batches = len(loader)
        rand_x = torch.randn(args.batch_size, 3, args.image_size, args.image_size,
                             device=device)
        rand_y = torch.randint(0, 2, (args.batch_size, 2), device=device).float()
        rand_k = torch.ones_like(rand_y)
        if chosen is None:          # auto on a bfloat16 CPU: measured as a run would
            seconds = amp_mod.measure(net, rand_x.contiguous(memory_format=torch.channels_last),
                                      lambda logits: loss_fn(logits, rand_y, rand_k), device)
            chosen = amp_mod.decide(*seconds)
        scaler = chosen.scaler(device)

        def epoch(run: int) -> float:
            sampler.set_epoch(run)
            _sync(device)
            t0 = time.perf_counter()
            seen = 0
            for images, y, known, _ in loader:
                step(images, y, known)
                seen += len(y)
            _sync(device)
            return seen / (time.perf_counter() - t0)

        def model_only(amp=None) -> float:
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(n_batches):
                step(rand_x, rand_y, rand_k, amp)
            _sync(device)
            return n_batches * args.batch_size / (time.perf_counter() - t0)

        reference = chosen.precision != "fp32"
        epoch(0)
        model_only()  # warm: workers started, caches filled, kernels chosen
        if reference:
            model_only(fp32)
        epochs, models, fp32_models = [], [], []
        for run in range(1, args.repeat + 1):
            epochs.append(epoch(run))
            models.append(model_only())
            if reference:
                fp32_models.append(model_only(fp32))
    e, m = statistics.median(epochs), statistics.median(models)
    extra = {}
    if reference:
        f = statistics.median(fp32_models)
        extra = {"fp32_model_images_per_s": round(f, 2),
                 "speedup_over_fp32_model": round(e / f, 3),
                 "runs_fp32_model": [round(v, 2) for v in fp32_models]}
    print(json.dumps({"measurement": "training_epoch_vs_model", "backbone": args.backbone,
                      "device": str(device), "image_size": args.image_size,
                      "batch_size": args.batch_size, "images": n_batches * args.batch_size,
                      "source_size": args.source_size, "num_workers": args.num_workers,
                      "torch_threads": torch.get_num_threads(),
                      "precision": chosen.precision, "precision_reason": chosen.reason,
                      "epoch_images_per_s": round(e, 2), "model_images_per_s": round(m, 2),
                      "ratio": round(e / m, 3), "goal_ratio": 0.8,
                      "runs_epoch": [round(v, 2) for v in epochs],
                      "runs_model": [round(v, 2) for v in models], **extra}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
