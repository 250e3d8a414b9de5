"""The worker's data loaders and its sharded evaluation: every rank predicts its share of a
split, the probabilities are gathered in dataset order on every rank, and the metrics of
:mod:`endolite.train.metrics` are computed from them (identically on every rank).  The forward
passes run in the run's precision (:mod:`endolite.train.amp`)."""

from __future__ import annotations

import os

from endolite.train import metrics as metrics_mod


def loader_for(dataset, cfg, dist, *, sampler=None, indices=None, train: bool):
    import torch
    from torch.utils.data import DataLoader, Subset

    if indices is not None:
        dataset = Subset(dataset, indices)
    workers = int(cfg["num_workers"])
    if workers == 0 and dist.device.type == "cuda":     # a GPU waits for serial loading
        workers = min(8, max(1, (os.cpu_count() or 1) // max(1, dist.world)))
    drop_last = train and sampler is not None and len(sampler) > cfg["batch_size"]
    return DataLoader(dataset, batch_size=cfg["batch_size"], sampler=sampler, shuffle=False,
                      num_workers=workers, drop_last=drop_last,
                      pin_memory=dist.device.type == "cuda",
                      persistent_workers=workers > 0,
                      generator=torch.Generator().manual_seed(cfg["seed"] + dist.rank))


def predict_sharded(model, loader, dist, cfg, loss_fn, amp):
    """Sharded inference gathered on every rank: ``(probs (N, L), loss_sum, known_sum)`` in
    dataset order."""
    import numpy as np
    import torch

    idx, probs, loss_sum, known_sum = [], [], 0.0, 0.0
    model.eval()
    with torch.inference_mode():
        for images, y, known, index in loader:
            images = images.to(dist.device, non_blocking=True)
            if cfg["channels_last"]:
                images = images.contiguous(memory_format=torch.channels_last)
            with amp.autocast(dist.device):
                logits = model(images).float()
            y, known = y.to(dist.device), known.to(dist.device)
            loss_sum += float(loss_fn(logits, y, known, reduction="sum"))
            known_sum += float(known.sum())
            probs.append(torch.sigmoid(logits).cpu().numpy())
            idx.append(np.asarray(index))
    n_labels = len(cfg["labels"])
    mine = (np.concatenate(idx) if idx else np.zeros(0, int),
            np.concatenate(probs) if probs else np.zeros((0, n_labels), np.float32))
    parts = dist.gather(mine)
    all_idx = np.concatenate([p[0] for p in parts]).astype(int)
    all_probs = np.concatenate([p[1] for p in parts]).reshape(-1, n_labels)
    total = dist.sum([loss_sum, known_sum])
    out = np.zeros((len(all_idx), n_labels), np.float32)
    out[all_idx] = all_probs  # the dataset's own indices 0..n-1, each in one shard
    return out, total[0], total[1]


def evaluate(model, rows, dataset, dist, cfg, loss_fn, amp):
    """``(metrics dict, loss or None, probs)`` for ``rows`` (sharded over ranks)."""
    import numpy as np

    if not rows:
        empty = np.zeros((0, len(cfg["labels"])))
        return metrics_mod.evaluate(empty, empty, empty, cfg["labels"]), None, empty
    shard = list(range(dist.rank, len(rows), dist.world))
    loader = loader_for(dataset, cfg, dist, indices=shard, train=False)
    probs, loss_sum, known_sum = predict_sharded(model, loader, dist, cfg, loss_fn, amp)
    y = np.asarray([r["y"] for r in rows])
    known = np.asarray([r["known"] for r in rows])
    loss = loss_sum / known_sum if known_sum else None
    return metrics_mod.evaluate(probs, y, known, cfg["labels"]), loss, probs
