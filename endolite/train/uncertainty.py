"""Uncertainty scores of a multilabel classifier's predictions and the active-learning picker.

Pure functions over numpy arrays, no I/O (the model-scoring glue is ``endolite.train.active``).

``probs`` is always ``(N, L)`` float (sigmoid probabilities in [0, 1], one column per label,
one row per frame); for ``flicker_scores`` the rows must be in time order (neighbouring rows =
neighbouring sampled frames).  Every score is ``(N,) float64`` in [0, 1], higher = more
uncertain; ``N == 0`` gives an empty array, ``L == 0`` a row of zeros (nothing to be unsure of).

* ``entropy_scores``: the binary entropy (bits) of each label's probability, averaged over the
  labels: 1 when every label sits at 0.5, 0 when every label is 0 or 1.
* ``margin_scores``: ``1 - 2 * min_l |p_l - 0.5|``: 1 when *some* label sits at 0.5 (the frame is
  on the decision boundary of at least one label), 0 when every label is certain.  Unlike the
  mean entropy it does not dilute one doubtful label among many certain ones.
* ``flicker_scores``: mean over labels of the mean ``|p_t - p_t±1|`` over the row's existing
  neighbours: a model whose answer jumps between neighbouring frames of a video is unsure
  there even when each answer looks confident.
* ``uncertainty_scores``: ``(w_e * entropy + w_m * margin + w_f * flicker) / (w_e + w_m + w_f)``
  with ``WEIGHTS`` = entropy 0.4, margin 0.4, flicker 0.2 unless given.

``pick_uncertain`` keeps the most uncertain candidates and spreads them over the model's image
features with k-means, one pick per cluster (as Lightning Pose spreads its outlier frames), so a
budget of N frames is not spent on N near-copies of one confusing scene.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np

from endolite.errors import InvalidInput

#: Default weights of ``uncertainty_scores``: entropy and margin measure the doubt of one frame,
#: flicker the instability between neighbours (weighted lower: cuts and motion also move it).
WEIGHTS: Mapping[str, float] = {"entropy": 0.4, "margin": 0.4, "flicker": 0.2}

#: ``pick_uncertain`` keeps ``candidates_factor * count`` most uncertain rows before clustering.
CANDIDATES_FACTOR = 4

_EPS = 1e-12


def _probs(probs: np.ndarray, name: str = "probs") -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise InvalidInput(f"{name}: expected an (N, L) array of probabilities, got shape {p.shape}")
    if p.size and (not np.all(np.isfinite(p)) or p.min() < 0.0 or p.max() > 1.0):
        raise InvalidInput(f"{name}: probabilities must be finite and within [0, 1]")
    return p


def entropy_scores(probs: np.ndarray) -> np.ndarray:
    """Mean binary entropy in bits over the labels: ``(N, L)`` -> ``(N,) float64`` in [0, 1]."""
    p = _probs(probs)
    if p.shape[1] == 0:
        return np.zeros(p.shape[0])
    q = np.clip(p, _EPS, 1.0 - _EPS)
    h = -(q * np.log2(q) + (1.0 - q) * np.log2(1.0 - q))
    h[(p == 0.0) | (p == 1.0)] = 0.0
    return np.clip(h.mean(axis=1), 0.0, 1.0)


def margin_scores(probs: np.ndarray) -> np.ndarray:
    """``1 - 2 * min over labels |p - 0.5|``: ``(N, L)`` -> ``(N,) float64`` in [0, 1]."""
    p = _probs(probs)
    if p.shape[1] == 0:
        return np.zeros(p.shape[0])
    return np.clip(1.0 - 2.0 * np.abs(p - 0.5).min(axis=1), 0.0, 1.0)


def flicker_scores(probs: np.ndarray) -> np.ndarray:
    """Mean absolute change to the neighbouring rows, averaged over labels.

    ``probs``: ``(N, L)`` in time order.  Row t: mean of ``|p_t - p_{t-1}|`` and
    ``|p_t - p_{t+1}|`` over the neighbours that exist (the first and last rows have one),
    then the mean over labels.  ``N <= 1`` (no neighbour) gives zeros.  ``(N,) float64``.
    """
    p = _probs(probs)
    n, labels = p.shape
    if n <= 1 or labels == 0:
        return np.zeros(n)
    step = np.abs(np.diff(p, axis=0)).mean(axis=1)          # (N-1,): change t -> t+1
    total = np.zeros(n)
    total[1:] += step
    total[:-1] += step
    neighbours = np.full(n, 2.0)
    neighbours[0] = neighbours[-1] = 1.0
    return np.clip(total / neighbours, 0.0, 1.0)


def uncertainty_scores(probs: np.ndarray, *, weights: Mapping[str, float] | None = None) -> np.ndarray:
    """The combined score: weighted mean of entropy, margin and flicker (``WEIGHTS`` by default).

    ``weights``: any of ``entropy`` / ``margin`` / ``flicker`` (missing = 0 when given), each
    >= 0, not all 0.  ``(N, L)`` in time order -> ``(N,) float64`` in [0, 1].
    """
    w = dict(WEIGHTS if weights is None else weights)
    unknown = set(w) - set(WEIGHTS)
    if unknown:
        raise InvalidInput(f"weights: unknown score(s) {', '.join(sorted(unknown))}; "
                           f"choose from {', '.join(WEIGHTS)}")
    values = {k: float(w.get(k, 0.0)) for k in WEIGHTS}
    if any(not np.isfinite(v) or v < 0 for v in values.values()) or sum(values.values()) <= 0:
        raise InvalidInput(f"weights: {w!r} must be non-negative and not all zero")
    p = _probs(probs)
    total = np.zeros(p.shape[0])
    for name, fn in (("entropy", entropy_scores), ("margin", margin_scores),
                     ("flicker", flicker_scores)):
        if values[name]:
            total += values[name] * fn(p)
    return total / sum(values.values())


def top_candidates(scores: np.ndarray, keep: int) -> np.ndarray:
    """Indices of the ``keep`` highest scores, best first (ties: the earlier row first)."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.lexsort((np.arange(len(s)), -s))
    return order[:max(int(keep), 0)].astype(np.int64)


def pick_uncertain(scores: np.ndarray, features: np.ndarray | None, *, count: int,
                   candidates_factor: float = CANDIDATES_FACTOR, seed: int = 0) -> np.ndarray:
    """Row indices of the frames to label next: uncertain, and spread over the feature space.

    ``scores``: ``(N,)`` float, higher = more uncertain.  ``features``: ``(N, D)`` float (the
    model's pooled image features; None = no spreading: the ``count`` most uncertain rows).
    Keeps the ``ceil(candidates_factor * count)`` most uncertain rows, L2-normalises their
    features and clusters them into ``count`` clusters (scikit-learn KMeans, ``random_state =
    seed``); each cluster gives its most uncertain member.  Clusters left empty by identical
    features are made up by the next most uncertain candidates.  Returns exactly
    ``min(count, N)`` indices, sorted ascending, ``(k,) int64``; ``N == 0`` gives an empty
    array.  Frames outside the kept candidates are never picked.
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise InvalidInput(f"count: {count!r} must be a whole number >= 1")
    if not np.isfinite(candidates_factor) or candidates_factor < 1:
        raise InvalidInput(f"candidates_factor: {candidates_factor!r} must be >= 1")
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = len(s)
    if n and not np.all(np.isfinite(s)):
        raise InvalidInput("scores: must be finite numbers")
    if features is not None:
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or len(features) != n:
            raise InvalidInput(f"features: expected ({n}, D), got shape {features.shape}")
    count = min(int(count), n)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    keep = top_candidates(s, min(n, int(np.ceil(candidates_factor * count))))
    if features is None or len(keep) <= count:
        return np.sort(keep[:count])
    clusters = _kmeans(features[keep], count, seed=seed)
    picked: list[int] = []
    for cluster in range(count):
        members = keep[clusters == cluster]          # keep is best-first: members[0] is the best
        if len(members):
            picked.append(int(members[0]))
    chosen = set(picked)
    for index in keep:                               # empty clusters: next most uncertain
        if len(picked) >= count:
            break
        if int(index) not in chosen:
            picked.append(int(index))
            chosen.add(int(index))
    return np.sort(np.asarray(picked, dtype=np.int64))


def _kmeans(features: np.ndarray, count: int, *, seed: int) -> np.ndarray:
    """Cluster of each row: KMeans on L2-normalised ``(M, D)`` rows, single-threaded."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    x = features.astype(np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), _EPS)
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)     # identical rows: filled above
        return KMeans(n_clusters=count, n_init=3, random_state=int(seed)).fit(x).labels_


__all__ = ["WEIGHTS", "CANDIDATES_FACTOR", "entropy_scores", "margin_scores", "flicker_scores",
           "uncertainty_scores", "top_candidates", "pick_uncertain"]
