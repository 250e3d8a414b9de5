"""Training precision: float32, or mixed precision with ``torch.autocast`` (bfloat16 on CPU or
GPU, float16 with gradient scaling on GPU).  Weights, optimizer state and the checkpoint stay
float32 in every mode; only the forward pass's matrix products and convolutions run in the
lower precision, and the loss is computed in float32.

``precision`` in the run's config:

- ``"fp32"``: plain float32 (with TF32 matmuls on GPUs that have them, as before);
- ``"bf16"``: autocast to bfloat16 (refused with a clear message where bfloat16 does not run);
- ``"fp16"``: autocast to float16 with a ``GradScaler`` (CUDA only);
- ``"auto"`` (the default): CUDA -> bfloat16 where the GPU supports it, else float16;
  CPU -> measured at the start of the run: :func:`choose` times a few forward + backward passes
  of the real model on a real training batch in both precisions (interleaved, the fastest of
  each counts) and keeps bfloat16 only if it is at least ``MIN_SPEEDUP`` times faster (on a
  2-core Xeon with AMX, resnet18 at 224 px trained ~2.5x faster; CPUs without native
  bfloat16 emulate it and are slower).  The measurement leaves the model's weights and
  BatchNorm statistics as they were.

The choice and its reason go to the run's log and ``result.json`` (``precision``,
``precision_reason``).
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from endolite.errors import InvalidInput

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MIN_SPEEDUP = 1.15          # bfloat16 must win clearly; within noise float32 stays
MEASURE_STEPS = 2           # timed steps per precision (after one warm-up each)


@dataclass(frozen=True)
class Amp:
    """The precision a run trains in: ``precision`` "fp32" | "bf16" | "fp16", and why."""

    precision: str
    reason: str

    @property
    def dtype(self) -> Any:
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def autocast(self, device: Any) -> Any:
        """The context the forward pass runs in (a no-op for float32)."""
        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.dtype)

    def scaler(self, device: Any) -> Any:
        """A ``GradScaler`` for float16 (None otherwise: bfloat16 keeps float32's range)."""
        if self.precision != "fp16":
            return None
        import torch

        return torch.amp.GradScaler(device.type)


def check(precision: str) -> str:
    """``precision`` validated against :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise InvalidInput(f"precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    return precision


def _cpu_bf16() -> bool:
    from endolite.segment.precision import bf16_supported

    return bf16_supported()


def resolve_fixed(requested: str, device: Any) -> Amp | None:
    """The choice when no measurement is needed, or None (auto on a CPU that runs bfloat16).
    InvalidInput for a precision the device cannot run."""
    import torch

    check(requested)
    cuda = device.type == "cuda"
    if requested == "fp32":
        return Amp("fp32", "float32 as configured")
    if requested == "fp16":
        if not cuda:
            raise InvalidInput("precision fp16 needs a CUDA GPU (on CPU use bf16 or auto)")
        return Amp("fp16", "float16 autocast with gradient scaling as configured")
    if requested == "bf16":
        if cuda and not torch.cuda.is_bf16_supported():
            raise InvalidInput("precision bf16: this GPU does not support bfloat16 (use fp16)")
        if not cuda and not _cpu_bf16():
            raise InvalidInput("precision bf16: this CPU cannot run bfloat16 (use fp32 or auto)")
        return Amp("bf16", "bfloat16 autocast as configured")
    if cuda:
        if torch.cuda.is_bf16_supported():
            return Amp("bf16", "auto: the GPU supports bfloat16")
        return Amp("fp16", "auto: float16 with gradient scaling (the GPU has no bfloat16)")
    if not _cpu_bf16():
        return Amp("fp32", "auto: this CPU cannot run bfloat16")
    return None


def measure(net: Any, batch: Any, loss_of: Callable[[Any], Any], device: Any, *,
            steps: int = MEASURE_STEPS, clock: Callable[[], float] = time.perf_counter
            ) -> tuple[float, float]:
    """Seconds of one forward + backward pass of ``net`` on ``batch`` (``(N, 3, S, S)`` float on
    ``device``) in float32 and under bfloat16 autocast: the fastest of ``steps`` each after a
    warm-up, interleaved.  ``loss_of(logits)`` makes a scalar loss.  Gradients are cleared and
    the weights and buffers (BatchNorm statistics) restored afterwards."""
    import torch

    saved = copy.deepcopy(net.state_dict())
    was_training = net.training
    net.train()
    best = {"fp32": float("inf"), "bf16": float("inf")}
    try:
        for i in range(steps + 1):
            for mode in ("fp32", "bf16"):
                start = clock()
                with Amp(mode, "").autocast(device):
                    logits = net(batch)
                loss_of(logits.float()).backward()
                net.zero_grad(set_to_none=True)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                took = clock() - start
                if i:                                        # the first of each: warm-up
                    best[mode] = min(best[mode], took)
    finally:
        net.load_state_dict(saved)
        net.zero_grad(set_to_none=True)
        net.train(was_training)
    return best["fp32"], best["bf16"]


def decide(fp32_s: float, bf16_s: float, *, min_speedup: float = MIN_SPEEDUP) -> Amp:
    """The auto choice from one measurement (seconds per step)."""
    ratio = bf16_s / fp32_s if fp32_s > 0 else float("inf")
    if fp32_s >= bf16_s * min_speedup:
        return Amp("bf16", f"auto: a bfloat16 step took {ratio:.2f}x the float32 time "
                           f"({bf16_s:.3f} s vs {fp32_s:.3f} s)")
    return Amp("fp32", f"auto: bfloat16 was not faster ({ratio:.2f}x the float32 step time)")


def choose(requested: str, net: Any, dataset: Any, loss_fn: Callable[..., Any], dist: Any, *,
           batch_size: int, channels_last: bool) -> Amp:
    """The run's precision (see the module docstring).  ``net``: the model on ``dist.device``
    (not the DDP wrapper: measuring must not synchronise gradients); ``dataset``: the training
    frames without augmentation (its first ``batch_size`` items are the measured batch);
    ``loss_fn(logits, y, known)``.  Under DDP every process measures and bfloat16 is kept only
    if it was faster on all of them."""
    fixed = resolve_fixed(requested, dist.device)
    if fixed is not None:
        return fixed
    import torch

    items = [dataset[i] for i in range(min(batch_size, len(dataset)))]
    images = torch.stack([item[0] for item in items]).to(dist.device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    y = torch.stack([item[1] for item in items]).to(dist.device)
    known = torch.stack([item[2] for item in items]).to(dist.device)
    fp32_s, bf16_s = measure(net, images, lambda logits: loss_fn(logits, y, known), dist.device)
    chosen = decide(fp32_s, bf16_s)
    votes = dist.sum([1.0 if chosen.precision == "bf16" else 0.0])[0]
    if chosen.precision == "bf16" and votes < dist.world:
        chosen = Amp("fp32", f"{chosen.reason} here, but not on every process: float32")
    return chosen
