"""The classifier network: a timm backbone with a multilabel head, and checkpoint loading.

Nothing here downloads weights: every model is made with ``pretrained=False``; a pretrained
backbone comes only from a local file the user names (``load_pretrained``), and what did not
load is reported, never silently ignored.

Checkpoint written by the worker (``best.pt``, ``torch.save`` of a dict)::

    {"format": "endolite-classifier/1", "backbone": "resnet18", "timm_name": "resnet18",
     "labels": ["polyp", ...], "image_size": 224, "mean": [r, g, b], "std": [r, g, b],
     "state_dict": {...}, "epoch": 3, "val_macro_f1": 0.93, "thresholds": [0.5, ...]}

Input to the network: float32 ``(N, 3, S, S)`` RGB, resized (squashed) to S x S, scaled to
[0, 1] and normalised with ``mean`` / ``std``; output ``(N, L)`` logits, one per label in
``labels`` order (sigmoid -> probability).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from endolite.errors import InvalidInput

CHECKPOINT_FORMAT = "endolite-classifier/1"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Backbones the page offers: our name -> timm model name.  ``gastro_rn50`` is a ResNet50 meant
#: for a GastroNet checkpoint (load it with ``pretrained_checkpoint``).  Any other timm model
#: name is accepted too (``create``), as long as timm knows it.
BACKBONES: dict[str, str] = {
    "resnet18": "resnet18",
    "resnet34": "resnet34",
    "resnet50": "resnet50",
    "gastro_rn50": "resnet50",
    "efficientnet_b0": "efficientnet_b0",
    "convnext_tiny": "convnext_tiny",
    "mobilenetv3_large_100": "mobilenetv3_large_100",
}

#: Prefixes other training code puts before a backbone's own parameter names.
STRIP_PREFIXES = ("module.", "backbone.", "encoder.", "model.")


@dataclass(frozen=True)
class LoadReport:
    """What loading a pretrained checkpoint did: the file, keys the model wanted but the file
    lacked (``missing``), keys of the file the model has no place for (``unexpected``, after
    prefix stripping), keys dropped as the classifier head, and how many tensors loaded."""

    path: str
    loaded: int
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    dropped_head: tuple[str, ...]
    stripped: tuple[str, ...]

    def lines(self) -> list[str]:
        """Human-readable summary, for the run's log and page."""
        out = [f"pretrained checkpoint {self.path}: {self.loaded} tensors loaded"]
        if self.stripped:
            out.append("stripped prefixes: " + ", ".join(self.stripped))
        if self.dropped_head:
            out.append(f"dropped classifier head: {', '.join(self.dropped_head)}")
        out.append(f"missing keys ({len(self.missing)}): {', '.join(self.missing[:20])}"
                   + (" ..." if len(self.missing) > 20 else ""))
        out.append(f"unexpected keys ({len(self.unexpected)}): {', '.join(self.unexpected[:20])}"
                   + (" ..." if len(self.unexpected) > 20 else ""))
        return out


def timm_name(backbone: str) -> str:
    """The timm model name for ``backbone`` (our alias or a timm name); InvalidInput if unknown."""
    import timm

    name = BACKBONES.get(backbone, backbone)
    if not timm.is_model(name):
        raise InvalidInput(f"backbone {backbone!r}: not a timm model (choose one of "
                           f"{', '.join(BACKBONES)})")
    return name


def create(backbone: str, num_labels: int, *, pretrained_checkpoint: str | Path | None = None,
           drop_rate: float = 0.0):
    """A timm ``backbone`` with a ``num_labels``-output head; random init unless
    ``pretrained_checkpoint`` names a local file.  Returns ``(model, LoadReport | None)``."""
    import timm

    if num_labels < 1:
        raise InvalidInput("a classifier needs at least one label")
    model = timm.create_model(timm_name(backbone), pretrained=False, num_classes=num_labels,
                              drop_rate=drop_rate)
    report = None
    if pretrained_checkpoint:
        report = load_pretrained(model, pretrained_checkpoint)
    return model, report


def _head_keys(model) -> set[str]:
    """Parameter / buffer names of the model's classifier head (timm's ``get_classifier``)."""
    head = model.get_classifier()
    names = set()
    for prefix, module in model.named_modules():
        if module is head:
            names = {f"{prefix}.{k}" if prefix else k for k in head.state_dict()}
    return names


def strip_state_dict(state: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Unwrap ``state["state_dict"]`` (or ``state["model"]``) when present and strip the
    prefixes ``module.``, ``backbone.``, ``encoder.``, ``model.`` (repeatedly, in any order) from
    every key.  Returns ``(state_dict, prefixes_stripped)``.  Pure (no torch needed)."""
    if not isinstance(state, Mapping):
        raise InvalidInput("checkpoint: not a dict of tensors")
    for wrapper in ("state_dict", "model_state_dict", "model"):
        inner = state.get(wrapper)
        if isinstance(inner, Mapping):
            state = inner
            break
    out: dict[str, Any] = {}
    seen: list[str] = []
    for key, value in state.items():
        key = str(key)
        changed = True
        while changed:
            changed = False
            for prefix in STRIP_PREFIXES:
                if key.startswith(prefix):
                    key = key[len(prefix):]
                    changed = True
                    if prefix not in seen:
                        seen.append(prefix)
        out[key] = value
    return out, tuple(seen)


def load_pretrained(model, path: str | Path) -> LoadReport:
    """Load a local checkpoint file into ``model``'s backbone (not its head).

    Accepts a raw state dict or a dict with a ``state_dict`` entry; strips the usual prefixes;
    drops the file's classifier-head tensors and any tensor whose shape differs from the
    model's.  Raises InvalidInput if the file cannot be read or not one tensor fits (so a
    run never trains a random network when a checkpoint was asked for).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"pretrained checkpoint {path}: no such file")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file
        raise InvalidInput(f"pretrained checkpoint {path}: cannot be read ({exc})") from exc
    state, stripped = strip_state_dict(raw)
    own = model.state_dict()
    head = _head_keys(model)
    dropped = tuple(sorted(k for k in state if k in head))
    usable = {}
    unexpected = []
    for key, value in state.items():
        if key in head:
            continue
        if key in own and hasattr(value, "shape") and tuple(value.shape) == tuple(own[key].shape):
            usable[key] = value
        else:
            unexpected.append(key)
    if not usable:
        raise InvalidInput(f"pretrained checkpoint {path}: none of its {len(state)} tensors fits "
                           f"this backbone (first keys: {', '.join(list(state)[:5])})")
    result = model.load_state_dict(usable, strict=False)
    missing = tuple(k for k in result.missing_keys if k not in head)
    return LoadReport(path=str(path), loaded=len(usable), missing=missing,
                      unexpected=tuple(unexpected), dropped_head=dropped,
                      stripped=stripped)


def load_checkpoint(path: str | Path, *, device: str = "cpu"):
    """A trained endolite classifier from its ``best.pt``: ``(model in eval mode, meta)`` where
    ``meta`` is the checkpoint dict without ``state_dict``."""
    import torch

    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001
        raise InvalidInput(f"model checkpoint {path}: cannot be read ({exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InvalidInput(f"model checkpoint {path}: not an endolite classifier checkpoint")
    import timm

    model = timm.create_model(ckpt["timm_name"], pretrained=False, num_classes=len(ckpt["labels"]))
    model.load_state_dict(ckpt["state_dict"])
    model.eval().to(device)
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    return model, meta
