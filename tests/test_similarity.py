"""endolite.similarity: perceptual hashes, near-duplicate groups, thumbnail clusters."""

from __future__ import annotations

from types import SimpleNamespace

import duckdb
import numpy as np
import pytest
from PIL import Image

from endolite import similarity
from endolite.errors import InvalidInput
from endolite.ingest import ingest_paths
from endolite.similarity import clusters, frame_features, frame_hashes, hamming, near_duplicate_groups
from endolite.storage import frame_hashes as hash_store
from endolite.storage import media
from endolite.synthetic import moving_disc_frames

H, W = 96, 128


def _pictures() -> dict[str, np.ndarray]:
    frames = [rgb for rgb, _ in moving_disc_frames(40, height=H, width=W, seed=3)]
    base = frames[0]
    brighter = np.clip(base.astype(np.int16) + 6, 0, 255).astype(np.uint8)
    other = next(iter(moving_disc_frames(1, height=H, width=W, seed=11)))[0][:, ::-1].copy()
    return {"a": base, "b": brighter, "c": other}


@pytest.fixture
def group(con, settings, tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    pics = _pictures()
    for name, rgb in pics.items():
        Image.fromarray(rgb).save(folder / f"{name}.png")
    [result] = ingest_paths(con, settings, [folder], user="t")
    assert result.id is not None, result.reason
    frames = {f.original_name.split(".")[0]: f for f in media.frames_of(con, group_id=result.id)}
    assert set(frames) == {"a", "b", "c"}
    return SimpleNamespace(con=con, settings=settings, frames=frames, pics=pics)


def test_hamming():
    assert hamming("ff00", "ff00") == 0
    assert hamming("ff00", "fe01") == 2
    assert hamming("0" * 16, "f" * 16) == 64
    with pytest.raises(InvalidInput):
        hamming("ff", "fff")


def test_groups_pure():
    hashes = {10: "0000000000000000", 4: "0000000000000007",      # 3 bits from 10
              7: "000000000000007f",                               # 4 bits from 4, 7 from 10
              2: "ffffffffffffffff", 3: "fffffffffffffff0",        # 4 bits apart
              99: "00ff00ff00ff00ff"}                              # far from everyone
    groups = near_duplicate_groups(hashes, max_distance=4)
    assert groups == {4: 4, 10: 4, 7: 4, 2: 2, 3: 2}               # transitive; smallest id names it
    assert near_duplicate_groups(hashes, max_distance=3) == {4: 4, 10: 4}
    assert near_duplicate_groups(hashes, max_distance=0) == {}
    assert near_duplicate_groups({1: "00", 2: "00"}) == {1: 1, 2: 1}
    assert near_duplicate_groups({}) == {} and near_duplicate_groups({5: "00"}) == {}
    with pytest.raises(InvalidInput):
        near_duplicate_groups(hashes, max_distance=-1)
    with pytest.raises(InvalidInput):
        near_duplicate_groups({1: "00", 2: "000"})


def test_near_duplicate_pair_found_distinct_frame_not(group, monkeypatch):
    g = group
    ids = {k: f.id for k, f in g.frames.items()}
    hashes = frame_hashes(g.con, g.settings, ids.values())
    assert set(hashes) == set(ids.values())
    assert all(len(h) == similarity.HASH_HEX_DIGITS for h in hashes.values())
    assert hashes[ids["a"]] == similarity.phash(g.pics["a"])
    assert hamming(hashes[ids["a"]], hashes[ids["b"]]) <= 6
    assert hamming(hashes[ids["a"]], hashes[ids["c"]]) > 12
    groups = near_duplicate_groups(hashes)
    assert groups == {ids["a"]: min(ids["a"], ids["b"]), ids["b"]: min(ids["a"], ids["b"])}
    assert ids["c"] not in groups

    # cached: a second call reads the table and decodes nothing
    cached = hash_store.get(g.con, list(ids.values()))
    assert {f: p for f, (_, p) in cached.items()} == hashes
    assert cached[ids["a"]][0] == g.frames["a"].sha256

    def boom(path):
        raise AssertionError(f"recomputed {path}")

    monkeypatch.setattr(similarity, "file_phash", boom)
    assert frame_hashes(g.con, g.settings, ids.values()) == hashes


def test_stale_cache_row_is_recomputed(group):
    g = group
    fid = g.frames["a"].id
    hash_store.put(g.con, {fid: ("not-the-sha", "ffffffffffffffff")})
    assert frame_hashes(g.con, g.settings, [fid]) == {fid: similarity.phash(g.pics["a"])}
    rows = g.con.execute("SELECT sha256, phash FROM frame_phash WHERE frame_id = ?", [fid]).fetchall()
    assert rows == [(g.frames["a"].sha256, similarity.phash(g.pics["a"]))]   # one row, replaced
    assert frame_hashes(g.con, g.settings, [fid, 10**9], cache=False) == {fid: rows[0][1]}


def test_features_and_clusters(tmp_path):
    dark = [np.full((H, W, 3), 20 + i, np.uint8) for i in range(4)]
    light = [np.full((H, W, 3), 220 - i, np.uint8) for i in range(3)]
    for rgb in light:
        rgb[:, : W // 2] = 180
    paths = []
    for i, rgb in enumerate(dark + light):
        paths.append(tmp_path / f"p{i}.png")
        Image.fromarray(rgb).save(paths[-1])
    features = frame_features(paths)
    assert features.shape == (7, 32 * 32) and features.dtype == np.uint8
    assert abs(int(features[0, 0]) - 20) <= 1                  # luma of a grey picture
    ids = clusters(features, 2, seed=0)
    assert ids.dtype == np.int64 and ids.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert clusters(features, 2, seed=0).tolist() == ids.tolist()
    assert clusters(features, 1).tolist() == [0] * 7
    assert sorted(set(clusters(features, 50).tolist())) == list(range(7))   # k capped at N
    assert clusters(np.zeros((0, 4)), 3).shape == (0,)
    assert frame_features([]).shape == (0, 32 * 32)
    with pytest.raises(InvalidInput):
        clusters(features, 0)


def test_groups_on_long_hashes_and_bad_digits():
    # 256-bit hashes (imagehash hash_size=16) work the same way
    a, b = "0" * 64, "0" * 63 + "3"
    assert near_duplicate_groups({1: a, 2: b, 3: "f" * 64}, max_distance=2) == {1: 1, 2: 1}
    with pytest.raises(InvalidInput):
        near_duplicate_groups({1: "zz", 2: "00"})


def test_caching_is_best_effort(group, monkeypatch):
    g = group
    from endolite.storage import frame_hashes as store

    def refuse(con, rows):
        raise duckdb.IOException("read-only")

    monkeypatch.setattr(store, "put", refuse)
    ids = [f.id for f in g.frames.values()]
    assert set(frame_hashes(g.con, g.settings, ids)) == set(ids)
    assert hash_store.get(g.con, ids) == {}
