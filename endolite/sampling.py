"""Frame selection strategies: pure functions over candidate information, no I/O.

A *selector* takes the candidates of one video range and returns the frame numbers to keep::

    picks = SELECTORS["kmeans"](candidates, count=50, rng=np.random.default_rng(0))

``Candidates`` holds what the caller could learn about the range: the frame numbers
(``(N,) int64``, ascending, unique, presentation order from 0) and, when a selector asks for
them through its ``needs``, small luma thumbnails ``(N, h, w) uint8``, keyframe flags
``(N,) bool`` or per-frame scores ``(N,) float`` (the ``uncertain`` method: a trained model's
uncertainty, ``endolite.train.uncertainty``).  Every
selector returns a sorted, duplicate-free ``(k,) int64`` array of frame numbers drawn from
``candidates.frame_numbers`` with ``k <= count``, and exactly ``min(count, N)`` unless its
docstring says otherwise.  Randomness comes only from the ``rng`` passed in, so a seed
reproduces a selection.

New methods plug in with ``register_selector``::

    @register_selector("uncertain", needs=("scores",))
    def select_uncertain(candidates, *, count, rng, features=None, **options): ...

``endolite.extract`` looks up ``SELECTORS[method].needs`` to decide which decoding passes to run.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from endolite.errors import InvalidInput

NEEDS = frozenset({"thumbnails", "keyframes", "scores"})


@dataclass(frozen=True)
class Candidates:
    """What a selector may choose from.

    ``frame_numbers``: ``(N,) int64`` ascending, unique.  ``thumbnails``: ``(N, h, w) uint8``
    luma (row-major, y then x), row i belongs to ``frame_numbers[i]``.  ``keyframe``: ``(N,)
    bool``, True for frames the container marks as keyframes (I/IDR).  ``scores``: ``(N,)``
    float, higher = more informative.  ``fps``: frames per second of the source (for
    ``target_fps``).
    """

    frame_numbers: np.ndarray
    thumbnails: np.ndarray | None = None
    keyframe: np.ndarray | None = None
    scores: np.ndarray | None = None
    fps: float | None = None

    def __post_init__(self) -> None:
        numbers = np.asarray(self.frame_numbers, dtype=np.int64).reshape(-1)
        object.__setattr__(self, "frame_numbers", numbers)
        n = numbers.shape[0]
        if n > 1 and not np.all(np.diff(numbers) > 0):
            raise ValueError("candidate frame numbers must be ascending and unique")
        for name in ("thumbnails", "keyframe", "scores"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"candidates.{name} has {len(value)} rows for {n} frames")

    def __len__(self) -> int:
        return int(self.frame_numbers.shape[0])

    def subset(self, keep: np.ndarray) -> "Candidates":
        """The candidates where ``keep`` ``(N,) bool`` is True (every per-frame field cut alike)."""
        keep = np.asarray(keep, dtype=bool)
        cut = {name: (None if getattr(self, name) is None else getattr(self, name)[keep])
               for name in ("thumbnails", "keyframe", "scores")}
        return Candidates(frame_numbers=self.frame_numbers[keep], fps=self.fps, **cut)


class Selector(Protocol):
    """``selector(candidates, *, count, rng, **options) -> (k,) int64`` sorted frame numbers."""

    needs: frozenset[str]

    def __call__(self, candidates: Candidates, *, count: int, rng: np.random.Generator,
                 **options: Any) -> np.ndarray: ...


SELECTORS: dict[str, Selector] = {}


def register_selector(name: str, *, needs: tuple[str, ...] = ()) -> Callable[[Callable[..., np.ndarray]], Selector]:
    """Decorator: add a selector under ``name``; ``needs`` names the Candidates fields it reads."""
    unknown = set(needs) - NEEDS
    if unknown:
        raise ValueError(f"unknown needs {sorted(unknown)}; choose from {sorted(NEEDS)}")

    def decorate(fn: Callable[..., np.ndarray]) -> Selector:
        fn.needs = frozenset(needs)  # type: ignore[attr-defined]
        SELECTORS[name] = fn  # type: ignore[assignment]
        return fn  # type: ignore[return-value]

    return decorate


def select(method: str, candidates: Candidates, *, count: int, rng: np.random.Generator,
           **options: Any) -> np.ndarray:
    """Run the selector registered as ``method``; InvalidInput for an unknown name."""
    selector = SELECTORS.get(str(method))
    if selector is None:
        raise InvalidInput(f"method {method!r}: choose one of {', '.join(sorted(SELECTORS))}")
    for need in selector.needs:
        if getattr(candidates, "keyframe" if need == "keyframes" else need) is None:
            raise InvalidInput(f"method {method!r} needs {need}, which were not provided")
    return selector(candidates, count=count, rng=rng, **options)


# --- helpers ----------------------------------------------------------------------------------

def spread_indices(n: int, count: int) -> np.ndarray:
    """``min(count, n)`` indices into ``range(n)`` at the centres of equal bins (``(k,) int64``).

    ``count >= n`` gives every index; ``count == 1`` the middle one.
    """
    if n <= 0 or count <= 0:
        return np.zeros(0, dtype=np.int64)
    if count >= n:
        return np.arange(n, dtype=np.int64)
    return np.floor((np.arange(count) + 0.5) * (n / count)).astype(np.int64)


def _check_count(count: int, *, allow_zero: bool = False) -> int:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)):
        raise InvalidInput(f"count: {count!r} is not a whole number")
    if count < 0 or (count == 0 and not allow_zero):
        raise InvalidInput(f"count: {count} must be at least 1")
    return int(count)


# --- selectors --------------------------------------------------------------------------------

@register_selector("uniform")
def select_uniform(candidates: Candidates, *, count: int, rng: np.random.Generator | None = None,
                   step: int | None = None, target_fps: float | None = None,
                   **_: Any) -> np.ndarray:
    """Evenly spaced frames.

    Without ``step``/``target_fps``: ``count`` frames at the centres of equal bins of the range.
    With ``step``: every ``step``-th candidate from the first; with ``target_fps``: one frame per
    ``1 / target_fps`` seconds (needs ``candidates.fps``).  Either grid is thinned evenly to at
    most ``count`` frames; ``count == 0`` keeps the whole grid.  ``rng`` is unused.
    """
    if step is not None and target_fps is not None:
        raise InvalidInput("step and target_fps: give one of them, not both")
    count = _check_count(count, allow_zero=step is not None or target_fps is not None)
    numbers = candidates.frame_numbers
    n = len(numbers)
    if step is None and target_fps is None:
        return numbers[spread_indices(n, count)]
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
            raise InvalidInput(f"step: {step!r} must be a whole number of frames >= 1")
        grid = np.arange(0, n, int(step), dtype=np.int64)
    else:
        fps = candidates.fps
        if not fps or fps <= 0:
            raise InvalidInput("target_fps: the video's frame rate is unknown")
        if not np.isfinite(target_fps) or target_fps <= 0:
            raise InvalidInput(f"target_fps: {target_fps!r} must be a positive number")
        stride = max(float(fps) / float(target_fps), 1.0)
        grid = np.unique(np.floor(np.arange(0.0, n - 0.5, stride) + 0.5).astype(np.int64))
        grid = grid[grid < n]
    if count and len(grid) > count:
        grid = grid[spread_indices(len(grid), count)]
    return numbers[grid]


@register_selector("random")
def select_random(candidates: Candidates, *, count: int, rng: np.random.Generator,
                  **_: Any) -> np.ndarray:
    """``min(count, N)`` distinct candidates drawn uniformly with ``rng`` (seeded by the caller)."""
    count = _check_count(count)
    n = len(candidates)
    chosen = rng.choice(n, size=min(count, n), replace=False) if n else np.zeros(0, np.int64)
    return np.sort(candidates.frame_numbers[chosen])


@register_selector("keyframes", needs=("keyframes",))
def select_keyframes(candidates: Candidates, *, count: int, rng: np.random.Generator | None = None,
                     **_: Any) -> np.ndarray:
    """Keyframes only (``candidates.keyframe``), thinned evenly to at most ``count``.

    Returns fewer than ``count`` when the range holds fewer keyframes.  ``rng`` is unused.
    """
    count = _check_count(count)
    keys = candidates.frame_numbers[np.asarray(candidates.keyframe, dtype=bool)]
    return keys[spread_indices(len(keys), count)]


@register_selector("kmeans", needs=("thumbnails",))
def select_kmeans(candidates: Candidates, *, count: int, rng: np.random.Generator,
                  n_components: int = 32, n_init: int = 3, **_: Any) -> np.ndarray:
    """Visual diversity as in DeepLabCut / Lightning Pose: k-means on PCA'd thumbnails.

    The ``(N, h, w)`` thumbnails are flattened to float32, centred, reduced with PCA to at most
    ``n_components`` dimensions, clustered into ``count`` clusters (scikit-learn KMeans, seeded
    from ``rng``), and the member nearest each centroid is picked.  Returns exactly
    ``min(count, N)`` frames: when identical thumbnails leave clusters empty, the remaining
    picks are filled farthest-point-first (the candidate farthest from everything picked).
    """
    count = _check_count(count)
    numbers = candidates.frame_numbers
    n = len(numbers)
    if count >= n:
        return numbers.copy()
    seed = int(rng.integers(0, 2**31 - 1))
    features, cluster_of, centers = kmeans_fit(candidates.thumbnails, count, seed=seed,
                                               n_components=n_components, n_init=n_init)
    distances = np.linalg.norm(features - centers[cluster_of], axis=1)
    picked: list[int] = []
    for cluster in range(count):
        members = np.flatnonzero(cluster_of == cluster)
        if len(members):
            picked.append(int(members[np.argmin(distances[members])]))
    picked = sorted(set(picked))
    if len(picked) < count:
        picked = _fill_farthest(features, picked, count)
    return numbers[np.asarray(sorted(picked), dtype=np.int64)]


@register_selector("uncertain", needs=("scores",))
def select_uncertain(candidates: Candidates, *, count: int, rng: np.random.Generator,
                     features: np.ndarray | None = None, candidates_factor: float | None = None,
                     **_: Any) -> np.ndarray:
    """Active learning: the most uncertain candidates, spread over the model's features.

    ``candidates.scores``: ``(N,)`` uncertainty (``endolite.train.uncertainty``; higher = less
    sure).  ``features``: ``(N, D)`` float, the model's image features of the same rows (None:
    the thumbnails when present, else no spreading).  Keeps the ``candidates_factor`` x
    ``count`` most uncertain rows and picks one per k-means cluster (the most uncertain
    member), seeded from ``rng``: ``uncertainty.pick_uncertain``.  Returns exactly
    ``min(count, N)`` frames.
    """
    from endolite.train import uncertainty

    count = _check_count(count)
    if features is None and candidates.thumbnails is not None:
        features = np.asarray(candidates.thumbnails).reshape(len(candidates), -1)
    factor = uncertainty.CANDIDATES_FACTOR if candidates_factor is None else float(candidates_factor)
    seed = int(rng.integers(0, 2**31 - 1))
    rows = uncertainty.pick_uncertain(candidates.scores, features, count=count,
                                      candidates_factor=factor, seed=seed)
    return candidates.frame_numbers[rows]


def kmeans_fit(thumbnails: np.ndarray, count: int, *, seed: int, n_components: int = 32,
               n_init: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k-means on PCA'd thumbnails (the features of ``select_kmeans``).

    ``thumbnails``: ``(N, ...)`` uint8 or float (each row flattened, e.g. ``(N, h, w)`` luma),
    ``1 <= count <= N``.  The rows are flattened to float32, centred, reduced with PCA to at most
    ``n_components`` dimensions and clustered (scikit-learn KMeans, ``random_state=seed``).
    Returns ``(features (N, d) float32, cluster of each row (N,) int, centers (count, d))``.
    Identical rows may leave clusters empty (no warning is raised for that).
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    n = len(thumbnails)
    features = np.asarray(thumbnails).reshape(n, -1).astype(np.float32)
    features -= features.mean(axis=0, keepdims=True)
    dims = min(n_components, n - 1, features.shape[1])
    # Problems this small run ~20x faster single-threaded than with BLAS/OpenMP thread pools
    # (which also fight the decoder's threads for the cores).
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)   # duplicates: callers fill
        if 1 <= dims < features.shape[1]:
            features = PCA(n_components=dims, svd_solver="randomized",
                           random_state=seed).fit_transform(features)
        kmeans = KMeans(n_clusters=count, n_init=n_init, random_state=seed).fit(features)
    return features, kmeans.labels_, kmeans.cluster_centers_


def _fill_farthest(features: np.ndarray, picked: list[int], count: int) -> list[int]:
    """Add indices farthest (Euclidean) from the picked set until ``count`` are picked."""
    chosen = list(picked) or [0]
    nearest = np.min(np.linalg.norm(features[:, None, :] - features[chosen][None], axis=2), axis=1)
    nearest[chosen] = -1.0
    while len(chosen) < count:
        index = int(np.argmax(nearest))
        chosen.append(index)
        nearest = np.minimum(nearest, np.linalg.norm(features - features[index], axis=1))
        nearest[chosen] = -1.0
    return chosen
