"""Segmentation engines: SAM when a checkpoint is configured, else the classical fallback.

``engine_for(settings)`` picks the engine; ``choose_engine(settings)`` says which one and why
(the page shows ``EngineChoice.description``).  A SAM checkpoint is found, in this order:

1. ``$ENDOLITE_SAM_CHECKPOINT`` (a path to a ``.pth`` file; an unset/empty variable is skipped,
   a path that does not exist raises InvalidInput),
2. the newest ``*.pth`` file in ``<data>/models/sam/``.

The model type comes from the file name (``vit_b`` / ``vit_l`` / ``vit_h``, e.g. the released
``sam_vit_b_01ec64.pth``), else ``$ENDOLITE_SAM_MODEL``, else vit_b.  Nothing is downloaded.
The encoder's precision is ``$ENDOLITE_SAM_PRECISION`` (``auto`` / ``bf16`` / ``fp32``; unset:
``auto``, measured once per machine and model on the first frame embedded, which then costs
about four embeddings: :mod:`endolite.segment.precision`).
Heavy libraries (torch, segment_anything, cv2) load only when an engine first runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from endolite.errors import InvalidInput
from endolite.segment.base import Embedding, Prompt, Segmenter, check_prompt, image_key

ENV_CHECKPOINT = "ENDOLITE_SAM_CHECKPOINT"
ENV_MODEL = "ENDOLITE_SAM_MODEL"
ENV_PRECISION = "ENDOLITE_SAM_PRECISION"
DEFAULT_MODEL_TYPE = "vit_b"

__all__ = ["ENV_CHECKPOINT", "ENV_MODEL", "ENV_PRECISION", "Embedding", "EngineChoice", "Prompt", "Segmenter",
           "check_prompt", "choose_engine", "engine_for", "find_checkpoint", "image_key",
           "model_type_from_name"]


@dataclass(frozen=True)
class EngineChoice:
    """Which engine ``engine_for`` builds: ``kind`` "sam" or "classical"."""

    kind: str
    model_type: str | None
    checkpoint: Path | None
    description: str


def model_type_from_name(name: str, default: str | None = None) -> str:
    """vit_b / vit_l / vit_h found in a file name (case-insensitive), else ``default``
    (else $ENDOLITE_SAM_MODEL, else vit_b)."""
    found = re.search(r"vit[_-]?([blh])(?![a-z])", name.lower())
    if found:
        return f"vit_{found.group(1)}"
    fallback = default or os.environ.get(ENV_MODEL) or DEFAULT_MODEL_TYPE
    if fallback not in ("vit_b", "vit_l", "vit_h"):
        raise InvalidInput(f"${ENV_MODEL}={fallback!r}: use vit_b, vit_l or vit_h")
    return fallback


def find_checkpoint(settings: Any) -> tuple[Path | None, str]:
    """``(checkpoint path or None, where it came from / why none)``."""
    env = os.environ.get(ENV_CHECKPOINT, "").strip()
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise InvalidInput(f"${ENV_CHECKPOINT} points to {path}, which is not a file")
        return path.resolve(), f"${ENV_CHECKPOINT}"
    folder = Path(settings.models_dir) / "sam"
    found = sorted(folder.glob("*.pth"), key=lambda p: (p.stat().st_mtime, p.name), reverse=True) \
        if folder.is_dir() else []
    if found:
        return found[0], str(folder)
    return None, f"no ${ENV_CHECKPOINT} and no *.pth file in {folder}"


def choose_engine(settings: Any) -> EngineChoice:
    """Decide the engine without loading anything heavy."""
    checkpoint, origin = find_checkpoint(settings)
    if checkpoint is None:
        return EngineChoice("classical", None, None,
                            f"Classical engine (seeded watershed on colour edges): {origin}. "
                            "Put a SAM checkpoint there to click with SAM.")
    model_type = model_type_from_name(checkpoint.name)
    return EngineChoice("sam", model_type, checkpoint,
                        f"SAM {model_type} from {checkpoint.name} (found via {origin}); "
                        "image embeddings are cached per frame")


def engine_for(settings: Any, **options: Any) -> Segmenter:
    """The engine to annotate with: SAM when a checkpoint is configured, else classical.

    ``settings``: :class:`endolite.config.Settings` (uses ``models_dir`` and ``cache_dir``).
    ``options`` go to the engine's constructor (e.g. ``precision="fp32"`` for SAM; without it
    SAM's precision is ``$ENDOLITE_SAM_PRECISION``, else "auto").  The engine's
    ``description`` says which engine is active and why.
    """
    choice = choose_engine(settings)
    if choice.kind == "sam":
        from endolite.segment.precision import PRECISIONS
        from endolite.segment.sam import SamSegmenter

        if "precision" not in options:
            wanted = os.environ.get(ENV_PRECISION, "").strip() or "auto"
            if wanted not in PRECISIONS:
                raise InvalidInput(f"${ENV_PRECISION}={wanted!r}: use one of {PRECISIONS}")
            options = {**options, "precision": wanted}

        engine = SamSegmenter(choice.model_type, choice.checkpoint, cache_dir=settings.cache_dir,
                              **options)
    else:
        from endolite.segment.classical import ClassicalSegmenter

        engine = ClassicalSegmenter(**options)
    engine.description = choice.description
    return engine
