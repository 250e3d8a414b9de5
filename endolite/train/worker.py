"""The training worker: ``python -m endolite.train.worker RUN_DIR`` (one process) or
``python -m torch.distributed.run --nproc_per_node N -m endolite.train.worker RUN_DIR`` (DDP).

Reads ``config.json`` and ``manifest.json`` from RUN_DIR and writes ``progress.json``,
``metrics.jsonl``, ``log.txt``, ``best.pt``, ``result.json`` and ``heldout.json`` there, as
docs/TRAINING.md specifies; it never opens the database.  Under torchrun (``WORLD_SIZE`` > 1)
each rank trains on its shard (gloo on CPU, nccl on CUDA), evaluation is sharded and gathered,
every rank reaches the same decisions (best epoch, stop), and rank 0 alone writes the files
(a rank that fails also appends its traceback to ``log.txt``).  Exit code 0 for done and
cancelled, 1 for failed.  ``ENDOLITE_TRAIN_THREADS`` sets torch's CPU threads per process
(default: the CPU count divided by the processes on this node).
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from endolite.errors import InvalidInput
from endolite.train.amp import choose as choose_precision
from endolite.train.evaluate import evaluate, loader_for
from endolite.train.runfiles import (RunFiles, load_config, load_manifest, one_line)

_SIGNALLED = {"term": False}


class Cancelled(Exception):
    """The run was cancelled (the ``cancel`` file or SIGTERM)."""


class Dist:
    """The process group (or its absence): rank, world size, device, and the collectives the
    worker needs."""

    def __init__(self, device_pref: str):
        import torch

        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available()
        if device_pref == "cuda" and not cuda:
            raise InvalidInput("config device 'cuda': no CUDA device on this machine")
        use_cuda = cuda and device_pref in ("auto", "cuda")
        if use_cuda:
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        if self.world > 1:
            import torch.distributed as dist

            dist.init_process_group(backend="nccl" if use_cuda else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any rank."""
        if self.world == 1:
            return flag
        import torch
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def sum(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def gather(self, obj):
        """All ranks' ``obj`` as a list (rank order), on every rank."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def _threads(world_local: int) -> int:
    env = os.environ.get("ENDOLITE_TRAIN_THREADS")
    if env:
        return max(1, int(env))
    return max(1, (os.cpu_count() or 1) // max(1, world_local))


def _lr_lambda(warmup_steps: int, total_steps: int):
    def fn(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup_steps) / span)))
    return fn


def train(run_dir: Path, files: RunFiles, dist: Dist) -> dict[str, Any]:
    """Train as the config says; returns the result dict (state done or cancelled)."""
    import numpy as np
    import torch

    from endolite.train import model as model_mod
    from endolite.train.data import FrameDataset, ShardedSampler, balanced_weights
    from endolite.train.losses import make_loss

    cfg = load_config(run_dir)
    rows = load_manifest(run_dir, cfg["labels"])
    split = {s: [r for r in rows if r["split"] == s] for s in ("train", "val", "test")}
    if not split["train"]:
        raise InvalidInput(f"{run_dir / 'manifest.json'}: no frame in the train split")
    missing = [r["path"] for r in rows if not os.path.isfile(r["path"])]
    if missing:
        raise InvalidInput(f"{len(missing)} of the manifest's {len(rows)} images are missing "
                           f"(first: {', '.join(missing[:3])})")
    seed = int(cfg["seed"])
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    if dist.device.type == "cpu":
        torch.set_num_threads(_threads(int(os.environ.get("LOCAL_WORLD_SIZE", dist.world))))
    else:
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")  # TF32 matmuls on GPUs that have them
    files.log(f"device {dist.device}, {dist.world} process(es), torch {torch.__version__}; "
              f"frames train {len(split['train'])}, val {len(split['val'])}, "
              f"test {len(split['test'])}; labels {', '.join(cfg['labels'])}")

    net, report = model_mod.create(cfg["backbone"], len(cfg["labels"]),
                                   pretrained_checkpoint=cfg["pretrained_checkpoint"])
    pretrained = report.lines() if report else None
    for line in pretrained or ["no pretrained checkpoint: the backbone starts from random "
                               "weights"]:
        files.log(line)
    head = net.get_classifier()
    head_ids = {id(p) for p in head.parameters()}
    head_params = [p for p in net.parameters() if id(p) in head_ids]
    body_params = [p for p in net.parameters() if id(p) not in head_ids]
    if cfg["freeze_backbone"]:
        for p in body_params:
            p.requires_grad_(False)
    net.to(dist.device)
    if cfg["channels_last"]:
        net.to(memory_format=torch.channels_last)
    model = net
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(
            net, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
    groups = [{"params": head_params, "lr": cfg["lr_head"]}]
    if not cfg["freeze_backbone"]:
        groups.append({"params": body_params, "lr": cfg["lr_backbone"]})
    optim = torch.optim.AdamW(groups, weight_decay=cfg["weight_decay"])
    loss_fn = make_loss(cfg["loss"], class_weights=cfg["class_weights"],
                        num_labels=len(cfg["labels"]), alpha=cfg["focal_alpha"],
                        gamma=cfg["focal_gamma"], device=dist.device)

    train_ds = FrameDataset(split["train"], image_size=cfg["image_size"],
                            augment=cfg["augment"])
    plain_train = FrameDataset(split["train"], image_size=cfg["image_size"], augment=False)
    amp = choose_precision(cfg["precision"], net, plain_train, loss_fn, dist,
                           batch_size=int(cfg["batch_size"]), channels_last=cfg["channels_last"])
    scaler = amp.scaler(dist.device)
    files.log(f"precision {amp.precision}: {amp.reason}")
    eval_ds = {s: FrameDataset(split[s], image_size=cfg["image_size"], augment=False)
               for s in ("val", "test")}
    sampler = ShardedSampler(len(split["train"]), kind=cfg["sampler"],
                             weights=balanced_weights(split["train"])
                             if cfg["sampler"] == "balanced" else None,
                             seed=seed, rank=dist.rank, world=dist.world)
    loader = loader_for(train_ds, cfg, dist, sampler=sampler, train=True)
    epochs, per_epoch = int(cfg["epochs"]), len(loader)
    total_steps = epochs * per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, _lr_lambda(int(cfg["warmup_epochs"] * per_epoch), total_steps))
    select_on = "val" if split["val"] else "train"
    if select_on == "train":
        files.log("no validation frames: the best epoch is chosen on the training frames' "
                  "metrics (evaluated without augmentation); they say little about new videos")

    best = {"epoch": None, "f1": None, "state": None, "metrics": None}
    step = 0
    for epoch in range(1, epochs + 1):
        sampler.set_epoch(epoch)
        model.train()
        if cfg["freeze_backbone"]:  # a frozen backbone keeps its BatchNorm statistics too
            net.eval()
            head.train()
        t0, loss_sum, batches, images = time.perf_counter(), None, 0, 0
        for batch_images, y, known, _ in loader:
            if dist.any(files.cancel_requested() or _SIGNALLED["term"]):
                raise Cancelled
            batch_images = batch_images.to(dist.device, non_blocking=True)
            if cfg["channels_last"]:
                batch_images = batch_images.contiguous(memory_format=torch.channels_last)
            y = y.to(dist.device, non_blocking=True)
            known = known.to(dist.device, non_blocking=True)
            with amp.autocast(dist.device):
                logits = model(batch_images)
            loss = loss_fn(logits.float(), y, known)
            optim.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                optim.step()
            else:                                  # float16: scaled gradients
                scaler.scale(loss).backward()
                scaler.step(optim)
                scaler.update()
            sched.step()
            # summed on the device: no host sync per step
            loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
            batches += 1
            images += len(y)
            step += 1
            files.progress("running", epoch=epoch - 1, epochs=epochs, step=step,
                           steps=total_steps, message=f"epoch {epoch}/{epochs}")
        loss_sum = 0.0 if loss_sum is None else float(loss_sum)  # waits for the device
        seconds = time.perf_counter() - t0
        loss_total, batch_total, image_total = dist.sum([loss_sum, batches, images])
        train_loss = loss_total / batch_total if batch_total else None
        if train_loss is not None and not math.isfinite(train_loss):
            raise InvalidInput(f"training diverged: the loss is {train_loss} in epoch {epoch} "
                               f"(lower lr_head / lr_backbone)")
        rate = image_total / seconds if seconds > 0 else None
        files.progress("running", epoch=epoch - 1, epochs=epochs, step=step, steps=total_steps,
                       message=f"epoch {epoch}/{epochs}: evaluating", force=True)
        t1 = time.perf_counter()
        if select_on == "val":
            scored, val_loss, _ = evaluate(net, split["val"], eval_ds["val"], dist, cfg,
                                           loss_fn, amp)
        else:
            scored, val_loss, _ = evaluate(net, split["train"], plain_train, dist, cfg,
                                           loss_fn, amp)
        if dist.any(files.cancel_requested() or _SIGNALLED["term"]):
            raise Cancelled
        f1 = scored["macro_f1"]
        if best["epoch"] is None or (f1 is not None and (best["f1"] is None or f1 > best["f1"])):
            best.update(epoch=epoch, f1=f1, metrics=scored,
                        state={k: v.detach().to("cpu", copy=True)
                               for k, v in net.state_dict().items()})
            if dist.main:
                files.save_checkpoint(best["state"], cfg=cfg, epoch=epoch,
                                      val_macro_f1=f1 if select_on == "val" else None)
        line = {"epoch": epoch, "train_loss": train_loss,
                "val_loss": val_loss if select_on == "val" else None,
                "images_per_s": rate, "seconds": seconds, "eval_seconds":
                time.perf_counter() - t1, "lr_head": optim.param_groups[0]["lr"],
                "val": scored if select_on == "val" else None}
        if select_on == "train":
            line["train_eval"] = scored
        files.metrics_line(line)
        where = "val" if select_on == "val" else "train (eval)"
        files.log(f"epoch {epoch}/{epochs}: train loss {_fmt(train_loss)}, {where} loss "
                  f"{_fmt(val_loss)}, {where} macro F1 {_fmt(f1)}, "
                  f"{_fmt(rate, 1)} images/s, {seconds:.1f} s"
                  + (" (best so far)" if best["epoch"] == epoch else ""))
        files.progress("running", epoch=epoch, epochs=epochs, step=step, steps=total_steps,
                       message=f"epoch {epoch}/{epochs} done", force=True)

    files.progress("running", epoch=epochs, epochs=epochs, step=step, steps=total_steps,
                   message=f"testing the best epoch ({best['epoch']})", force=True)
    net.load_state_dict(best["state"])
    val_m, _, val_p = evaluate(net, split["val"], eval_ds["val"], dist, cfg, loss_fn, amp)
    test_m, _, test_p = evaluate(net, split["test"], eval_ds["test"], dist, cfg, loss_fn, amp)
    if dist.main:
        held = [{"frame_id": r["frame_id"], "split": s, "p": [round(float(v), 6) for v in p]}
                for s, rs, ps in (("val", split["val"], val_p), ("test", split["test"], test_p))
                for r, p in zip(rs, ps)]
        files.write_json("heldout.json", {"labels": cfg["labels"], "rows": held})
    files.log(f"best epoch {best['epoch']} ({select_on} macro F1 {_fmt(best['f1'])}); "
              f"test macro F1 {_fmt(test_m['macro_f1'])} on {len(split['test'])} frames")
    return {"state": "done", "best_epoch": best["epoch"],
            "best_val_macro_f1": best["f1"] if select_on == "val" else None,
            "best_train_macro_f1": best["f1"] if select_on == "train" else None,
            "selected_on": select_on, "val": val_m if split["val"] else None,
            "train_eval": best["metrics"] if select_on == "train" else None,
            "test": test_m, "heldout": "heldout.json", "pretrained": pretrained,
            "epochs": epochs, "device": str(dist.device), "world_size": dist.world,
            "precision": amp.precision, "precision_reason": amp.reason,
            "checkpoint": "best.pt"}


def _fmt(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _on_sigterm(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    _SIGNALLED["term"] = True


def main(argv: list[str] | None = None) -> int:
    """Run the worker on ``argv[0]`` (RUN_DIR); returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m endolite.train.worker RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(argv[0]).resolve()
    rank = int(os.environ.get("RANK", "0"))
    files = RunFiles(run_dir, main=rank == 0, rank=rank)
    signal.signal(signal.SIGTERM, _on_sigterm)
    dist = None
    try:
        files.progress("running", message="starting", force=True)
        cfg = load_config(run_dir)
        files.progress("running", message="starting", epochs=cfg["epochs"], force=True)
        dist = Dist(cfg["device"])
        result = train(run_dir, files, dist)
        files.write_json("result.json", result)
        files.progress("done", message="done", fraction=1.0, force=True)
        code = 0
    except Cancelled:
        files.log("cancelled" + (" (SIGTERM)" if _SIGNALLED["term"] else ""))
        files.write_json("result.json", {"state": "cancelled"})
        files.progress("cancelled", message="cancelled", force=True)
        code = 0
    except BaseException as exc:  # noqa: BLE001 - every failure is reported in the run dir
        files.log(traceback.format_exc().rstrip(), always=True)
        files.fail(one_line(exc))
        code = 1
        if isinstance(exc, KeyboardInterrupt):
            code = 130
    finally:
        if dist is not None:
            try:
                dist.close()
            except Exception:  # noqa: BLE001 - peers may already be gone
                pass
    return code


if __name__ == "__main__":
    sys.exit(main())
