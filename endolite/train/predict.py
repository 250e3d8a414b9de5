"""Fast inference with a trained endolite classifier (``best.pt``), over images, videos and
image groups.

``Predictor.load(path)`` reads the checkpoint (``endolite.train.model.load_checkpoint``) and
``predict(images)`` returns per-label probabilities and the pooled backbone features of a batch
of RGB images.  *Precision* is the numeric form inference runs in:

- ``float32``: the reference;
- ``float32+cl``: float32 with the network and input in ``channels_last`` memory format;
- ``bfloat16`` / ``bfloat16+cl``: ``torch.autocast`` to bfloat16 (CPU with AVX512-BF16 / AMX,
  or CUDA), without / with channels_last;
- ``float16`` / ``float16+cl`` (CUDA only): autocast to float16.

``precision="auto"`` measures, on the first batch given to ``predict`` (the calibration batch,
at most ``CALIBRATION_BATCH`` images), every form the device offers and keeps the fastest whose
probabilities agree with float32 within ``TOLERANCE`` (max absolute difference over the batch's
probabilities); ``float32`` is kept when nothing faster agrees.  What was chosen, each form's
time and agreement are in ``Predictor.calibration``.  The choice is remembered in this process
per checkpoint file (path and modification time), device and torch thread count, so a second
pass with the same model does not measure again.

``predict_video`` runs the network over a video's batches while a thread decodes the next ones
(``endolite.train.frame_batches.VideoBatches``: PyAV, frames scaled to the model's size by the
decoder); ``predict_images`` over frame files (``frame_batches.image_batches``).  Both write
nothing to the database: the service stores the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from endolite.errors import InvalidInput
from endolite.train.frame_batches import VideoBatches, image_batches

#: Largest max-abs probability difference to float32 that a faster form may show (0..1 scale).
TOLERANCE = 0.02
#: Images of the first batch used to choose the precision under "auto".
CALIBRATION_BATCH = 8
#: (checkpoint path, mtime_ns, device, torch threads) -> Calibration chosen in this process.
_CHOSEN: dict[tuple, "Calibration"] = {}
PRECISIONS = ("float32", "float32+cl", "bfloat16", "bfloat16+cl", "float16", "float16+cl")

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class PredictOutput:
    """``probs``: float32 ``(N, L)`` sigmoid probabilities in ``Predictor.labels`` order;
    ``features``: float32 ``(N, D)`` pooled backbone features (timm ``forward_features`` then
    ``forward_head(pre_logits=True)``), the input of the classifier layer."""

    probs: np.ndarray
    features: np.ndarray


@dataclass(frozen=True)
class Calibration:
    """How ``auto`` chose: ``chosen`` form; per form, seconds per image (median of timed runs)
    and the max abs probability difference to float32 on the calibration batch."""

    chosen: str
    images: int
    tolerance: float
    seconds_per_image: dict[str, float] = field(default_factory=dict)
    max_abs_diff: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class VideoPrediction:
    """The result of a pass over a video or image group.

    ``frame_numbers``: int64 ``(N,)`` decoded frame index (0-based) of each row for a video, the
    frame's position number for an image group; ``frame_ids``: int64 ``(N,)`` the stored frame id
    for image groups, -1 for video rows (the service fills those it has extracted);
    ``probs``: float32 ``(N, L)``; ``seconds``: wall time of decoding + inference;
    ``fps``: rows per second over that time; ``decoded``: frames the decoder produced (every
    frame is decoded even when every n-th is predicted)."""

    frame_numbers: np.ndarray
    frame_ids: np.ndarray
    probs: np.ndarray
    seconds: float
    fps: float
    decoded: int
    precision: str


def _device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise InvalidInput(f"device {device!r}: use auto, cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInput(f"device {device!r}: no CUDA device on this machine")
    return device


def candidate_precisions(device: str) -> tuple[str, ...]:
    """The forms worth measuring on ``device`` ("cpu" / "cuda..."): bfloat16 only where the CPU
    runs it natively (AVX512-BF16 or AMX), float16 only on CUDA."""
    import torch

    if device.startswith("cuda"):
        out = ["float32", "float32+cl", "float16", "float16+cl"]
        if torch.cuda.is_bf16_supported():
            out += ["bfloat16", "bfloat16+cl"]
        return tuple(out)
    out = ["float32", "float32+cl"]
    if _cpu_has_bf16():
        out += ["bfloat16", "bfloat16+cl"]
    return tuple(out)


def _cpu_has_bf16() -> bool:
    """Does this CPU have bfloat16 instructions (AVX512-BF16 or AMX)?  Linux flags; elsewhere
    assume not (emulated bfloat16 is slower than float32)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return bool(flags & {"avx512_bf16", "amx_bf16"})


class Predictor:
    """A trained classifier ready for inference.  Not thread-safe (one predict at a time).

    Attributes: ``labels`` (tuple of label names, the output order), ``image_size`` (S: images
    are squashed to S x S), ``precision`` (the form in use; "auto" until the first batch
    decides), ``device``, ``meta`` (the checkpoint without weights), ``calibration``
    (``Calibration`` when "auto" chose, else None).
    """

    def __init__(self, model, meta: dict[str, Any], *, device: str, precision: str):
        import torch

        self.model = model
        self.meta = meta
        self.labels: tuple[str, ...] = tuple(meta["labels"])
        self.image_size = int(meta.get("image_size") or 224)
        self.device = device
        self.calibration: Calibration | None = None
        mean = meta.get("mean") or (0.485, 0.456, 0.406)
        std = meta.get("std") or (0.229, 0.224, 0.225)
        # x = (u8 / 255 - mean) / std  ==  u8 * scale + shift
        self._scale = torch.tensor([1.0 / (255.0 * s) for s in std], device=device).view(1, 3, 1, 1)
        self._shift = torch.tensor([-m / s for m, s in zip(mean, std)], device=device).view(1, 3, 1, 1)
        self._layout: str | None = None
        self._cache_key: tuple | None = None
        if precision != "auto":
            if precision not in PRECISIONS:
                raise InvalidInput(f"precision {precision!r}: use auto or one of {', '.join(PRECISIONS)}")
            if precision.startswith("float16") and not device.startswith("cuda"):
                raise InvalidInput("precision float16: only on a CUDA device")
            self._set_layout(precision)
        self.precision = precision

    @classmethod
    def load(cls, checkpoint_path: str | Path, *, device: str = "auto",
             precision: str = "auto") -> "Predictor":
        """Load ``best.pt`` (format ``endolite-classifier/1``).  ``device``: auto | cpu | cuda;
        ``precision``: auto | one of ``PRECISIONS``.  InvalidInput for a missing or foreign file."""
        from endolite.train.model import load_checkpoint

        path = Path(checkpoint_path)
        if not path.is_file():
            raise InvalidInput(f"model checkpoint {path}: no such file")
        dev = _device(device)
        import torch

        model, meta = load_checkpoint(path, device=dev)
        out = cls(model, meta, device=dev, precision=precision)
        key = (str(path.resolve()), path.stat().st_mtime_ns, dev, torch.get_num_threads())
        out._cache_key = key
        if precision == "auto" and key in _CHOSEN:
            out.calibration = _CHOSEN[key]
            out.precision = out.calibration.chosen
            out._set_layout(out.precision)
        return out

    # --- the network -------------------------------------------------------------------------
    def _set_layout(self, precision: str) -> None:
        import torch

        layout = "cl" if precision.endswith("+cl") else "contiguous"
        if layout != self._layout:
            fmt = torch.channels_last if layout == "cl" else torch.contiguous_format
            self.model = self.model.to(memory_format=fmt)
            self._layout = layout

    def to_tensor(self, images: np.ndarray):
        """uint8 ``(N, H, W, 3)`` RGB -> normalised float32 ``(N, 3, S, S)`` on the device
        (bilinear resize with antialiasing when H, W differ from S)."""
        import torch
        import torch.nn.functional as F

        arr = np.asarray(images)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
            raise InvalidInput(f"images: expected uint8 (N, H, W, 3) RGB, got {arr.dtype} "
                               f"{tuple(arr.shape)}")
        # NHWC memory viewed as NCHW: already channels_last, no copy
        x = torch.from_numpy(np.ascontiguousarray(arr)).to(self.device).permute(0, 3, 1, 2)
        s = self.image_size
        x = x.float()
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False,
                              antialias=x.shape[-2] > s or x.shape[-1] > s)
        x = x * self._scale + self._shift
        return x

    def _forward(self, x, precision: str):
        """(probs, features) float32 numpy for a normalised batch ``x`` under ``precision``."""
        import torch

        self._set_layout(precision)
        x = x.contiguous(memory_format=torch.channels_last if precision.endswith("+cl")
                         else torch.contiguous_format)
        kind = precision.split("+")[0]
        dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(kind)
        dev_type = "cuda" if self.device.startswith("cuda") else "cpu"
        with torch.inference_mode(), torch.autocast(dev_type, dtype=dtype or torch.bfloat16,
                                                    enabled=dtype is not None):
            feats = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
            logits = self.model.get_classifier()(feats)
            probs = torch.sigmoid(logits.float())
        return (probs.cpu().numpy().astype(np.float32, copy=False),
                feats.float().cpu().numpy().astype(np.float32, copy=False))

    def _calibrate(self, x) -> None:
        """Choose the fastest precision agreeing with float32 within TOLERANCE on ``x``."""
        batch = x[:CALIBRATION_BATCH]
        ref, _ = self._forward(batch, "float32")
        forms = candidate_precisions(self.device)
        diffs: dict[str, float] = {}
        for prec in forms:      # warm-up (a layout's / dtype's first call is slower) + agreement
            probs, _ = self._forward(batch, prec)
            diffs[prec] = float(np.max(np.abs(probs - ref))) if probs.size else 0.0
        runs: dict[str, list[float]] = {p: [] for p in forms}
        for _ in range(3):      # interleaved, so a load change on the machine hits every form
            for prec in forms:
                t0 = time.perf_counter()
                self._forward(batch, prec)
                runs[prec].append(time.perf_counter() - t0)
        times = {p: float(np.median(r)) / len(batch) for p, r in runs.items()}
        ok = [p for p in times if diffs[p] <= TOLERANCE]
        chosen = min(ok, key=lambda p: times[p]) if ok else "float32"
        self.calibration = Calibration(chosen=chosen, images=len(batch), tolerance=TOLERANCE,
                                       seconds_per_image=times, max_abs_diff=diffs)
        self.precision = chosen
        self._set_layout(chosen)
        if self._cache_key is not None:
            _CHOSEN[self._cache_key] = self.calibration

    def predict(self, images: np.ndarray) -> PredictOutput:
        """Probabilities and features for uint8 RGB ``(N, H, W, 3)`` images of any size (squashed
        to ``image_size``).  N = 0 gives empty ``(0, L)`` / ``(0, 0)`` arrays.  Under "auto" the
        first non-empty batch also chooses the precision (see the module docstring)."""
        arr = np.asarray(images)
        if arr.ndim == 4 and arr.shape[0] == 0:
            return PredictOutput(np.zeros((0, len(self.labels)), np.float32),
                                 np.zeros((0, 0), np.float32))
        x = self.to_tensor(arr)
        if self.precision == "auto":
            self._calibrate(x)
        probs, feats = self._forward(x, self.precision)
        return PredictOutput(probs=probs, features=feats)

    # --- videos and image groups ---------------------------------------------------------------
    def predict_video(self, path: str | Path, *, every: int = 1, batch_size: int = 16,
                      progress: Progress | None = None,
                      cancelled: Callable[[], bool] | None = None) -> VideoPrediction:
        """Predict every ``every``-th decoded frame (0, n, 2n, ...) of the video at ``path``.

        Decoding (PyAV, frame threading, scaled to S x S RGB by the decoder) runs in a thread
        and fills a small queue of batches while the network works on the previous one.
        ``progress(fraction, message)`` after each batch (fraction over the stream's frame count
        when known).  ``cancelled()`` is polled between batches; a True stops the pass early
        and returns what was predicted.  InvalidInput when the file cannot be decoded.
        """
        source = VideoBatches(path, size=self.image_size, every=every, batch_size=batch_size)
        total = source.total
        t0 = time.perf_counter()
        numbers: list[np.ndarray] = []
        probs: list[np.ndarray] = []
        with source:
            for nums, imgs in source:
                out = self.predict(imgs)
                numbers.append(nums)
                probs.append(out.probs)
                done = int(nums[-1]) + 1
                if progress is not None:
                    frac = min(done / total, 0.999) if total else 0.0
                    progress(frac, f"predicted frame {done}" + (f" of {total}" if total else ""))
                if cancelled is not None and cancelled():
                    break
        if source.error is not None:
            raise InvalidInput(f"video {source.path}: cannot be decoded ({source.error})")
        return self._result(numbers, probs, None, t0, source.decoded)

    def predict_images(self, paths: Sequence[str | Path], numbers: Sequence[int],
                       frame_ids: Sequence[int], *, batch_size: int = 16,
                       progress: Progress | None = None) -> VideoPrediction:
        """Predict image files (an image group's frames); ``numbers`` / ``frame_ids`` are returned
        as the rows' frame numbers / ids, in the given order."""
        if not (len(paths) == len(numbers) == len(frame_ids)):
            raise InvalidInput("predict_images: paths, numbers and frame_ids differ in length")
        t0 = time.perf_counter()
        out_probs: list[np.ndarray] = []
        done = 0
        for imgs in image_batches(paths, size=self.image_size, batch_size=batch_size):
            out_probs.append(self.predict(imgs).probs)
            done += len(imgs)
            if progress is not None:
                progress(min(done / len(paths), 0.999), f"predicted image {done} of {len(paths)}")
        nums = [np.asarray(numbers, np.int64)] if len(paths) else []
        res = self._result(nums, out_probs, np.asarray(frame_ids, np.int64), t0, len(paths))
        return res

    def _result(self, numbers, probs, frame_ids, t0: float, decoded: int) -> VideoPrediction:
        seconds = time.perf_counter() - t0
        nums = np.concatenate(numbers).astype(np.int64) if numbers else np.zeros(0, np.int64)
        p = np.concatenate(probs) if probs else np.zeros((0, len(self.labels)), np.float32)
        ids = frame_ids if frame_ids is not None else np.full(len(nums), -1, np.int64)
        return VideoPrediction(frame_numbers=nums, frame_ids=ids, probs=p, seconds=seconds,
                               fps=len(nums) / seconds if seconds > 0 else 0.0, decoded=decoded,
                               precision=self.precision)
