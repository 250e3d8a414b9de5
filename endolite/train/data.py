"""The worker's data side: manifest rows -> normalised image tensors, and the samplers.

An item is ``(image, y, known, index)``: ``image`` float32 ``(3, S, S)`` RGB, squashed to
S x S (no crop, aspect ratio not kept), scaled to [0, 1] and normalised with the ImageNet
mean / std; ``y`` and ``known`` float32 ``(L,)``; ``index`` the row's position in the list the
dataset was made from.  Augmentations (``augment=True``, training only) suit endoscopy, where
the scope has no "up": horizontal and vertical flips, rotations within +-15 degrees, mild
colour jitter.  A file that is missing or cannot be decoded raises InvalidInput naming it.
torch / torchvision / PIL are imported lazily (this module is imported by the worker only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from endolite.errors import InvalidInput
from endolite.train.model import IMAGENET_MEAN, IMAGENET_STD


def hue_matrix(turns: float):
    """The 3x3 RGB hue-rotation matrix (the luminance-preserving one of CSS ``hue-rotate``) for
    ``turns`` of the colour wheel (0.02 = 7.2 degrees); rows sum to 1, so greys stay grey."""
    import math

    import torch

    c, s = math.cos(2 * math.pi * turns), math.sin(2 * math.pi * turns)
    return torch.tensor([
        [0.213 + 0.787 * c - 0.213 * s, 0.715 - 0.715 * c - 0.715 * s, 0.072 - 0.072 * c + 0.928 * s],
        [0.213 - 0.213 * c + 0.143 * s, 0.715 + 0.285 * c + 0.140 * s, 0.072 - 0.072 * c - 0.283 * s],
        [0.213 - 0.213 * c - 0.787 * s, 0.715 - 0.715 * c + 0.715 * s, 0.072 + 0.928 * c + 0.072 * s],
    ], dtype=torch.float32)


class HueRotate:
    """Random hue shift of up to ``max_turns`` of the colour wheel either way, as one 3x3 matrix
    product on the uint8 ``(3, H, W)`` image (torchvision's ColorJitter hue goes through HSV and
    took 3.6 of the 6.3 ms a 224 px training image spent in augmentation).  Returns uint8."""

    def __init__(self, max_turns: float):
        self.max_turns = float(max_turns)

    def __call__(self, image):
        import torch

        turns = (torch.rand(()).item() * 2 - 1) * self.max_turns
        flat = image.reshape(3, -1).to(torch.float32)
        out = (hue_matrix(turns) @ flat).round_().clamp_(0, 255)
        return out.to(torch.uint8).reshape(image.shape)


def make_transform(image_size: int, *, augment: bool):
    """A torchvision v2 transform: uint8 ``(3, H, W)`` tensor -> normalised float32
    ``(3, S, S)``."""
    import torch
    from torchvision.transforms import v2

    steps = [v2.Resize((image_size, image_size), antialias=True)]
    if augment:
        steps += [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(),
                  v2.RandomRotation(15),
                  v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.15),
                  HueRotate(0.02)]
    steps += [v2.ToDtype(torch.float32, scale=True),
              v2.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))]
    return v2.Compose(steps)


def read_rgb(path: str, *, size: int, frame_id: Any = None):
    """Decode ``path`` to a uint8 ``(3, H, W)`` RGB tensor; a JPEG is decoded at a reduced
    scale when it is much larger than ``size`` (PIL draft mode; still >= size)."""
    import numpy as np
    import torch
    from PIL import Image

    what = f"image {path}" + (f" (frame {frame_id})" if frame_id is not None else "")
    try:
        with Image.open(path) as img:
            img.draft("RGB", (size, size))
            arr = np.array(img.convert("RGB"))
    except FileNotFoundError as exc:
        raise InvalidInput(f"{what}: no such file") from exc
    except Exception as exc:  # noqa: BLE001 - any decoder error names the file
        raise InvalidInput(f"{what}: cannot be read ({type(exc).__name__}: {exc})") from exc
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)


class FrameDataset:
    """A map-style torch dataset over manifest rows (``{"frame_id", "path", "y", "known"}``)."""

    def __init__(self, rows: Sequence[dict], *, image_size: int, augment: bool):
        self.rows = list(rows)
        self.image_size = int(image_size)
        self.transform = make_transform(self.image_size, augment=augment)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        import torch

        row = self.rows[index]
        image = read_rgb(row["path"], size=self.image_size, frame_id=row.get("frame_id"))
        return (self.transform(image), torch.tensor(row["y"], dtype=torch.float32),
                torch.tensor(row["known"], dtype=torch.float32), index)


def balanced_weights(rows: Sequence[dict]) -> list[float]:
    """Per-frame draw weights for the ``balanced`` sampler: a frame weighs the largest
    ``1 / (positives of label j)`` over the labels it is known-positive for, and
    ``1 / (frames with no known positive)`` when it has none, so rare labels are drawn about as
    often as common ones.  Empty rows -> []."""
    if not rows:
        return []
    n_labels = len(rows[0]["y"])
    counts = [0] * n_labels
    n_none = 0
    for row in rows:
        pos = [j for j in range(n_labels) if row["y"][j] and row["known"][j]]
        for j in pos:
            counts[j] += 1
        n_none += not pos
    weights = []
    for row in rows:
        pos = [1.0 / counts[j] for j in range(n_labels) if row["y"][j] and row["known"][j]]
        weights.append(max(pos) if pos else 1.0 / max(n_none, 1))
    return weights


class ShardedSampler:
    """Per-epoch index order for one rank of ``world`` (``world=1``: a single process).

    ``kind="plain"``: a seeded permutation; ``kind="balanced"``: ``len(weights)`` draws with
    replacement in proportion to ``weights``.  Every rank computes the same global order from
    ``seed + epoch`` and takes every ``world``-th index from its ``rank``; the order is padded
    (wrapping round) so that every rank gets the same number of indices, as DistributedSampler
    does.  Call ``set_epoch`` before each epoch."""

    def __init__(self, n: int, *, kind: str = "plain", weights: Sequence[float] | None = None,
                 seed: int = 0, rank: int = 0, world: int = 1):
        if kind not in ("plain", "balanced"):
            raise InvalidInput(f"config sampler {kind!r}: use 'plain' or 'balanced'")
        self.n, self.kind, self.weights = n, kind, weights
        self.seed, self.rank, self.world = seed, rank, world
        self.epoch = 0
        self.per_rank = -(-n // world) if n else 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self):
        import torch

        if not self.n:
            return iter([])
        gen = torch.Generator().manual_seed(int(self.seed) + self.epoch)
        if self.kind == "balanced":
            w = torch.tensor(self.weights, dtype=torch.float64)
            order = torch.multinomial(w, self.n, replacement=True, generator=gen).tolist()
        else:
            order = torch.randperm(self.n, generator=gen).tolist()
        total = self.per_rank * self.world
        order = (order * (total // len(order) + 1))[:total]
        return iter(order[self.rank:total:self.world])
