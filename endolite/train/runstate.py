"""The run directory as the app reads it (docs/TRAINING.md): JSON files written atomically,
the log's tail, and the worker's metric records flattened to ``training_metrics`` rows
``(split, label, metric, value)``.  No database access; ``endolite.train.runner`` records.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from endolite.config import Settings
from endolite.storage.training import MetricRow, TrainingRun

LOG, OUT = "log.txt", "worker.out"


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write ``data`` as JSON to a temporary name beside ``path``, then ``os.replace`` it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, allow_nan=False, default=_json_default)
    os.replace(tmp, path)
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when it is missing or not (yet) a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def run_path(settings: Settings, run: TrainingRun) -> Path:
    """The run directory (absolute)."""
    return settings.absolute(run.run_dir)


def tail(path: Path, *, lines: int = 20, max_chars: int = 4000) -> str:
    """The last ``lines`` lines of a text file ('' when it is missing)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64_000))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    out = "\n".join(text.rstrip().splitlines()[-lines:])
    return out[-max_chars:]


def log_tail(settings: Settings, run: TrainingRun, *, lines: int = 60) -> str:
    """The end of the run's log.txt, and of worker.out (stdout / stderr) when it has text."""
    folder = run_path(settings, run)
    parts = [t for t in (tail(folder / LOG, lines=lines, max_chars=8000),
                         tail(folder / OUT, lines=lines, max_chars=8000)) if t]
    return "\n--- worker.out ---\n".join(parts)


def error_tail(folder: Path) -> str:
    out = tail(folder / OUT, lines=15, max_chars=2500)
    log = tail(folder / LOG, lines=5, max_chars=1000)
    return "\n".join(t for t in (log, out) if t) or "(no output)"


# --- metric rows ------------------------------------------------------------------------------

def _number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def block_rows(split: str, block: Any) -> list[MetricRow]:
    """Rows of one split's metrics block ``{"macro_f1": .., "per_label": {label: {metric: v}}}``
    (a bare ``{label: {metric: v}}`` is read as per_label)."""
    if not isinstance(block, dict):
        return []
    rows = []
    per_label = block.get("per_label")
    if not isinstance(per_label, dict):
        per_label = {k: v for k, v in block.items() if isinstance(v, dict)}
    for key, value in block.items():
        if key != "per_label" and not isinstance(value, dict) and _number(value):
            rows.append((split, "", key, value))
    for label, metrics in per_label.items():
        if isinstance(metrics, dict):
            rows += [(split, str(label), k, v) for k, v in metrics.items() if _number(v)]
    return rows


def epoch_rows(record: dict[str, Any]) -> list[MetricRow]:
    """A metrics.jsonl line as metric rows: train loss / images_per_s / seconds / lr_head
    (split train, label ''), val loss and eval seconds (split val), and the macro and per-label
    metrics of the ``val`` block (``train_eval``, when the run has no validation: split train)."""
    rows: list[MetricRow] = []
    for key, split, metric in (("train_loss", "train", "loss"), ("val_loss", "val", "loss"),
                               ("images_per_s", "train", "images_per_s"),
                               ("seconds", "train", "seconds"), ("lr_head", "train", "lr_head"),
                               ("eval_seconds", "val", "seconds")):
        if record.get(key) is not None and _number(record[key]):
            rows.append((split, "", metric, record[key]))
    for key, split in (("val", "val"), ("train_eval", "train"), ("test", "test")):
        rows += block_rows(split, record.get(key))
    return rows


def finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
