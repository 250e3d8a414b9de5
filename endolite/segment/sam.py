"""Segment Anything (SAM) engine with an on-disk embedding cache.

A click only runs SAM's small prompt encoder + mask decoder; the heavy image encoder runs once
per frame (:meth:`SamSegmenter.embed`) and its output is cached as float16 at
``<cache_dir>/sam/<model type>/<frame sha256>.npy`` with ``<frame sha256>.json`` beside it
(``original_size`` / ``input_size`` ``(H, W)`` needed to map prompts and masks, the precision,
the model type).  Files are written under a temporary name and moved into place.

Speed: the encoder's big attention maps are kept in the heap (:mod:`endolite.allocator`), which
alone takes a vit_b float32 embedding on the 2-core lab CPU from 13-21 s (warm runs of
segment-anything as shipped, in the same process) to about 6.4 s (bench/sam_click.py: 0.48x).
Precision: ``"bf16"`` runs the encoder under ``torch.autocast("cpu", dtype=torch.bfloat16)``
(masks agree with float32 at IoU >= 0.997).  ``"auto"`` picks it only where it is faster, i.e.
on CPUs with AMX bfloat16 tiles (oneDNN check plus a trial op); with AVX-512 BF16 alone it was
slower than float32 once the allocator was fixed (about 9 s against 6 s), so "auto" means
float32 there.  bench/sam_click.py measures all of it in one run.  The decoder always runs in
float32.

Checkpoints are only read from a local path (``sam_model_registry[model_type](checkpoint=path)``);
nothing here downloads anything.  ``build_tiny_sam`` makes a small randomly initialised SAM with
a consistent geometry (256 px input, 16 x 16 embedding, 64 x 64 low-res masks) for tests.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from endolite.allocator import keep_large_allocations
from endolite.errors import InvalidInput
from endolite.segment.base import Embedding, check_image, check_prompt, image_key

MODEL_TYPES = ("vit_b", "vit_l", "vit_h")
PRECISIONS = ("auto", "bf16", "fp32")
MASK_INPUT_LOGIT = 8.0          # |logit| given to a binary mask_input (SAM expects logits)


def _bf16_supported() -> bool:
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


def _has_amx_bf16() -> bool:
    """True when the CPU advertises AMX bfloat16 tiles (Linux /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return False


def resolve_precision(precision: str) -> str:
    """"auto" -> "bf16" where it is the faster form (AMX bf16 and supported), else "fp32";
    "bf16"/"fp32" pass through (validated)."""
    if precision not in PRECISIONS:
        raise InvalidInput(f"precision {precision!r}: use one of {PRECISIONS}")
    if precision == "auto":
        return "bf16" if _has_amx_bf16() and _bf16_supported() else "fp32"
    return precision


def load_sam(model_type: str, checkpoint: str | os.PathLike[str] | None) -> Any:
    """A SAM model in eval mode: ``checkpoint`` read from disk, or random weights when None."""
    import torch
    from segment_anything import sam_model_registry

    if model_type not in MODEL_TYPES:
        raise InvalidInput(f"SAM model type {model_type!r}: use one of {MODEL_TYPES}")
    if checkpoint is None:
        model = sam_model_registry[model_type]()
    else:
        path = Path(checkpoint)
        if not path.is_file():
            raise InvalidInput(f"SAM checkpoint {path} does not exist")
        model = sam_model_registry[model_type]()
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise InvalidInput(f"{path.name} is not a SAM {model_type} checkpoint "
                               f"(name the file after its model: sam_vit_b/l/h_*.pth): {exc}") from exc
    return model.eval()


def build_tiny_sam(seed: int = 0) -> Any:
    """A tiny randomly initialised SAM for tests: 256 px input, patch 16 -> 16 x 16 x 32
    embedding, 2 encoder blocks of width 64, prompt dim 32, low-res masks 64 x 64."""
    from functools import partial

    import torch
    from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder, Sam,
                                           TwoWayTransformer)

    torch.manual_seed(seed)
    img_size, patch, dim = 256, 16, 32
    model = Sam(
        image_encoder=ImageEncoderViT(
            img_size=img_size, patch_size=patch, embed_dim=64, depth=2, num_heads=2, mlp_ratio=2,
            out_chans=dim, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True, window_size=4, global_attn_indexes=(1,)),
        prompt_encoder=PromptEncoder(
            embed_dim=dim, image_embedding_size=(img_size // patch, img_size // patch),
            input_image_size=(img_size, img_size), mask_in_chans=4),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=64, num_heads=2),
            transformer_dim=dim, iou_head_depth=2, iou_head_hidden_dim=32),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return model.eval()


def _atomic_write(path: Path, data: bytes) -> None:
    from endolite.media import write_bytes_atomic

    write_bytes_atomic(path, data)


class SamSegmenter:
    """SAM engine serving :class:`endolite.segment.base.Segmenter`.

    ``model_type``: vit_b / vit_l / vit_h (the cache folder name; any label for ``model=``).
    ``checkpoint``: local ``.pth`` path (None with ``model=None`` means random weights, for
    benchmarks only).  ``model``: an already built ``Sam`` (tests).  ``cache_dir``: the data
    directory's ``cache`` folder (embeddings go to ``cache_dir/sam/<model_type>/``); None keeps
    embeddings in memory only.  ``precision``: "auto" | "bf16" | "fp32" for the encoder.
    ``threads``: torch threads for the encoder (None: torch's default).  ``decoder_threads``:
    torch threads while a click is decoded (default 1: the decoder's ops are small, and on a
    busy 2-core machine two threads made a click take ~1 s instead of ~0.15 s; None keeps the
    process setting).
    """

    def __init__(self, model_type: str = "vit_b", checkpoint: str | os.PathLike[str] | None = None,
                 *, cache_dir: str | os.PathLike[str] | None = None, precision: str = "auto",
                 model: Any = None, threads: int | None = None, decoder_threads: int | None = 1):
        if model is None and model_type not in MODEL_TYPES:
            raise InvalidInput(f"SAM model type {model_type!r}: use one of {MODEL_TYPES}")
        if precision not in PRECISIONS:
            raise InvalidInput(f"precision {precision!r}: use one of {PRECISIONS}")
        self.model_type = model_type
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.cache_dir = Path(cache_dir) / "sam" / model_type if cache_dir is not None else None
        self._precision = precision
        self._model = model
        self._threads = threads
        self._decoder_threads = decoder_threads
        self._pe = None
        self.name = f"sam:{model_type}"
        source = self.checkpoint.name if self.checkpoint else ("given model" if model is not None
                                                                else "random weights")
        self.description = f"SAM {model_type} ({source})"
        self.encoder_runs = 0       # how many times the image encoder ran (cache misses)

    # -- model -------------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = load_sam(self.model_type, self.checkpoint)
        return self._model

    @property
    def precision(self) -> str:
        """The encoder's precision actually used ("bf16" or "fp32")."""
        if self._precision == "auto":
            self._precision = resolve_precision("auto")
        return self._precision

    @property
    def img_size(self) -> int:
        return int(self.model.image_encoder.img_size)

    # -- cache -------------------------------------------------------------------------------
    def cache_paths(self, key: str) -> tuple[Path, Path] | None:
        """``(<key>.npy, <key>.json)`` in the cache folder, or None without a cache."""
        if self.cache_dir is None:
            return None
        if not key or any(c in key for c in "/\\.") or len(key) > 128:
            raise InvalidInput(f"cache key {key!r} must be a plain hash string")
        return self.cache_dir / f"{key}.npy", self.cache_dir / f"{key}.json"

    def is_cached(self, key: str) -> bool:
        paths = self.cache_paths(key)
        return paths is not None and paths[0].is_file() and paths[1].is_file()

    def cached(self, key: str) -> Embedding | None:
        """The cached embedding for frame ``key`` (sha256), or None (no image needed)."""
        paths = self.cache_paths(key)
        if paths is None or not (paths[0].is_file() and paths[1].is_file()):
            return None
        try:
            meta = json.loads(paths[1].read_text())
            features = np.load(paths[0], allow_pickle=False)
        except (OSError, ValueError) as exc:  # a damaged file: recompute
            del exc
            return None
        if features.dtype != np.float16 or features.ndim != 3:
            return None
        return Embedding(self.name, key, tuple(meta["original_size"]), tuple(meta["input_size"]),
                         features, meta.get("precision", ""))

    def _store(self, embedding: Embedding) -> None:
        paths = self.cache_paths(embedding.key)
        if paths is None:
            return
        meta = {"model_type": self.model_type, "original_size": list(embedding.image_size),
                "input_size": list(embedding.input_size), "precision": embedding.precision,
                "shape": list(embedding.features.shape), "dtype": "float16"}
        buf = io.BytesIO()
        np.save(buf, embedding.features.astype(np.float16), allow_pickle=False)
        _atomic_write(paths[1], json.dumps(meta).encode())   # sidecar first: .npy marks a hit
        _atomic_write(paths[0], buf.getvalue())

    # -- protocol ----------------------------------------------------------------------------
    def embed(self, image: np.ndarray, *, key: str | None = None) -> Embedding:
        """The frame's image embedding ``(C, h', w') float16``: from the cache when present
        (the encoder does not run), else computed once and cached."""
        image = check_image(image)
        key = key or image_key(image)
        hit = self.cached(key)
        if hit is not None and hit.image_size == image.shape[:2]:
            return hit
        embedding = self.compute_embedding(image, key=key)
        self._store(embedding)
        return embedding

    def compute_embedding(self, image: np.ndarray, *, key: str = "", precision: str | None = None
                          ) -> Embedding:
        """Run the image encoder (no cache).  ``precision`` overrides the engine's."""
        import torch
        from segment_anything.utils.transforms import ResizeLongestSide

        image = check_image(image)
        keep_large_allocations()
        mode = resolve_precision(precision) if precision else self.precision
        if self._threads:
            torch.set_num_threads(self._threads)
        model = self.model
        resized = ResizeLongestSide(self.img_size).apply_image(image)
        tensor = torch.as_tensor(resized).permute(2, 0, 1).contiguous()[None].float()
        with torch.inference_mode():
            x = model.preprocess(tensor)
            if mode == "bf16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    features = model.image_encoder(x)
            else:
                features = model.image_encoder(x)
        self.encoder_runs += 1
        array = features[0].float().numpy().astype(np.float16)
        return Embedding(self.name, key or image_key(image), image.shape[:2], resized.shape[:2],
                         array, mode)

    def predict(self, embedding: Embedding, points: np.ndarray | Sequence[Sequence[float]],
                labels: np.ndarray | Sequence[int], box: Sequence[float] | None = None,
                mask_input: np.ndarray | None = None, *, multimask: bool = True
                ) -> tuple[np.ndarray, np.ndarray]:
        """Decoder only: masks ``(K, H, W) bool`` (K = 3 with ``multimask`` else 1) and SAM's
        predicted IoU scores ``(K,) float32``.  ``mask_input`` ``(H, W)`` is turned into the
        low-resolution logits SAM expects (+/-8 inside/outside)."""
        import torch
        from segment_anything.utils.transforms import ResizeLongestSide

        if embedding.engine != self.name:
            raise InvalidInput(f"embedding made by {embedding.engine!r}, not by {self.name!r}")
        prompt = check_prompt(points, labels, box, mask_input, embedding.image_size)
        model = self.model
        transform = ResizeLongestSide(self.img_size)
        original = tuple(int(v) for v in embedding.image_size)
        coords = labels_t = box_t = mask_t = None
        if len(prompt.points):
            xy = transform.apply_coords(prompt.points.astype(np.float64), original)
            coords = torch.as_tensor(xy, dtype=torch.float32)[None]
            labels_t = torch.as_tensor(prompt.labels, dtype=torch.int32)[None]
        if prompt.box is not None:
            box_t = torch.as_tensor(transform.apply_boxes(prompt.box[None], original),
                                    dtype=torch.float32)
        if prompt.mask is not None:
            mask_t = self._mask_logits(prompt.mask, embedding)
        features = torch.from_numpy(np.ascontiguousarray(embedding.features)).float()[None]
        previous_threads = torch.get_num_threads()
        if self._decoder_threads:
            torch.set_num_threads(self._decoder_threads)
        try:
            return self._decode(model, features, coords, labels_t, box_t, mask_t, embedding, multimask)
        finally:
            if self._decoder_threads:
                torch.set_num_threads(previous_threads)

    def _decode(self, model: Any, features: Any, coords: Any, labels_t: Any, box_t: Any,
                mask_t: Any, embedding: Embedding, multimask: bool) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            sparse, dense = model.prompt_encoder(
                points=(coords, labels_t) if coords is not None else None, boxes=box_t, masks=mask_t)
            low_res, iou = model.mask_decoder(
                image_embeddings=features, image_pe=self._dense_pe(),
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                multimask_output=multimask)
            masks = self._upscale(low_res, embedding) > model.mask_threshold
        return masks[0].numpy(), iou[0].float().numpy().astype(np.float32)

    def _dense_pe(self) -> Any:
        """The prompt encoder's positional encoding of the embedding grid (fixed: computed once)."""
        if getattr(self, "_pe", None) is None:
            import torch

            with torch.inference_mode():
                self._pe = self.model.prompt_encoder.get_dense_pe()
        return self._pe

    def _upscale(self, low_res: Any, embedding: Embedding) -> Any:
        """Low-res logits (1, K, m, m) -> (1, K, H, W) by one bilinear lookup at the position
        SAM's postprocess (upscale to the encoder size, crop the padding, resize to the image)
        maps each output pixel to: same geometry, ~10x cheaper than its two resizes."""
        import torch
        import torch.nn.functional as F

        low = low_res.shape[-1]
        height, width = (int(v) for v in embedding.image_size)
        h_in, w_in = (int(v) for v in embedding.input_size)
        scale = low / self.img_size

        def axis(n_out: int, n_in: int) -> Any:
            centre = (torch.arange(n_out, dtype=torch.float32) + 0.5) * (n_in / n_out)  # input px
            return centre * scale / low * 2 - 1                      # grid_sample's [-1, 1]

        gy, gx = torch.meshgrid(axis(height, h_in), axis(width, w_in), indexing="ij")
        grid = torch.stack((gx, gy), dim=-1)[None]
        return F.grid_sample(low_res.float(), grid, mode="bilinear", padding_mode="border",
                             align_corners=False)

    def _mask_logits(self, mask: np.ndarray, embedding: Embedding) -> Any:
        import cv2
        import torch

        h_in, w_in = embedding.input_size
        resized = cv2.resize(mask.astype(np.float32), (w_in, h_in), interpolation=cv2.INTER_LINEAR)
        padded = np.zeros((self.img_size, self.img_size), np.float32)
        padded[:h_in, :w_in] = resized
        low = int(self.model.prompt_encoder.mask_input_size[0])
        small = cv2.resize(padded, (low, low), interpolation=cv2.INTER_AREA)
        logits = np.where(small >= 0.5, MASK_INPUT_LOGIT, -MASK_INPUT_LOGIT).astype(np.float32)
        return torch.from_numpy(logits)[None, None]


# --- background precomputation ----------------------------------------------------------------

@dataclass(frozen=True)
class FrameToEmbed:
    """A frame for :func:`precompute`: ``key`` its sha256, ``index`` its position (frame number,
    for nearest-first order), ``load`` returns its ``(H, W, 3) uint8`` RGB pixels."""

    key: str
    index: int
    load: Callable[[], np.ndarray]


@dataclass(frozen=True)
class PrecomputeResult:
    computed: int
    cached: int
    failed: tuple[tuple[str, str], ...]      # (key, reason)
    stopped: bool = False


def nearest_first(frames: Iterable[FrameToEmbed], around: int | None) -> list[FrameToEmbed]:
    """Frames ordered by distance to frame number ``around`` (ties: earlier first); unchanged
    order when ``around`` is None."""
    items = list(frames)
    if around is None:
        return items
    return sorted(items, key=lambda f: (abs(f.index - around), f.index))


def precompute(engine: Any, frames: Iterable[FrameToEmbed], progress: Callable[[int, int], None] | None = None,
               *, around: int | None = None, should_stop: Callable[[], bool] | None = None
               ) -> PrecomputeResult:
    """Embed every frame not yet cached, nearest to ``around`` first (for a background job).

    ``engine`` needs ``embed`` and ``is_cached`` (engines without a cache, like the classical
    one, have nothing to precompute: every frame counts as cached).  ``progress(done, total)``
    is called after each frame; ``should_stop()`` returning True ends the loop early.  A frame
    that fails to load or embed is reported in ``failed`` and the loop goes on.
    """
    ordered = nearest_first(frames, around)
    total = len(ordered)
    is_cached = getattr(engine, "is_cached", None)
    computed = cached = 0
    failed: list[tuple[str, str]] = []
    for done, frame in enumerate(ordered, start=1):
        if should_stop is not None and should_stop():
            return PrecomputeResult(computed, cached, tuple(failed), stopped=True)
        if is_cached is None or is_cached(frame.key):
            cached += 1
        else:
            try:
                engine.embed(frame.load(), key=frame.key)
                computed += 1
            except Exception as exc:  # noqa: BLE001 - report and continue with the next frame
                failed.append((frame.key, str(exc) or type(exc).__name__))
        if progress is not None:
            progress(done, total)
    return PrecomputeResult(computed, cached, tuple(failed))
