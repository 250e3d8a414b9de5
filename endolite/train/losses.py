"""Masked multilabel losses: binary cross-entropy with logits and focal loss.

Shapes: ``logits``, ``y`` and ``known`` are float ``(N, L)`` tensors (N frames, L labels in
``config.labels`` order); ``y`` is 1 where the label is present, ``known`` is 1 where the label
is known for the frame and 0 where it is not (unknown entries add nothing to the loss and do
not count in the mean).  ``pos_weight`` is an optional ``(L,)`` tensor: the weight of a
positive entry of each label (1 = neutral).  The result is the mean over the known entries
(a 0-d tensor; 0 when no entry is known, still differentiable).  torch is imported lazily.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from endolite.errors import InvalidInput

LOSSES = ("bce", "focal")


def _reduce(per_entry, known, reduction: str):
    masked = per_entry * known
    if reduction == "sum":
        return masked.sum()
    if reduction != "mean":
        raise InvalidInput(f"loss reduction {reduction!r}: use 'mean' or 'sum'")
    return masked.sum() / known.sum().clamp(min=1.0)


def masked_bce(logits, y, known, *, pos_weight=None, reduction: str = "mean"):
    """Binary cross-entropy with logits over the known entries (``reduction`` ``mean`` over
    known entries, or ``sum``).  ``pos_weight`` multiplies the positive term of each label."""
    import torch.nn.functional as F

    per_entry = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight,
                                                   reduction="none")
    return _reduce(per_entry, known, reduction)


def masked_focal(logits, y, known, *, alpha: float = 0.25, gamma: float = 2.0,
                 pos_weight=None, reduction: str = "mean"):
    """Sigmoid focal loss (Lin et al. 2017) over the known entries: ``alpha_t * (1 - p_t) **
    gamma * CE``, ``alpha`` weighting positives and ``1 - alpha`` negatives; ``pos_weight``
    further multiplies the loss of positive entries of each label."""
    import torch
    import torch.nn.functional as F

    ce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * y + (1.0 - p) * (1.0 - y)
    alpha_t = alpha * y + (1.0 - alpha) * (1.0 - y)
    per_entry = alpha_t * (1.0 - p_t).pow(gamma) * ce
    if pos_weight is not None:
        per_entry = per_entry * (1.0 + (pos_weight - 1.0) * y)
    return _reduce(per_entry, known, reduction)


def make_loss(kind: str, *, class_weights: Sequence[float] | None = None, num_labels: int,
              alpha: float = 0.25, gamma: float = 2.0, device=None) -> Callable:
    """The loss of a run's config: ``fn(logits, y, known, reduction="mean") -> 0-d tensor``.

    ``kind`` is ``bce`` or ``focal``; ``class_weights`` (length ``num_labels``, positive
    numbers, or None for all 1) become the per-label positive weights."""
    import torch

    if kind not in LOSSES:
        raise InvalidInput(f"config loss {kind!r}: use one of {', '.join(LOSSES)}")
    weight = None
    if class_weights is not None:
        if len(class_weights) != num_labels:
            raise InvalidInput(f"config class_weights: {len(class_weights)} values for "
                               f"{num_labels} labels")
        if any(not (float(w) > 0) for w in class_weights):
            raise InvalidInput("config class_weights: every weight must be a positive number")
        weight = torch.tensor([float(w) for w in class_weights], dtype=torch.float32,
                              device=device)

    def loss(logits, y, known, reduction: str = "mean"):
        if kind == "focal":
            return masked_focal(logits, y, known, alpha=alpha, gamma=gamma, pos_weight=weight,
                                reduction=reduction)
        return masked_bce(logits, y, known, pos_weight=weight, reduction=reduction)

    return loss
