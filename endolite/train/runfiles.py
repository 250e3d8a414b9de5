"""The worker's side of the run directory (docs/TRAINING.md): reading ``config.json`` and
``manifest.json``, writing ``progress.json``, ``metrics.jsonl``, ``log.txt``, ``best.pt`` and
``result.json``.  JSON files are written to a temporary name and ``os.replace``d; only the main
rank (rank 0) writes, except that any rank appends a failure to ``log.txt``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from endolite.errors import InvalidInput
from endolite.train.amp import PRECISIONS

#: Optional config keys and their defaults (a missing key takes its default).
CONFIG_DEFAULTS: dict[str, Any] = {
    "run_id": None, "epochs": 10, "batch_size": 16, "image_size": 224, "lr_head": 1e-3,
    "lr_backbone": 1e-4, "warmup_epochs": 1, "weight_decay": 1e-4, "freeze_backbone": False,
    "loss": "bce", "focal_alpha": 0.25, "focal_gamma": 2.0, "class_weights": None,
    "sampler": "plain", "augment": True, "seed": 42, "pretrained_checkpoint": None,
    "num_workers": 0, "device": "auto", "channels_last": True, "precision": "auto",
}
_POSITIVE_INT = ("epochs", "batch_size", "image_size")
_NON_NEGATIVE = ("lr_head", "lr_backbone", "warmup_epochs", "weight_decay", "num_workers",
                 "focal_gamma")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InvalidInput(f"{path}: no such file") from exc
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: not readable JSON ({exc})") from exc


def load_config(run_dir: Path) -> dict[str, Any]:
    """``config.json`` with defaults filled in; InvalidInput naming the field if a value is
    unusable."""
    path = Path(run_dir) / "config.json"
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise InvalidInput(f"{path}: not a JSON object")
    cfg = {**CONFIG_DEFAULTS, **raw}
    labels = cfg.get("labels")
    if (not isinstance(labels, list) or not labels
            or not all(isinstance(x, str) and x for x in labels)):
        raise InvalidInput(f"{path}: labels must be a non-empty list of names")
    if len(set(labels)) != len(labels):
        raise InvalidInput(f"{path}: labels repeat a name")
    if not isinstance(cfg.get("backbone"), str) or not cfg["backbone"]:
        raise InvalidInput(f"{path}: backbone must be a timm model name")
    for key in _POSITIVE_INT:
        if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] < 1:
            raise InvalidInput(f"{path}: {key} must be a positive integer, not {cfg[key]!r}")
    for key in _NON_NEGATIVE:
        if not isinstance(cfg[key], (int, float)) or isinstance(cfg[key], bool) or cfg[key] < 0:
            raise InvalidInput(f"{path}: {key} must be a number >= 0, not {cfg[key]!r}")
    if not 0 <= cfg["focal_alpha"] <= 1:
        raise InvalidInput(f"{path}: focal_alpha must be in [0, 1]")
    if cfg["device"] not in ("auto", "cpu", "cuda"):
        raise InvalidInput(f"{path}: device must be auto, cpu or cuda, not {cfg['device']!r}")
    if cfg["precision"] not in PRECISIONS:
        raise InvalidInput(f"{path}: precision must be one of {', '.join(PRECISIONS)}, "
                           f"not {cfg['precision']!r}")
    if not isinstance(cfg["seed"], int):
        raise InvalidInput(f"{path}: seed must be an integer")
    return cfg


def load_manifest(run_dir: Path, labels: list[str]) -> list[dict[str, Any]]:
    """The rows of ``manifest.json``, checked against ``labels`` (the config's order)."""
    path = Path(run_dir) / "manifest.json"
    raw = _read_json(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("rows"), list):
        raise InvalidInput(f"{path}: expected an object with a rows list")
    if raw.get("labels", labels) != labels:
        raise InvalidInput(f"{path}: labels {raw.get('labels')} differ from the config's "
                           f"{labels}")
    rows = []
    for i, row in enumerate(raw["rows"]):
        where = f"{path}: row {i}"
        if not isinstance(row, dict) or not isinstance(row.get("path"), str):
            raise InvalidInput(f"{where}: needs a path")
        if row.get("split") not in ("train", "val", "test"):
            raise InvalidInput(f"{where}: split must be train, val or test")
        for key in ("y", "known"):
            v = row.get(key)
            if not isinstance(v, list) or len(v) != len(labels) or any(x not in (0, 1)
                                                                      for x in v):
                raise InvalidInput(f"{where}: {key} must be {len(labels)} values of 0 or 1")
        rows.append({"frame_id": row.get("frame_id"), "path": row["path"],
                     "media": row.get("media"), "split": row["split"],
                     "y": [int(x) for x in row["y"]], "known": [int(x) for x in row["known"]]})
    return rows


def one_line(exc: BaseException) -> str:
    """A one-line error for result.json: the exception's message (for an error re-raised from
    a DataLoader worker, its original last line), prefixed by the type unless it is ours."""
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) > 1 and "Original Traceback" in text:
        last = lines[-1]
        return last.split(": ", 1)[1] if last.startswith("endolite.errors.") else last
    msg = lines[0] if lines else ""
    from endolite.errors import EndoliteError

    if isinstance(exc, EndoliteError) and msg:
        return msg
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


class RunFiles:
    """Writes the worker's files in ``run_dir``; a no-op on ranks other than the main one."""

    def __init__(self, run_dir: Path, *, main: bool = True, rank: int = 0):
        self.dir = Path(run_dir)
        self.main = main
        self.rank = rank
        self._last_progress = 0.0
        self._progress: dict[str, Any] = {"epoch": 0, "epochs": None, "step": 0, "steps": None}

    def write_json(self, name: str, obj: Any) -> None:
        if not self.main:
            return
        target = self.dir / name
        tmp = self.dir / f".{name}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, allow_nan=False, default=_json_default)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)

    def log(self, line: str, *, always: bool = False) -> None:
        """Append a timestamped line to log.txt (``always``: from any rank, tagged)."""
        if not (self.main or always):
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        tag = f" [rank {self.rank}]" if self.rank else ""
        with open(self.dir / "log.txt", "a", encoding="utf-8") as fh:
            for part in line.splitlines() or [""]:
                fh.write(f"{stamp}{tag} {part}\n")

    def metrics_line(self, obj: dict[str, Any]) -> None:
        if not self.main:
            return
        with open(self.dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(obj, allow_nan=False, default=_json_default) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def progress(self, state: str, *, message: str = "", force: bool = False,
                 fraction: float | None = None, **fields: Any) -> None:
        """Rewrite progress.json, at most once a second unless ``force``."""
        now = time.time()
        self._progress.update(fields)
        if not self.main or (not force and now - self._last_progress < 1.0):
            return
        self._last_progress = now
        p = self._progress
        if fraction is None:
            fraction = (p["step"] / p["steps"]) if p.get("steps") else 0.0
        self.write_json("progress.json", {"state": state, **p, "fraction": round(fraction, 4),
                                          "message": message, "pid": os.getpid(),
                                          "updated_at": now})

    def cancel_requested(self) -> bool:
        return (self.dir / "cancel").exists()

    def save_checkpoint(self, state_dict, *, cfg: dict[str, Any], epoch: int,
                        val_macro_f1: float | None) -> None:
        """``best.pt`` in the format of endolite.train.model (written to a temp name)."""
        if not self.main:
            return
        import torch

        from endolite.train import model as model_mod

        ckpt = {"format": model_mod.CHECKPOINT_FORMAT, "backbone": cfg["backbone"],
                "timm_name": model_mod.timm_name(cfg["backbone"]), "labels": cfg["labels"],
                "image_size": cfg["image_size"], "mean": list(model_mod.IMAGENET_MEAN),
                "std": list(model_mod.IMAGENET_STD),
                "state_dict": {k: v.contiguous() for k, v in state_dict.items()},
                "epoch": epoch, "val_macro_f1": val_macro_f1,
                "thresholds": [0.5] * len(cfg["labels"]), "run_id": cfg.get("run_id")}
        tmp = self.dir / f".best.pt.{os.getpid()}.tmp"
        torch.save(ckpt, tmp)
        os.replace(tmp, self.dir / "best.pt")

    def fail(self, error: str) -> None:
        """result.json ``failed`` and progress ``failed``; a non-main rank writes them only
        when the main rank has not written a result."""
        if not self.main:
            if (self.dir / "result.json").exists():
                return
            self.main = True  # this rank's failure is the news; rank 0 may be waiting on it
        self.write_json("result.json", {"state": "failed", "error": error})
        self.progress("failed", message=error, force=True)


def _json_default(obj: Any):
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
