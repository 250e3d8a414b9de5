"""``endolite train`` and ``endolite runs``: train a frame classifier, list runs.

    endolite train --labels L1,L2,... --backbone NAME [--epochs E] [--batch-size B]
                   [--image-size S] [--freeze-backbone] [--treat-unlabeled-as-negative]
                   [--loss bce|focal] [--pretrained-checkpoint FILE] [--nproc N] [--wait]
                   [--lr-head X] [--lr-backbone X] [--seed N] [--sampler plain|balanced]
                   [--val-fraction F] [--test-fraction F] [--device auto|cpu|cuda]
                   [--precision auto|fp32|bf16|fp16]
    endolite runs [RUN_ID]

``train`` prints the run id and returns while the worker trains (the dashboard, or the next
``endolite runs``, records what it wrote); with ``--wait`` it stays (this process records the run while the
worker trains; Ctrl-C cancels the run) and prints the final state and metrics; with ``--json``
``{"run_id", "status", "best_epoch", "best_val_macro_f1", "error", "val": {label: {metric:
value}}, "test": {...}}``.  ``runs`` first records what running workers wrote (and marks
runs whose worker is gone failed), then lists the runs, or shows one with its per-epoch
validation metrics.
"""

from __future__ import annotations

from endolite.cli.common import Output, _open, context


def _labels(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _metric_lines(run, metrics: dict) -> list[str]:
    lines = []
    for split in ("val", "test"):
        per_label = metrics.get(split) or {}
        if per_label:
            macro = metrics.get(f"{split}_macro_f1")
            lines.append(f"{split}: macro F1 {_fmt(macro)}")
        for label, m in per_label.items():
            lines.append(f"  {label:<24} F1 {_fmt(m.get('f1'))}  precision "
                         f"{_fmt(m.get('precision'))}  recall {_fmt(m.get('recall'))}  AUROC "
                         f"{_fmt(m.get('auroc'))}  AP {_fmt(m.get('ap'))}")
    return lines


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _final(run) -> dict:
    from endolite.services.training import split_metrics

    metrics = split_metrics(run)
    return {"run_id": run.id, "status": str(run.status), "best_epoch": run.best_epoch,
            "best_val_macro_f1": run.best_val_macro_f1, "error": run.error,
            "run_dir": run.run_dir, "val": metrics.get("val", {}), "test": metrics.get("test", {}),
            "val_macro_f1": metrics.get("val_macro_f1"),
            "test_macro_f1": metrics.get("test_macro_f1")}


def cmd_train(args, out: Output) -> int:
    from endolite.services import training

    ctx = context(args)
    run = training.start(
        ctx, labels=_labels(args.labels), backbone=args.backbone, epochs=args.epochs,
        batch_size=args.batch_size, image_size=args.image_size, lr_head=args.lr_head,
        lr_backbone=args.lr_backbone, freeze_backbone=args.freeze_backbone, loss=args.loss,
        sampler=args.sampler, treat_unlabeled_as_negative=args.treat_unlabeled_as_negative,
        val_fraction=args.val_fraction, test_fraction=args.test_fraction, seed=args.seed,
        pretrained_checkpoint=args.pretrained_checkpoint, nproc=args.nproc, device=args.device,
        precision=args.precision)
    if not args.wait:
        out.emit({"run_id": run.id, "status": str(run.status), "run_dir": run.run_dir},
                 [str(run.id)])
        return 0
    if not out.as_json:
        print(run.id, flush=True)
    try:
        run = training.wait(ctx, run.id)
    except KeyboardInterrupt:
        training.cancel(ctx, run.id, grace=5.0)
        run = training.wait(ctx, run.id, timeout=15.0)
    final = _final(run)
    lines = [f"run {run.id}: {run.status}" + (f" (best epoch {run.best_epoch})"
                                              if run.best_epoch is not None else "")]
    if run.error:
        lines.append(f"error: {run.error}")
    out.emit(final, lines + _metric_lines(run, {**final}))
    return 0 if str(run.status) == "done" else 1


def cmd_runs(args, out: Output) -> int:
    from endolite.services import training
    from endolite.storage import training as repo

    settings, con = _open(args)
    training.sync_all(con, settings)
    if args.run_id is None:
        runs = repo.list_runs(con)
        out.emit([{"run_id": r.id, "status": str(r.status), "backbone": r.backbone,
                   "labels": list(r.labels), "progress": r.progress, "message": r.message,
                   "best_epoch": r.best_epoch, "best_val_macro_f1": r.best_val_macro_f1,
                   "created_at": r.created_at, "created_by": r.created_by} for r in runs],
                 [f"{r.id:>5} {str(r.status):<10} {r.backbone:<16} {','.join(r.labels):<30} "
                  f"{round(100 * r.progress):>3}%  {r.message}" for r in runs]
                 or ["no training runs"])
        return 0
    run = repo.get_run(con, args.run_id)
    rows = repo.metrics(con, run.id)
    data = {**_final(run), "progress": run.progress, "message": run.message,
            "backbone": run.backbone, "labels": list(run.labels), "config": run.config,
            "dataset": run.dataset, "metrics": rows}
    lines = [f"run {run.id}: {run.status} ({round(100 * run.progress)}%) {run.message}",
             f"backbone {run.backbone}; labels {', '.join(run.labels)}; dir {run.run_dir}"]
    if run.error:
        lines.append(f"error: {run.error}")
    for epoch in sorted({r["epoch"] for r in rows if r["split"] != "test"}):
        get = {(r["split"], r["label"], r["metric"]): r["value"] for r in rows if r["epoch"] == epoch}
        lines.append(f"epoch {epoch}: train loss {_fmt(get.get(('train', '', 'loss')))}, val loss "
                     f"{_fmt(get.get(('val', '', 'loss')))}, val macro F1 "
                     f"{_fmt(get.get(('val', '', 'macro_f1')))}")
    out.emit(data, lines + _metric_lines(run, _final(run)))
    return 0


def add_training_commands(sub) -> None:
    """Register ``train`` and ``runs`` on the main parser's subparsers."""
    s = sub.add_parser("train", help="train a multilabel frame classifier (leads and admins)")
    s.add_argument("--labels", required=True, help="comma-separated label names (output order)")
    s.add_argument("--backbone", required=True, help="timm model name or alias (resnet18, "
                                                     "gastro_rn50, efficientnet_b0, ...)")
    s.add_argument("--epochs", type=int, default=10)
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--image-size", type=int, default=224)
    s.add_argument("--freeze-backbone", action="store_true", help="train only the head")
    s.add_argument("--treat-unlabeled-as-negative", action="store_true",
                   help="a label with no value on a frame counts as absent (else unknown)")
    s.add_argument("--loss", choices=["bce", "focal"], default="bce")
    s.add_argument("--pretrained-checkpoint", metavar="FILE",
                   help="a local backbone checkpoint (.pt/.pth); nothing is downloaded")
    s.add_argument("--nproc", type=int, default=1, help="> 1: torchrun with N processes (DDP)")
    s.add_argument("--wait", action="store_true",
                   help="stay until the run ends and print its metrics (Ctrl-C cancels)")
    s.add_argument("--lr-head", type=float, default=1e-3)
    s.add_argument("--lr-backbone", type=float, default=1e-4)
    s.add_argument("--seed", type=int, default=42, help="split and training seed")
    s.add_argument("--sampler", choices=["plain", "balanced"], default="plain")
    s.add_argument("--val-fraction", type=float, default=0.2, help="of the videos / image groups")
    s.add_argument("--test-fraction", type=float, default=0.1, help="of the videos / image groups")
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    s.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                   help="mixed precision (auto: bfloat16 where measured faster, CUDA: bf16/fp16)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("runs", help="training runs (one run with its metrics)")
    s.add_argument("run_id", type=int, nargs="?")
    s.set_defaults(func=cmd_runs)
