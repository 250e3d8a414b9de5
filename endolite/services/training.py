"""Training runs (leads and admins): preview the dataset, start a run, cancel it, wait for it.

``start`` checks the role (``model.train``), validates the options, builds the dataset
(``endolite.train.dataset``: conflicting labels are refused naming frame and label), records
the run, writes its config and manifest and starts the worker process
(``endolite.train.runner``); the audit entry holds the config and the dataset's counts.
``cancel`` (``model.cancel``) asks the worker to stop.  Neither starts a thread (a CLI
process must not exit with one inside DuckDB): ``watch`` (the Training page, every rerun)
recovers the runs a stopped app left behind (once per process) and keeps the runner's watcher
thread recording running workers; ``wait`` (the CLI, tests) records them in the caller's thread.  Reads (runs, metrics) go straight to
``endolite.storage.training``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import duckdb

from endolite.config import Settings
from endolite.errors import InvalidInput
from endolite.services.access import Action, Ctx
from endolite.storage import training as repo
from endolite.storage.training import FINISHED, TrainingRun
from endolite.train import dataset as ds
from endolite.train import runner

LOSSES = ("bce", "focal")
SAMPLERS = ("plain", "balanced")
DEVICES = ("auto", "cpu", "cuda")

_recovered: set[str] = set()
_recover_lock = threading.Lock()


def preview(ctx: Ctx, *, labels: list[str], treat_unlabeled_as_negative: bool = False,
            val_fraction: float = 0.2, test_fraction: float = 0.1,
            seed: int = 42) -> ds.DatasetSummary:
    """What a run on ``labels`` would train on: per-split counts, class weights, warnings and
    the conflicts (listed, not raised).  Reads only."""
    return ds.build(ctx.con, labels, treat_unlabeled_as_negative=treat_unlabeled_as_negative,
                    val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                    strict=False).summary


def _check_options(*, epochs: int, batch_size: int, image_size: int, lr_head: float,
                   lr_backbone: float, warmup_epochs: int, loss: str, sampler: str, nproc: int,
                   device: str) -> None:
    for name, value, low in (("epochs", epochs, 1), ("batch size", batch_size, 1),
                             ("image size", image_size, 16), ("processes", nproc, 1),
                             ("warmup epochs", warmup_epochs, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidInput(f"{name}: {value!r} is not an integer >= {low}")
    if image_size > 4096:
        raise InvalidInput(f"image size: {image_size} is more than 4096")
    for name, value in (("head learning rate", lr_head), ("backbone learning rate", lr_backbone)):
        if not isinstance(value, (int, float)) or not 0 < value < 10:
            raise InvalidInput(f"{name}: {value!r} is not a number in (0, 10)")
    for name, value, allowed in (("loss", loss, LOSSES), ("sampler", sampler, SAMPLERS),
                                 ("device", device, DEVICES)):
        if value not in allowed:
            raise InvalidInput(f"{name}: {value!r} is not one of {', '.join(allowed)}")


def start(ctx: Ctx, *, labels: list[str], backbone: str, epochs: int = 10, batch_size: int = 16,
          image_size: int = 224, lr_head: float = 1e-3, lr_backbone: float = 1e-4,
          warmup_epochs: int = 1, freeze_backbone: bool = False, loss: str = "bce",
          sampler: str = "plain", augment: bool = True, treat_unlabeled_as_negative: bool = False,
          val_fraction: float = 0.2, test_fraction: float = 0.1, seed: int = 42,
          pretrained_checkpoint: str | None = None, nproc: int = 1,
          device: str = "auto", precision: str = "auto") -> TrainingRun:
    """Start a training run; returns it (status running, or failed if the worker could not be
    started).

    Refuses (InvalidInput) unknown labels or backbone, a pretrained checkpoint that is not an
    existing file on the server, bad options, conflicting label values (naming frame and
    label) and an empty dataset.  Class weights (neg/pos on train, capped) go into the config
    with the plain sampler; the balanced sampler already evens the labels out, so it trains
    with weight 1.  ``precision``: auto | fp32 | bf16 | fp16 (endolite.train.amp; auto measures
    bfloat16 against float32 on the server's CPU at the start of the run).
    """
    from endolite.storage.jobs import process_owner
    from endolite.train.amp import check as check_precision
    from endolite.train.model import timm_name

    ctx.check(Action.TRAIN)
    _check_options(epochs=epochs, batch_size=batch_size, image_size=image_size, lr_head=lr_head,
                   lr_backbone=lr_backbone, warmup_epochs=warmup_epochs, loss=loss,
                   sampler=sampler, nproc=nproc, device=device)
    timm_name(backbone)
    check_precision(precision)
    checkpoint = None
    if pretrained_checkpoint:
        path = Path(pretrained_checkpoint).expanduser()
        if not path.is_file():
            raise InvalidInput(f"pretrained checkpoint {pretrained_checkpoint}: no such file on "
                               "the server")
        checkpoint = str(path.resolve())
    data = ds.build(ctx.con, labels, treat_unlabeled_as_negative=treat_unlabeled_as_negative,
                    val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, strict=True)
    if not data.rows:
        raise InvalidInput(f"labels {', '.join(data.labels)}: no frame has a known value (set "
                           "frame labels, draw segments or masks first, or treat unlabeled as "
                           "negative)")
    summary = data.summary
    config: dict[str, Any] = {
        "backbone": backbone, "labels": list(data.labels), "epochs": epochs,
        "batch_size": batch_size, "image_size": image_size, "lr_head": float(lr_head),
        "lr_backbone": float(lr_backbone), "warmup_epochs": warmup_epochs, "weight_decay": 1e-4,
        "freeze_backbone": bool(freeze_backbone), "loss": loss, "focal_alpha": 0.25,
        "focal_gamma": 2.0,
        "class_weights": list(summary.class_weights) if sampler == "plain" else None,
        "sampler": sampler, "augment": bool(augment), "seed": int(seed),
        "pretrained_checkpoint": checkpoint, "num_workers": 0, "device": device,
        "channels_last": True, "precision": precision,
        "treat_unlabeled_as_negative": bool(treat_unlabeled_as_negative),
        "val_fraction": val_fraction, "test_fraction": test_fraction, "nproc": nproc}
    run = repo.create_run(ctx.con, backbone=backbone, labels=data.labels,
                          label_ids=data.label_ids, config=config, dataset=summary.to_dict(),
                          nproc=nproc, created_by=ctx.actor.name, owner=process_owner())
    runner.prepare(ctx.settings, run, ds.manifest(data, ctx.settings))
    try:
        run = runner.launch(ctx.con, ctx.settings, run.id)
    finally:
        ctx.record(Action.TRAIN, entity="training_run", entity_id=run.id, config=config,
                   frames=summary.frames, split_frames=summary.split_frames,
                   split_media=summary.split_media, warnings=list(summary.warnings))
    return run


def cancel(ctx: Ctx, run_id: int, *, grace: float = 10.0) -> TrainingRun:
    """Ask a queued / running run to stop (the worker writes ``cancelled``; its processes are
    terminated after ``grace`` s if still alive).  InvalidInput for a finished run."""
    ctx.check(Action.TRAIN_CANCEL)
    run = repo.get_run(ctx.con, run_id)
    if run.status in FINISHED:
        raise InvalidInput(f"run {run_id} has already ended ({run.status})")
    run = runner.cancel(ctx.con, ctx.settings, run_id, grace=grace)
    ctx.record(Action.TRAIN_CANCEL, entity="training_run", entity_id=run_id,
               status_before=str(run.status))
    return run


def wait(ctx: Ctx, run_id: int, *, timeout: float | None = None,
         interval: float = 0.5) -> TrainingRun:
    """Sync the run until it ends (or ``timeout`` s pass); returns it as stored.  For the CLI
    and tests: the caller's process is the app side while it waits."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        run = runner.sync(ctx.con, ctx.settings, run_id)
        if run.status in FINISHED or (deadline is not None and time.monotonic() > deadline):
            return run
        time.sleep(interval)


def watch(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """For the pages: on this process's first call per database, ``runner.recover`` the runs a
    stopped app left queued / running; then make sure the watcher thread records running ones.
    Cheap on later calls."""
    key = str(settings.db_path)
    with _recover_lock:
        first = key not in _recovered
        _recovered.add(key)
    if first:
        runner.recover(con, settings)
    runner.watch(con, settings)


def sync_all(con: duckdb.DuckDBPyConnection, settings: Settings) -> list[TrainingRun]:
    """Recover / sync every unfinished run now (the ``endolite runs`` command)."""
    return runner.recover(con, settings)


def log_tail(settings: Settings, run: TrainingRun, *, lines: int = 60) -> str:
    """The end of the run's log.txt and worker output (for the page's Log expander)."""
    return runner.log_tail(settings, run, lines=lines)


def split_metrics(run: TrainingRun) -> dict[str, Any]:
    """``{"val": {label: {metric: value}}, "test": {...}}`` from a finished run's result (the
    best epoch's validation metrics and the test metrics), plus the macro F1 per split."""
    out: dict[str, Any] = {}
    for split in ("val", "test"):
        block = (run.result or {}).get(split)
        if not isinstance(block, dict):
            continue
        per_label = block.get("per_label") if isinstance(block.get("per_label"), dict) else block
        out[split] = {str(k): v for k, v in per_label.items() if isinstance(v, dict)}
        if "macro_f1" in block:
            out[f"{split}_macro_f1"] = block["macro_f1"]
    return out
