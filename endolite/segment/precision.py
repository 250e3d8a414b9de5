"""SAM encoder precision: measured once per machine and model, then reused.

``"auto"`` used to be a CPU-flag rule (bfloat16 only with AMX tiles); on a 2-core EPYC with
AVX512-BF16 and no AMX that rule chose float32 although bfloat16 embedded in 0.53x the time
with masks agreeing at IoU 0.996.  So "auto" is now a measurement: :func:`calibrate` embeds one
frame in float32 and in bfloat16 (:mod:`endolite.segment.sam_fast`), ``runs`` times each
(interleaved; the fastest run of each counts, so the first run's one-off set-up does not),
decodes the same few point prompts from both embeddings and compares the masks.
:func:`decide` picks bfloat16 when it is at least ``MIN_SPEEDUP`` times faster and the masks
agree at mean IoU >= ``MIN_MASK_IOU``; otherwise float32.

The result is a :class:`Calibration` stored as JSON at
``<cache_dir>/sam/precision/<sha256 of machine + model>[:16].json``; the machine is
``hostname | CPU model | torch version | N threads`` (:func:`machine_id`) and the model is the
engine's model type plus its checkpoint's file name, so another machine, a torch upgrade, a
different thread count or another checkpoint measures again.  Delete the file to re-measure.
"""

from __future__ import annotations

import hashlib
import json
import platform
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from endolite.errors import InvalidInput

PRECISIONS = ("auto", "bf16", "fp32")
MIN_MASK_IOU = 0.99
MIN_SPEEDUP = 1.05      # bfloat16 must be >= 5% faster: within timing noise float32 stays
CALIBRATION_RUNS = 2


def bf16_supported() -> bool:
    """True when bfloat16 autocast on this CPU is supported by oneDNN and actually runs."""
    import torch

    try:
        if not torch.backends.mkldnn.is_available():
            return False
        check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        if check is not None and not check():
            return False
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            a = torch.ones(8, 8)
            out = torch.nn.functional.linear(a, a)
        return out.dtype == torch.bfloat16 and bool(torch.isfinite(out.float()).all())
    except Exception:  # noqa: BLE001 - any failure means: use float32
        return False


def check_precision(precision: str) -> str:
    """``precision`` validated ("auto" | "bf16" | "fp32")."""
    if precision not in PRECISIONS:
        raise InvalidInput(f"precision {precision!r}: use one of {PRECISIONS}")
    return precision


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; else platform.processor())."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_id(threads: int | None = None) -> str:
    """``"hostname | CPU model | torch X | N threads"``: what a calibration is valid for."""
    import torch

    threads = threads or torch.get_num_threads()
    return f"{socket.gethostname()} | {cpu_model()} | torch {torch.__version__} | {threads} threads"


@dataclass(frozen=True)
class Calibration:
    """One measurement: seconds per embedding (fastest of ``runs``), mask agreement between the
    two precisions (IoU over every mask of every prompt; None without bfloat16) and the choice."""

    machine: str
    model: str
    choice: str                     # "bf16" | "fp32"
    reason: str
    fp32_s: float
    bf16_s: float | None
    mask_iou_mean: float | None
    mask_iou_min: float | None
    image_size: tuple[int, int]
    runs: int
    measured_at: str

    @property
    def bf16_over_fp32(self) -> float | None:
        return None if self.bf16_s is None else self.bf16_s / self.fp32_s

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["image_size"] = list(self.image_size)
        out["bf16_over_fp32"] = (None if self.bf16_over_fp32 is None
                                 else round(self.bf16_over_fp32, 3))
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        fields = {k: data[k] for k in cls.__dataclass_fields__}
        fields["image_size"] = tuple(fields["image_size"])
        if fields["choice"] not in ("bf16", "fp32"):
            raise ValueError(f"choice {fields['choice']!r}")
        return cls(**fields)


def decide(fp32_s: float, bf16_s: float | None, mask_iou: float | None, *,
           min_iou: float = MIN_MASK_IOU, min_speedup: float = MIN_SPEEDUP) -> tuple[str, str]:
    """``(choice, reason)`` from one measurement: "bf16" when it ran and is at least
    ``min_speedup`` times faster than float32 with mean mask IoU >= ``min_iou``, else "fp32"."""
    if bf16_s is None or mask_iou is None:
        return "fp32", "bfloat16 is not supported on this CPU"
    ratio = bf16_s / fp32_s
    if mask_iou < min_iou:
        return "fp32", f"bfloat16 masks differ (mean IoU {mask_iou:.3f} < {min_iou})"
    if fp32_s < bf16_s * min_speedup:
        return "fp32", f"bfloat16 is not faster ({ratio:.2f}x the float32 time)"
    return "bf16", f"bfloat16 takes {ratio:.2f}x the float32 time, masks agree (IoU {mask_iou:.3f})"


def probe_prompts(image_size: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Five fixed point prompts ``(points (N, 2) x, y; labels (N,))``: the centre, the four
    quarter points, one of them with a negative click at the opposite quarter."""
    height, width = image_size
    at = [(0.5, 0.5), (0.3, 0.3), (0.7, 0.3), (0.3, 0.7), (0.7, 0.7)]
    prompts = [(np.array([[fx * width, fy * height]]), np.array([1])) for fx, fy in at]
    prompts.append((np.array([[0.3 * width, 0.3 * height], [0.7 * width, 0.7 * height]]),
                    np.array([1, 0])))
    return prompts


def calibrate(embed: Callable[[str], Any], masks: Callable[[Any, np.ndarray, np.ndarray], np.ndarray],
              *, image_size: tuple[int, int], machine: str, model: str,
              bf16: bool | None = None, runs: int = CALIBRATION_RUNS,
              clock: Callable[[], float] = time.perf_counter) -> tuple[Calibration, dict[str, Any]]:
    """Measure both precisions; returns the calibration and the last embedding of each
    (``{"fp32": ..., "bf16": ...}``, so the caller can keep the chosen one).

    ``embed(precision)`` embeds the calibration frame; ``masks(embedding, points, labels)``
    returns ``(K, H, W) bool`` masks for a prompt.  ``bf16``: whether bfloat16 runs
    here (None: :func:`bf16_supported`).
    """
    from endolite.masks import array_iou

    if runs < 1:
        raise InvalidInput("calibration needs at least one run per precision")
    bf16 = bf16_supported() if bf16 is None else bf16
    modes = ("fp32", "bf16") if bf16 else ("fp32",)
    seconds: dict[str, list[float]] = {mode: [] for mode in modes}
    embeddings: dict[str, Any] = {}
    for _ in range(runs):
        for mode in modes:                      # interleaved: drift hits both alike
            start = clock()
            embeddings[mode] = embed(mode)
            seconds[mode].append(clock() - start)
    fp32_s = min(seconds["fp32"])
    bf16_s = min(seconds["bf16"]) if bf16 else None
    ious: list[float] = []
    if bf16:
        for points, labels in probe_prompts(image_size):
            a = masks(embeddings["fp32"], points, labels)
            b = masks(embeddings["bf16"], points, labels)
            ious.extend(array_iou(x, y) for x, y in zip(a, b, strict=True))
    iou_mean = float(np.mean(ious)) if ious else None
    choice, reason = decide(fp32_s, bf16_s, iou_mean)
    calibration = Calibration(
        machine=machine, model=model, choice=choice, reason=reason, fp32_s=round(fp32_s, 4),
        bf16_s=None if bf16_s is None else round(bf16_s, 4),
        mask_iou_mean=None if iou_mean is None else round(iou_mean, 4),
        mask_iou_min=round(float(np.min(ious)), 4) if ious else None,
        image_size=(int(image_size[0]), int(image_size[1])), runs=runs,
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"))
    return calibration, embeddings


# --- storage ----------------------------------------------------------------------------------

def calibration_path(folder: str | Path, machine: str, model: str) -> Path:
    """``<folder>/precision/<digest>.json`` (``folder``: the ``cache/sam`` directory)."""
    digest = hashlib.sha256(f"{machine}\n{model}".encode()).hexdigest()[:16]
    return Path(folder) / "precision" / f"{digest}.json"


def load_calibration(folder: str | Path, machine: str, model: str) -> Calibration | None:
    """The stored calibration for this machine and model, or None (absent or unreadable)."""
    path = calibration_path(folder, machine, model)
    try:
        found = Calibration.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return found if (found.machine, found.model) == (machine, model) else None


def save_calibration(folder: str | Path, calibration: Calibration) -> Path:
    """Write the calibration atomically; returns its path."""
    from endolite.media import write_bytes_atomic

    path = calibration_path(folder, calibration.machine, calibration.model)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, json.dumps(calibration.to_json(), indent=1).encode())
    return path


def describe(calibration: Calibration) -> str:
    """One line for a page or a log: the choice and why."""
    return f"SAM encoder in {calibration.choice}: {calibration.reason} (measured {calibration.measured_at})"
