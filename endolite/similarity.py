"""Frame similarity: perceptual hashes, near-duplicate groups, visual clusters.

* ``phash`` / ``file_phash``: imagehash's 64-bit DCT perceptual hash of a picture, as 16 hex
  digits (``str(imagehash.phash(image))``); near-identical pictures (re-encodes, small shifts,
  brightness changes) differ in a few bits.
* ``near_duplicate_groups`` (pure): union-find over every pair within ``max_distance`` bits
  (Hamming distance), so groups are the connected components of the "near" graph.
* ``frame_hashes``: hashes of stored frames, cached in ``frame_phash`` (migration 0007) under
  the frame file's sha256 (a changed file is re-hashed).
* ``frame_features`` / ``clusters``: the 32x32 luma thumbnails frame extraction's k-means
  diversity sampling uses (``media.luma_thumbnail``), clustered like ``sampling.select_kmeans``
  does (``sampling.kmeans_fit``: PCA then KMeans).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import duckdb
import numpy as np

from endolite.config import Settings
from endolite.errors import InvalidInput

HASH_HEX_DIGITS = 16          # imagehash.phash with hash_size 8: 64 bits
THUMBNAIL_SIZE = 32           # as endolite.extract.THUMBNAIL_SIZE


def phash(rgb: np.ndarray) -> str:
    """The perceptual hash of an ``(H, W, 3)`` (or ``(H, W)``) uint8 picture: 16 hex digits."""
    import imagehash
    from PIL import Image

    return str(imagehash.phash(Image.fromarray(np.asarray(rgb, dtype=np.uint8))))


def file_phash(path: str | os.PathLike[str]) -> str:
    """``phash`` of an image file (decoded with ``media.read_image``: RGB, 8 bits)."""
    from endolite.media import read_image

    return phash(read_image(path))


def hamming(a: str, b: str) -> int:
    """Number of differing bits between two hex hashes of the same length."""
    if len(a) != len(b):
        raise InvalidInput(f"hashes of different lengths: {a!r}, {b!r}")
    return int(bin(int(a, 16) ^ int(b, 16)).count("1"))


def near_duplicate_groups(hashes: Mapping[int, str], max_distance: int = 6) -> dict[int, int]:
    """``frame_id -> group_id`` for frames with at least one other frame within ``max_distance``
    bits (Hamming distance of their hex hashes), grouped transitively (union-find over pairs).

    ``group_id`` is the smallest frame id of the group.  Frames without a near neighbour are
    left out, so every group listed has >= 2 members.  O(N^2) pair checks, vectorised per row
    (XOR + popcount on uint64 words): about a second for 20,000 frames.
    """
    if max_distance < 0:
        raise InvalidInput(f"max_distance must be >= 0, got {max_distance}")
    ids = sorted(int(f) for f in hashes)
    if len(ids) < 2:
        return {}
    words = _words([hashes[f] for f in ids])                   # (N, W) uint64
    parent = list(range(len(ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    linked: set[int] = set()
    for i in range(len(ids) - 1):
        distances = np.bitwise_count(words[i + 1:] ^ words[i]).sum(axis=1)
        for j in np.flatnonzero(distances <= max_distance) + i + 1:
            linked.update((i, int(j)))
            a, b = root(i), root(int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)           # the smaller index (= smaller id) roots
    return {ids[i]: ids[root(i)] for i in sorted(linked)}


def _words(hashes: Sequence[str]) -> np.ndarray:
    """``(N, W) uint64`` of equally long hex strings (left-padded to whole 64-bit words)."""
    lengths = {len(h) for h in hashes}
    if len(lengths) != 1:
        raise InvalidInput(f"hashes of different lengths: {sorted(lengths)}")
    digits = -(-lengths.pop() // 16) * 16
    try:
        raw = b"".join(bytes.fromhex(h.rjust(digits, "0")) for h in hashes)
    except ValueError as exc:
        raise InvalidInput(f"hashes must be hex digits: {exc}") from exc
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(len(hashes), -1)


def frame_hashes(con: duckdb.DuckDBPyConnection, settings: Settings, frame_ids: Iterable[int], *,
                 cache: bool = True) -> dict[int, str]:
    """``frame_id -> phash`` of stored frames (their browser-viewable file under the data dir).

    Cached rows whose sha256 matches the frame's are used; the others are computed and, with
    ``cache``, stored (replacing stale rows; best effort: when the database cannot be written
    the hashes are still returned).  Unknown frame ids are left out.
    """
    from endolite.storage import frame_hashes as store
    from endolite.storage import media

    ids = sorted({int(f) for f in frame_ids})
    frames = media.frames_by_ids(con, ids)
    cached = store.get(con, ids)
    out: dict[int, str] = {}
    fresh: dict[int, tuple[str, str]] = {}
    for frame in frames:
        hit = cached.get(frame.id)
        if hit is not None and hit[0] == frame.sha256:
            out[frame.id] = hit[1]
            continue
        value = file_phash(settings.absolute(frame.path))
        out[frame.id] = value
        fresh[frame.id] = (frame.sha256, value)
    if cache and fresh:
        from endolite.errors import Conflict, StorageError
        from endolite.storage.tx import transaction

        try:
            with transaction(con, what="caching frame hashes"):
                store.put(con, fresh)
        except (Conflict, StorageError, duckdb.Error):
            pass        # the cache is an optimisation: a busy or read-only database skips it
    return out


def frame_features(paths: Sequence[str | os.PathLike[str]], *, size: int = THUMBNAIL_SIZE) -> np.ndarray:
    """``(N, size * size) uint8`` luma thumbnails of image files, row i of ``paths[i]``: the
    features of frame extraction's k-means sampling (``media.luma_thumbnail``, area-averaged)."""
    import av

    from endolite.media import luma_thumbnail, read_image

    rows = [luma_thumbnail(av.VideoFrame.from_ndarray(read_image(p), format="rgb24"), size).reshape(-1)
            for p in paths]
    return np.stack(rows) if rows else np.zeros((0, size * size), dtype=np.uint8)


def clusters(features: np.ndarray, k: int, *, seed: int = 0) -> np.ndarray:
    """``(N,) int64`` cluster ids in ``[0, min(k, N))`` of ``(N, D)`` features (e.g.
    ``frame_features``), by ``sampling.kmeans_fit`` (PCA + KMeans, ``random_state=seed``).

    Cluster ids are renumbered in order of first appearance (row 0 is in cluster 0), so the
    same features and seed give the same ids.  N == 0 gives an empty array; k < 1 is refused.
    """
    from endolite.sampling import kmeans_fit

    if k < 1:
        raise InvalidInput(f"k must be >= 1, got {k}")
    n = len(features)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    count = min(int(k), n)
    if count == 1:
        return np.zeros(n, dtype=np.int64)
    _, labels, _ = kmeans_fit(features, count, seed=seed)
    order: dict[int, int] = {}
    return np.array([order.setdefault(int(c), len(order)) for c in labels], dtype=np.int64)


__all__ = ["phash", "file_phash", "hamming", "near_duplicate_groups", "frame_hashes",
           "frame_features", "clusters", "HASH_HEX_DIGITS"]
