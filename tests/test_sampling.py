"""Selection methods as pure functions: counts, bounds, determinism, k-means diversity."""

from __future__ import annotations

import numpy as np
import pytest

from endolite import sampling
from endolite.errors import InvalidInput
from endolite.records import SampleMethod
from endolite.sampling import Candidates, SELECTORS, select, spread_indices
from endolite.synthetic import moving_disc_frames


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def thumbnails_of(frames) -> np.ndarray:
    """(N, 32, 32) uint8 luma thumbnails the way extraction makes them (area average of Y)."""
    import cv2

    out = []
    for rgb in frames:
        luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        out.append(cv2.resize(luma, (32, 32), interpolation=cv2.INTER_AREA))
    return np.stack(out)


@pytest.fixture(scope="module")
def scenes():
    """160 frames in 4 scenes of 40 (frame numbers 100..259) with their thumbnails."""
    frames = [f for f, _ in moving_disc_frames(160, height=96, width=128, scene_cut_every=40)]
    return Candidates(frame_numbers=np.arange(100, 260), thumbnails=thumbnails_of(frames), fps=25.0)


def test_registry_has_every_method():
    assert {str(m) for m in SampleMethod} <= set(SELECTORS)
    assert SELECTORS["kmeans"].needs == {"thumbnails"}
    assert SELECTORS["keyframes"].needs == {"keyframes"}
    assert SELECTORS["uniform"].needs == frozenset()


def test_spread_indices():
    assert spread_indices(10, 5).tolist() == [1, 3, 5, 7, 9]
    assert spread_indices(5, 9).tolist() == [0, 1, 2, 3, 4]
    assert spread_indices(0, 3).tolist() == []
    assert spread_indices(101, 1).tolist() == [50]
    idx = spread_indices(1000, 37)
    assert len(set(idx.tolist())) == 37 and idx.min() >= 0 and idx.max() < 1000


def test_candidates_validation():
    with pytest.raises(ValueError):
        Candidates(frame_numbers=np.array([3, 2]))
    with pytest.raises(ValueError):
        Candidates(frame_numbers=np.arange(4), keyframe=np.zeros(3, bool))


def test_uniform_count_and_bounds():
    cands = Candidates(frame_numbers=np.arange(50, 150))
    picks = select("uniform", cands, count=10, rng=rng())
    assert picks.dtype == np.int64 and len(picks) == 10
    assert picks.min() >= 50 and picks.max() < 150
    assert np.all(np.diff(picks) == 10)
    assert select("uniform", cands, count=500, rng=rng()).tolist() == list(range(50, 150))


def test_uniform_step_and_target_fps():
    cands = Candidates(frame_numbers=np.arange(10, 110), fps=25.0)
    assert select("uniform", cands, count=0, rng=rng(), step=10).tolist() == list(range(10, 110, 10))
    capped = select("uniform", cands, count=4, rng=rng(), step=10)
    assert len(capped) == 4 and set(capped.tolist()) <= set(range(10, 110, 10))
    per_second = select("uniform", cands, count=0, rng=rng(), target_fps=5.0)
    assert per_second.tolist() == list(range(10, 110, 5))
    assert len(select("uniform", cands, count=0, rng=rng(), target_fps=100.0)) == 100


@pytest.mark.parametrize("options", [dict(step=0), dict(step=2.5), dict(target_fps=-1.0),
                                     dict(step=2, target_fps=5.0)])
def test_uniform_bad_options(options):
    with pytest.raises(InvalidInput):
        select("uniform", Candidates(frame_numbers=np.arange(10), fps=25.0), count=3, rng=rng(), **options)


@pytest.mark.parametrize("method", ["uniform", "random", "kmeans"])
@pytest.mark.parametrize("count", [0, -2])
def test_count_must_be_positive(method, count):
    cands = Candidates(frame_numbers=np.arange(10), thumbnails=np.zeros((10, 4, 4), np.uint8))
    with pytest.raises(InvalidInput):
        select(method, cands, count=count, rng=rng())


def test_random_is_seeded_and_bounded():
    cands = Candidates(frame_numbers=np.arange(1000, 3000, 2))
    a = select("random", cands, count=25, rng=rng(7))
    b = select("random", cands, count=25, rng=rng(7))
    c = select("random", cands, count=25, rng=rng(8))
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()
    assert len(set(a.tolist())) == 25 and np.all(np.diff(a) > 0)
    assert set(a.tolist()) <= set(cands.frame_numbers.tolist())
    assert len(select("random", cands, count=5000, rng=rng())) == 1000


def test_keyframes_only_keyframes():
    numbers = np.arange(0, 300)
    keyframe = numbers % 25 == 0
    cands = Candidates(frame_numbers=numbers, keyframe=keyframe)
    assert select("keyframes", cands, count=100, rng=rng()).tolist() == list(range(0, 300, 25))
    some = select("keyframes", cands, count=4, rng=rng())
    assert len(some) == 4 and all(n % 25 == 0 for n in some)
    with pytest.raises(InvalidInput, match="needs keyframes"):
        select("keyframes", Candidates(frame_numbers=numbers), count=3, rng=rng())


@pytest.mark.parametrize("count", [1, 3, 4, 17, 60, 159, 160, 400])
def test_kmeans_returns_exactly_n(scenes, count):
    picks = select("kmeans", scenes, count=count, rng=rng())
    assert len(picks) == min(count, len(scenes))
    assert np.all(np.diff(picks) > 0)
    assert set(picks.tolist()) <= set(scenes.frame_numbers.tolist())


def test_kmeans_exactly_n_with_duplicate_thumbnails():
    thumbs = np.zeros((40, 8, 8), np.uint8)
    thumbs[20:] = 200                        # only two distinct pictures
    cands = Candidates(frame_numbers=np.arange(40), thumbnails=thumbs)
    picks = select("kmeans", cands, count=6, rng=rng())
    assert len(picks) == 6 and len(set(picks.tolist())) == 6
    assert (picks < 20).any() and (picks >= 20).any()


def test_kmeans_is_seeded(scenes):
    a = select("kmeans", scenes, count=9, rng=rng(3))
    b = select("kmeans", scenes, count=9, rng=rng(3))
    assert a.tolist() == b.tolist()


def test_kmeans_one_pick_per_scene(scenes):
    picks = select("kmeans", scenes, count=4, rng=rng())
    scene_of = (picks - 100) // 40
    assert sorted(scene_of.tolist()) == [0, 1, 2, 3]


def test_kmeans_needs_thumbnails():
    with pytest.raises(InvalidInput, match="needs thumbnails"):
        select("kmeans", Candidates(frame_numbers=np.arange(10)), count=3, rng=rng())


def test_unknown_method():
    with pytest.raises(InvalidInput, match="method"):
        select("nope", Candidates(frame_numbers=np.arange(10)), count=3, rng=rng())


def test_a_new_method_plugs_in():
    """An uncertainty-style selector registers itself and reads per-frame scores."""
    try:
        @sampling.register_selector("top_scores", needs=("scores",))
        def top_scores(candidates, *, count, rng, **_):
            order = np.argsort(-np.asarray(candidates.scores), kind="stable")[:count]
            return np.sort(candidates.frame_numbers[order])

        cands = Candidates(frame_numbers=np.arange(5, 15), scores=np.arange(10)[::-1] / 10)
        assert select("top_scores", cands, count=3, rng=rng()).tolist() == [5, 6, 7]
        assert SELECTORS["top_scores"].needs == {"scores"}
    finally:
        SELECTORS.pop("top_scores", None)
    with pytest.raises(ValueError):
        sampling.register_selector("bad", needs=("pixels",))
