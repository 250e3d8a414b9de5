"""Segment Anything (SAM) engine with an on-disk embedding cache.

A click only runs SAM's small prompt encoder + mask decoder; the heavy image encoder runs once
per frame (:meth:`SamSegmenter.embed`) and its output is cached as float16 at
``<cache_dir>/sam/<model type>/<frame sha256>.npy`` with ``<frame sha256>.json`` beside it
(``original_size`` / ``input_size`` ``(H, W)`` needed to map prompts and masks, the precision,
the model type).  Files are written under a temporary name and moved into place.

Speed: the encoder's big attention maps are kept in the heap (:mod:`endolite.allocator`), which
alone takes a vit_b float32 embedding on the 2-core lab CPU from 13-21 s (warm runs of
segment-anything as shipped, in the same process) to about 6.4 s (bench/sam_click.py: 0.48x).
Precision: ``"bf16"`` runs a bfloat16 copy of the encoder whose attention adds SAM's
relative-position terms inside its q·k product (:mod:`endolite.segment.sam_fast`; the neck stays
float32);
``"auto"`` is measured on the machine, once per machine and model
(:mod:`endolite.segment.precision`): the first frame this engine embeds is embedded both ways,
the faster precision whose masks agree (IoU >= 0.99) is kept in ``<cache_dir>/sam/precision/``
and later engines read it.  The decoder always runs in float32.

Checkpoints are only read from a local path (:mod:`endolite.segment.sam_models`); nothing here
downloads anything.  ``build_tiny_sam`` makes a small randomly initialised SAM for tests;
background precomputation lives in :mod:`endolite.segment.precompute` (re-exported here).
"""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from endolite.allocator import keep_large_allocations
from endolite.errors import InvalidInput
from endolite.segment.base import Embedding, check_image, check_prompt, image_key
from endolite.segment.precision import (PRECISIONS, Calibration, calibrate, check_precision,
                                        load_calibration, machine_id, save_calibration)
from endolite.segment.precompute import FrameToEmbed, PrecomputeResult, nearest_first, precompute
from endolite.segment.sam_models import MODEL_TYPES, build_tiny_sam, load_sam

__all__ = ["MODEL_TYPES", "PRECISIONS", "FrameToEmbed", "PrecomputeResult", "SamSegmenter",
           "build_tiny_sam", "load_sam", "nearest_first", "precompute"]

MASK_INPUT_LOGIT = 8.0          # |logit| given to a binary mask_input (SAM expects logits)
_ENCODER_LOCK = threading.Lock()  # one bfloat16 encoder copy is made at a time


def _atomic_write(path: Path, data: bytes) -> None:
    from endolite.media import write_bytes_atomic

    write_bytes_atomic(path, data)


class SamSegmenter:
    """SAM engine serving :class:`endolite.segment.base.Segmenter`.

    ``model_type``: vit_b / vit_l / vit_h (the cache folder name; any label for ``model=``).
    ``checkpoint``: local ``.pth`` path (None with ``model=None`` means random weights, for
    benchmarks only).  ``model``: an already built ``Sam`` (tests).  ``cache_dir``: the data
    directory's ``cache`` folder (embeddings go to ``cache_dir/sam/<model_type>/``); None keeps
    embeddings in memory only.  ``precision``: "auto" | "bf16" | "fp32" for the encoder ("auto":
    measured once per machine and model, see :attr:`calibration`; stored under
    ``cache_dir/sam/precision/``, or kept in this engine only without a cache).
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
        check_precision(precision)
        self.model_type = model_type
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.cache_dir = Path(cache_dir) / "sam" / model_type if cache_dir is not None else None
        self.calibration_dir = Path(cache_dir) / "sam" if cache_dir is not None else None
        self.calibration: Calibration | None = None     # set once "auto" has been resolved
        self._calibration_lock = threading.Lock()
        self._requested = precision
        self._precision = precision
        self._model = model
        self._threads = threads
        self._decoder_threads = decoder_threads
        self._decoder = None        # the token-major decoder, made on the first click
        self._last_tokens: tuple | None = None   # (identity, tokens, embedding) of the last frame
        self._bf16 = None           # the bfloat16 encoder copy, made on first bf16 embedding
        self.name = f"sam:{model_type}"
        source = self.checkpoint.name if self.checkpoint else ("given model" if model is not None
                                                                else "random weights")
        self._source = source
        self.description = f"SAM {model_type} ({source})"
        self.encoder_runs = 0       # frames embedded by embed() (cache misses)
        self.calibration_runs = 0   # encoder runs spent measuring the precision

    # -- model -------------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = load_sam(self.model_type, self.checkpoint)
        return self._model

    @property
    def model_label(self) -> str:
        """What a precision calibration is valid for: the model type and its weights."""
        return f"{self.model_type} ({self._source})"

    @property
    def precision(self) -> str:
        """The encoder's precision actually used ("bf16" or "fp32").  "auto" is resolved from
        the stored calibration, else by calibrating on a synthetic frame (prefer
        :meth:`calibrate` with a real frame; :meth:`embed` does that on its first frame)."""
        if self._precision == "auto":
            self.calibrate()
        return self._precision

    def stored_calibration(self) -> Calibration | None:
        """This machine's stored calibration for this model, or None."""
        if self.calibration_dir is None:
            return None
        return load_calibration(self.calibration_dir, machine_id(self._threads), self.model_label)

    def calibrate(self, image: np.ndarray | None = None, *, force: bool = False,
                  runs: int | None = None) -> Calibration:
        """Resolve "auto": reuse the stored calibration, or measure both precisions on
        ``image`` ``(H, W, 3) uint8`` (None: a synthetic frame) and store the result.
        ``force`` measures again.  Returns the calibration (also in :attr:`calibration`)."""
        self._calibrate(image, key=None, force=force, runs=runs)
        assert self.calibration is not None
        return self.calibration

    def _calibrate(self, image: np.ndarray | None, *, key: str | None, force: bool = False,
                   runs: int | None = None) -> dict[str, Embedding]:
        """As :meth:`calibrate`; returns the embeddings measured (empty when reused).  One
        calibration at a time per engine (the page and a precompute job share one engine)."""
        with self._calibration_lock:
            return self._calibrate_locked(image, key=key, force=force, runs=runs)

    def _calibrate_locked(self, image: np.ndarray | None, *, key: str | None, force: bool,
                          runs: int | None) -> dict[str, Embedding]:
        if not force:
            found = self.calibration or self.stored_calibration()
            if found is not None:
                self.calibration = found
                if self._requested == "auto":
                    self._precision = found.choice
                return {}
        if image is None:
            from endolite.synthetic import moving_disc_frames

            image, _ = next(moving_disc_frames(1, height=480, width=640))
        image = check_image(image)
        key = key or image_key(image)
        def embed(mode: str) -> Embedding:
            self.calibration_runs += 1
            return self.compute_embedding(image, key=key, precision=mode)

        measured, embeddings = calibrate(
            embed,
            lambda emb, points, labels: self.predict(emb, points, labels)[0],
            image_size=image.shape[:2], machine=machine_id(self._threads),
            model=self.model_label, **({"runs": runs} if runs else {}))
        if self.calibration_dir is not None:
            save_calibration(self.calibration_dir, measured)
        self.calibration = measured
        if self._requested == "auto":
            self._precision = measured.choice
        return embeddings

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
        embedding = None
        if self._precision == "auto":      # first frame: measure on it (once per machine)
            embedding = self._calibrate(image, key=key).get(self._precision)
        if embedding is None or embedding.key != key:
            embedding = self.compute_embedding(image, key=key)
        self.encoder_runs += 1
        self._store(embedding)
        return embedding

    def compute_embedding(self, image: np.ndarray, *, key: str = "", precision: str | None = None
                          ) -> Embedding:
        """Run the image encoder (no cache).  ``precision`` overrides the engine's."""
        import torch
        from segment_anything.utils.transforms import ResizeLongestSide

        image = check_image(image)
        keep_large_allocations()
        mode = check_precision(precision) if precision else self.precision
        if mode == "auto":
            mode = self.precision
        if self._threads:
            torch.set_num_threads(self._threads)
        model = self.model
        resized = ResizeLongestSide(self.img_size).apply_image(image)
        tensor = torch.as_tensor(resized).permute(2, 0, 1).contiguous()[None].float()
        encoder = self._bf16_encoder() if mode == "bf16" else model.image_encoder
        with torch.inference_mode():
            features = encoder(model.preprocess(tensor))
        array = features[0].float().numpy().astype(np.float16)
        return Embedding(self.name, key or image_key(image), image.shape[:2], resized.shape[:2],
                         array, mode)

    def _bf16_encoder(self) -> Any:
        """The bfloat16 copy of the image encoder (:func:`endolite.segment.sam_fast.bf16_encoder`),
        made on first use and kept."""
        with _ENCODER_LOCK:
            if self._bf16 is None:
                from endolite.segment.sam_fast import bf16_encoder

                self._bf16 = bf16_encoder(self.model.image_encoder)
            return self._bf16

    def predict_best(self, embedding: Embedding, points, labels, box=None,
                     mask_input: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """``predict`` (multimask) keeping only the highest-scoring mask ``(H, W) bool`` and its
        score: the same mask, but only that candidate is upscaled to the frame."""
        masks, scores = self.predict(embedding, points, labels, box=box, mask_input=mask_input,
                                     _best_only=True)
        return masks[0], float(scores[0])

    def predict(self, embedding: Embedding, points: np.ndarray | Sequence[Sequence[float]],
                labels: np.ndarray | Sequence[int], box: Sequence[float] | None = None,
                mask_input: np.ndarray | None = None, *, multimask: bool = True,
                _best_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
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
        tokens = self._tokens_of(embedding)
        previous_threads = torch.get_num_threads()
        if self._decoder_threads:
            torch.set_num_threads(self._decoder_threads)
        try:
            with torch.inference_mode():
                sparse, dense = model.prompt_encoder(
                    points=(coords, labels_t) if coords is not None else None, boxes=box_t,
                    masks=mask_t)
                low_res, iou = self.decoder(tokens, sparse, dense, embedding.features.shape[-2:],
                                            multimask=multimask, best_only=_best_only)
                masks = self._upscale(low_res, embedding) > model.mask_threshold
            return masks[0].numpy(), iou[0].float().numpy().astype(np.float32)
        finally:
            if self._decoder_threads:
                torch.set_num_threads(previous_threads)

    @property
    def decoder(self) -> Any:
        """SAM's mask decoder on token-major tensors (:mod:`endolite.segment.sam_decoder`)."""
        if self._decoder is None:
            from endolite.segment.sam_decoder import Decoder

            self._decoder = Decoder(self.model)
        return self._decoder

    def _tokens_of(self, embedding: Embedding) -> Any:
        """The embedding as the decoder's ``(1, h*w, C) float32`` tokens, kept for the last
        embedding decoded (every click on a frame reuses them)."""
        import torch

        ident = (embedding.key, embedding.precision, id(embedding.features))
        last = self._last_tokens               # one read: other sessions' clicks may replace it
        if last is None or last[0] != ident:
            features = torch.from_numpy(np.ascontiguousarray(embedding.features))
            last = (ident, self.decoder.tokens(features), embedding)
            self._last_tokens = last
        return last[1]

    def _upscale(self, low_res: Any, embedding: Embedding) -> Any:
        """Low-res logits (1, K, m, m) -> (1, K, H, W) by one bilinear lookup at the position
        SAM's postprocess (upscale to the encoder size, crop the padding, resize to the image)
        maps each output pixel to: same geometry, ~10x cheaper than its two resizes."""
        import torch
        import torch.nn.functional as F

        low = low_res.shape[-1]
        height, width = (int(v) for v in embedding.image_size)
        h_in, w_in = (int(v) for v in embedding.input_size)
        key = (low, height, width, h_in, w_in)
        cached = getattr(self, "_grid", None)
        if cached is not None and cached[0] == key:
            grid = cached[1]                      # the same frame size: the same lookup grid
        else:
            scale = low / self.img_size

            def axis(n_out: int, n_in: int) -> Any:
                centre = (torch.arange(n_out, dtype=torch.float32) + 0.5) * (n_in / n_out)  # input px
                return centre * scale / low * 2 - 1                  # grid_sample's [-1, 1]

            gy, gx = torch.meshgrid(axis(height, h_in), axis(width, w_in), indexing="ij")
            grid = torch.stack((gx, gy), dim=-1)[None]
            self._grid = (key, grid)
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
