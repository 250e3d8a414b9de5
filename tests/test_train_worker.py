"""The training worker (endolite.train.worker) as a real process on a tiny synthetic data set.

Images are 40x40 PNGs whose labels are their colour: "red" is present iff the red channel is
high, "green" likewise (both, one or none), with Gaussian noise; frames are split into
train / val / test by "video".  A random-init timm resnet18 at 32 px learns this in a few
epochs.  Subprocesses run with ENDOLITE_TRAIN_THREADS=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from endolite.errors import InvalidInput

LABELS = ["red", "green"]


def make_run(root: Path, *, videos: int = 12, per_video: int = 6, size: int = 40,
             **config) -> Path:
    """A run directory with config.json + manifest.json over synthetic colour images
    (videos 0-7 train, 8-9 val, 10-11 test)."""
    from PIL import Image

    run = root / "run"
    images = root / "images"
    run.mkdir(parents=True)
    images.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for fid in range(videos * per_video):
        video = fid // per_video
        red, green = fid % 4 in (1, 3), fid % 4 in (2, 3)
        base = np.full((size, size, 3), 60.0)
        base[..., 0] += 160 * red
        base[..., 1] += 160 * green
        arr = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
        path = images / f"f{fid}.png"
        Image.fromarray(arr).save(path)
        split = "train" if video < 8 else "val" if video < 10 else "test"
        rows.append({"frame_id": fid, "path": str(path), "media": f"video:{video}",
                     "split": split, "y": [int(red), int(green)], "known": [1, 1]})
    cfg = {"run_id": 1, "backbone": "resnet18", "labels": LABELS, "epochs": 4,
           "batch_size": 8, "image_size": 32, "lr_head": 3e-3, "lr_backbone": 1e-3,
           "warmup_epochs": 1, "weight_decay": 1e-4, "freeze_backbone": False, "loss": "bce",
           "focal_alpha": 0.25, "focal_gamma": 2.0, "class_weights": None, "sampler": "plain",
           "augment": True, "seed": 0, "pretrained_checkpoint": None, "num_workers": 0,
           "device": "cpu", "channels_last": True, "precision": "fp32"}
    cfg.update(config)
    (run / "config.json").write_text(json.dumps(cfg))
    (run / "manifest.json").write_text(json.dumps({"labels": LABELS, "rows": rows}))
    return run


def _env() -> dict[str, str]:
    return {**os.environ, "ENDOLITE_TRAIN_THREADS": "1", "OMP_NUM_THREADS": "1"}


def run_worker(run: Path, *, nproc: int = 1, timeout: float = 240) -> subprocess.CompletedProcess:
    if nproc == 1:
        cmd = [sys.executable, "-m", "endolite.train.worker", str(run)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", str(nproc), "-m", "endolite.train.worker", str(run)]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)


def read(run: Path, name: str):
    return json.loads((run / name).read_text())


def metric_lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# --- losses and metrics (in process) ------------------------------------------------------

def test_masked_losses_ignore_unknown_entries():
    import torch

    from endolite.train.losses import make_loss, masked_bce, masked_focal

    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    known = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    changed = logits.clone()
    changed[1, 1] = -50.0  # an unknown entry: any value, same loss
    assert torch.isclose(masked_bce(logits, y, known), masked_bce(changed, y, known))
    full = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    assert torch.isclose(masked_bce(logits, y, known), full[known.bool()].mean())
    # focal by hand for the known entries
    p = torch.sigmoid(logits)
    pt = torch.where(y.bool(), p, 1 - p)
    at = torch.where(y.bool(), torch.tensor(0.25), torch.tensor(0.75))
    hand = (at * (1 - pt) ** 2 * full)[known.bool()].mean()
    assert torch.isclose(masked_focal(logits, y, known), hand)
    # a positive weight multiplies the positive entries only
    weighted = make_loss("bce", class_weights=[3.0, 1.0], num_labels=2)(logits, y, known)
    by_hand = (full * torch.tensor([[3.0, 1.0], [1.0, 1.0]]))[known.bool()].mean()
    assert torch.isclose(weighted, by_hand)
    assert float(masked_bce(logits, y, torch.zeros_like(known))) == 0.0
    with pytest.raises(InvalidInput, match="class_weights"):
        make_loss("bce", class_weights=[1.0], num_labels=2)


def test_metrics_on_known_entries_and_undefined_values():
    from endolite.train.metrics import evaluate

    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.9], [0.4, 0.2]])
    y = np.array([[1, 0], [0, 0], [1, 0], [1, 0]])
    known = np.array([[1, 1], [1, 1], [1, 0], [1, 1]])
    out = evaluate(probs, y, known, ["a", "b"])
    a, b = out["per_label"]["a"], out["per_label"]["b"]
    assert (a["tp"], a["fp"], a["tn"], a["fn"]) == (2, 0, 1, 1)
    assert a["precision"] == 1.0 and a["recall"] == pytest.approx(2 / 3)
    assert a["f1"] == pytest.approx(0.8) and a["auroc"] == 1.0 and a["support"] == 3
    # b: the 0.9 at an unknown entry does not count; only negatives known -> no AUROC / AP
    assert (b["tp"], b["fp"], b["tn"], b["fn"]) == (0, 1, 2, 0) and b["known"] == 3
    assert b["auroc"] is None and b["ap"] is None and b["recall"] is None and b["f1"] == 0.0
    assert out["macro_f1"] == pytest.approx(0.4)
    empty = evaluate(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 2)), ["a", "b"])
    assert empty["macro_f1"] is None and empty["per_label"]["a"]["support"] == 0


# --- pretrained checkpoints ---------------------------------------------------------------

def test_pretrained_state_dict_with_prefixes_and_wrapper(tmp_path):
    import torch

    from endolite.train import model as model_mod

    source, _ = model_mod.create("resnet18", 5)
    wrapped = {"state_dict": {f"module.backbone.{k}": v for k, v in source.state_dict().items()},
               "epoch": 9}
    wrapped["state_dict"]["module.backbone.extra.weight"] = torch.ones(3)
    path = tmp_path / "gastro.pth"
    torch.save(wrapped, path)
    net, report = model_mod.create("resnet18", 2, pretrained_checkpoint=path)
    assert report.stripped == ("module.", "backbone.")
    assert set(report.dropped_head) == {"fc.weight", "fc.bias"}
    assert report.unexpected == ("extra.weight",) and report.missing == ()
    own, src = net.state_dict(), source.state_dict()
    assert torch.equal(own["conv1.weight"], src["conv1.weight"])
    assert torch.equal(own["layer4.1.bn2.running_var"], src["layer4.1.bn2.running_var"])
    assert own["fc.weight"].shape == (2, 512)  # the head is the new one, not the file's
    assert any("tensors loaded" in line for line in report.lines())

    # a file whose tensors fit nothing is refused, never silently ignored
    bad = tmp_path / "other.pth"
    torch.save({"encoder.blocks.0.attn.qkv.weight": torch.zeros(7, 7)}, bad)
    with pytest.raises(InvalidInput, match="none of its 1 tensors fits"):
        model_mod.create("resnet18", 2, pretrained_checkpoint=bad)


def test_worker_fails_on_a_checkpoint_that_fits_nothing(tmp_path):
    import torch

    bad = tmp_path / "unrelated.pth"
    torch.save({"state_dict": {"model.vit.patch_embed.weight": torch.zeros(4, 4)}}, bad)
    run = make_run(tmp_path, pretrained_checkpoint=str(bad))
    proc = run_worker(run)
    assert proc.returncode == 1, proc.stderr
    result = read(run, "result.json")
    assert result["state"] == "failed"
    assert str(bad) in result["error"] and "fits this backbone" in result["error"]
    assert read(run, "progress.json")["state"] == "failed"
    assert "Traceback" in (run / "log.txt").read_text()
    assert not (run / "best.pt").exists() and not (run / "metrics.jsonl").exists()


# --- failures, cancel ---------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_unreadable_image_fails_the_run_naming_the_file(tmp_path, damage):
    run = make_run(tmp_path, epochs=1)
    rows = read(run, "manifest.json")["rows"]
    victim = Path(rows[3]["path"])
    if damage == "missing":
        victim.unlink()
    else:
        victim.write_bytes(victim.read_bytes()[:60])  # a truncated PNG
    proc = run_worker(run)
    assert proc.returncode != 0
    result = read(run, "result.json")
    assert result["state"] == "failed"
    assert str(victim) in result["error"] and "\n" not in result["error"]
    assert read(run, "progress.json")["state"] == "failed"
    assert str(victim) in (run / "log.txt").read_text()


@pytest.mark.slow
def test_cancel_file_stops_the_run(tmp_path):
    run = make_run(tmp_path, epochs=200)
    cmd = [sys.executable, "-m", "endolite.train.worker", str(run)]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (run / "metrics.jsonl").exists():  # a full epoch ran: it is training
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        (run / "cancel").touch()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert read(run, "result.json") == {"state": "cancelled"}
    progress = read(run, "progress.json")
    assert progress["state"] == "cancelled" and progress["epoch"] < 200
    assert len(metric_lines(run)) < 200


# --- training runs ------------------------------------------------------------------------

@pytest.mark.slow
def test_worker_learns_colours_and_writes_the_run_files(tmp_path):
    import torch

    from endolite.train.data import FrameDataset
    from endolite.train.model import load_checkpoint

    run = make_run(tmp_path, epochs=4)
    proc = run_worker(run)
    assert proc.returncode == 0, proc.stderr + (run / "log.txt").read_text()
    result = read(run, "result.json")
    assert result["state"] == "done" and result["selected_on"] == "val"
    assert result["best_val_macro_f1"] > 0.9
    assert result["test"]["macro_f1"] > 0.9
    red = result["test"]["per_label"]["red"]
    assert red["tp"] + red["fp"] + red["tn"] + red["fn"] == 12
    lines = metric_lines(run)
    assert [m["epoch"] for m in lines] == [1, 2, 3, 4]
    assert all(m["images_per_s"] > 0 and m["val"]["macro_f1"] is not None for m in lines)
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]
    best = max(lines, key=lambda m: m["val"]["macro_f1"])  # max keeps the earliest tie
    assert result["best_epoch"] == best["epoch"]
    assert read(run, "progress.json")["state"] == "done"
    assert result["pretrained"] is None
    log = (run / "log.txt").read_text()
    assert "device cpu" in log and "epoch 4/4" in log

    held = read(run, "heldout.json")
    assert held["labels"] == LABELS and len(held["rows"]) == 24
    assert {r["split"] for r in held["rows"]} == {"val", "test"}

    model, meta = load_checkpoint(run / "best.pt")
    assert meta["labels"] == LABELS and meta["epoch"] == result["best_epoch"]
    rows = [r for r in read(run, "manifest.json")["rows"] if r["split"] == "test"]
    ds = FrameDataset(rows, image_size=meta["image_size"], augment=False)
    images = torch.stack([ds[i][0] for i in range(len(ds))])
    with torch.no_grad():
        pred = (torch.sigmoid(model(images)) >= 0.5).int().numpy()
    truth = np.array([r["y"] for r in rows])
    assert (pred == truth).mean() >= 0.9
    by_id = {r["frame_id"]: r["p"] for r in held["rows"] if r["split"] == "test"}
    probs = torch.sigmoid(model(images)).detach().numpy()
    assert np.allclose([by_id[r["frame_id"]] for r in rows], probs, atol=1e-4)


@pytest.mark.slow
def test_worker_loads_a_pretrained_checkpoint_and_reports_it(tmp_path):
    import torch

    from endolite.train import model as model_mod

    source, _ = model_mod.create("resnet18", 3)
    ckpt = tmp_path / "pre.pth"
    torch.save({"model": {f"module.{k}": v for k, v in source.state_dict().items()}}, ckpt)
    run = make_run(tmp_path, epochs=1, pretrained_checkpoint=str(ckpt), freeze_backbone=True,
                   loss="focal", sampler="balanced", class_weights=[1.0, 2.0])
    proc = run_worker(run)
    assert proc.returncode == 0, proc.stderr + (run / "log.txt").read_text()
    result = read(run, "result.json")
    assert result["state"] == "done"
    assert any("tensors loaded" in line for line in result["pretrained"])
    assert any("dropped classifier head: fc.bias, fc.weight" in line
               for line in result["pretrained"])
    assert "tensors loaded" in (run / "log.txt").read_text()
    trained, _ = model_mod.load_checkpoint(run / "best.pt")
    # the backbone was frozen: its weights and BatchNorm statistics are still the checkpoint's
    for key in ("layer3.0.conv1.weight", "layer3.0.bn1.running_mean", "bn1.running_var"):
        assert torch.equal(trained.state_dict()[key], source.state_dict()[key]), key


@pytest.mark.slow
def test_two_process_torchrun_matches_one_process(tmp_path):
    """torchrun with 2 CPU processes (gloo) on the same config as a 1-process run.

    The runs are not bit-identical (each process takes batch_size frames, so the 2-process
    run makes half the optimizer steps with twice the frames per step, and shards differ), so
    the tolerance is on what they learn: both reach a validation macro F1 > 0.9 and the two
    best validation macro F1 differ by at most 0.1; both write one metrics line per epoch and
    the same files."""
    one = make_run(tmp_path / "one", epochs=4)
    two = make_run(tmp_path / "two", epochs=4)
    p1 = run_worker(one)
    assert p1.returncode == 0, p1.stderr
    p2 = run_worker(two, nproc=2)
    assert p2.returncode == 0, p2.stderr + (two / "log.txt").read_text()
    r1, r2 = read(one, "result.json"), read(two, "result.json")
    assert r2["state"] == "done" and r2["world_size"] == 2 and r1["world_size"] == 1
    assert r1["best_val_macro_f1"] > 0.9 and r2["best_val_macro_f1"] > 0.9
    assert abs(r1["best_val_macro_f1"] - r2["best_val_macro_f1"]) <= 0.1
    assert len(metric_lines(two)) == 4
    assert len(read(two, "heldout.json")["rows"]) == 24  # every frame once, gathered
    assert "2 process(es)" in (two / "log.txt").read_text()
    assert "[rank 1]" not in (two / "log.txt").read_text()  # rank 0 alone writes


@pytest.mark.slow
def test_without_validation_frames_the_best_epoch_is_chosen_on_training_metrics(tmp_path):
    run = make_run(tmp_path, epochs=2, videos=8)  # videos 0-7: train only
    proc = run_worker(run)
    assert proc.returncode == 0, proc.stderr
    result = read(run, "result.json")
    assert result["state"] == "done" and result["selected_on"] == "train"
    assert result["best_val_macro_f1"] is None and result["val"] is None
    assert result["best_train_macro_f1"] == result["train_eval"]["macro_f1"]
    assert result["test"]["macro_f1"] is None
    assert read(run, "heldout.json")["rows"] == []
    assert all(m["val"] is None and m["train_eval"]["per_label"] for m in metric_lines(run))
    assert "no validation frames" in (run / "log.txt").read_text()
