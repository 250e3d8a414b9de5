"""Frame extraction: decoding primitives, the sparse planner, extract_frames end to end (and
through the service that checks the role and audits it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from endolite import media
from endolite.errors import InvalidInput, NotFound
from endolite.extract import context_targets, extract_frames
from endolite.records import Role, SampleMethod, Video
from endolite.services import Actor, Ctx
from endolite.services import media as media_service
from endolite.storage import audit
from endolite.storage import media as store
from endolite.synthetic import write_disc_video


def add_video(con, settings, source: Path) -> Video:
    """Register ``source`` as a video row (copied into the temp data dir; ingest is elsewhere)."""
    info = media.probe(source)
    sha = media.sha256_file(source)
    target = settings.videos_dir / f"{sha}{source.suffix.lower()}"
    media.copy_file_atomic(source, target)
    return store.add_video(con, sha256=sha, title=source.stem, original_name=source.name,
                           path=settings.relative(target), container=info.container, codec=info.codec,
                           fps=info.fps, frame_count=info.frame_count, duration=info.duration,
                           width=info.width, height=info.height, size_bytes=target.stat().st_size)


def lead(con, settings, name: str = "ann") -> Ctx:
    return Ctx(con=con, settings=settings, actor=Actor(name=name, role=Role.LEAD))


def decode_all(path: Path) -> tuple[list[np.ndarray], list[int]]:
    """Every frame as a small grey array, and the picture types, in presentation order."""
    import av

    greys, types = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            greys.append(frame.to_ndarray(format="gray")[::4, ::4].copy())
            types.append(int(frame.pict_type))
    return greys, types


def packet_keyframes(path: Path) -> list[int]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size]
    order = sorted(p for p, _ in packets)
    return sorted(order.index(p) for p, key in packets if key)


@pytest.fixture(scope="module")
def bframe_video(tmp_path_factory) -> Path:
    """120 frames 160x128 with x264 B-frames (veryfast) and a keyframe every 30."""
    from endolite.synthetic import moving_disc_frames, write_video

    path = tmp_path_factory.mktemp("media") / "bframes.mp4"
    frames = (f for f, _ in moving_disc_frames(120, height=128, width=160))
    return write_video(path, frames, gop=30, options={"preset": "veryfast"})


@pytest.fixture(scope="module")
def scene_video(tmp_path_factory) -> Path:
    """160 frames 192x144 in 4 scenes of 40."""
    return write_disc_video(tmp_path_factory.mktemp("media") / "scenes.mp4", 160, scene_cut_every=40)


@pytest.fixture
def disc(con, settings, disc_video) -> Video:
    return add_video(con, settings, disc_video)


# --- index and decoding -----------------------------------------------------------------------

def test_index_keyframes_are_the_i_frames(disc_video, bframe_video):
    for path in (disc_video, bframe_video):
        index = media.index_video(path)
        greys, types = decode_all(path)
        assert index.frame_count == len(greys)
        assert index.keyframes.tolist() == packet_keyframes(path)
        assert all(types[k] == 1 for k in index.keyframes)          # PictureType.I
        assert np.all(np.diff(index.timestamps) > 0) and index.timestamps[0] == 0
    assert media.index_video(disc_video).keyframes.tolist() == [0, 25, 50, 75]


def test_index_of_a_non_video(tmp_path):
    bad = tmp_path / "x.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(InvalidInput):
        media.index_video(bad)


@pytest.mark.parametrize("which", ["disc_video", "bframe_video"])
def test_decode_frames_matches_sequential_decode(request, which):
    path = request.getfixturevalue(which)
    index = media.index_video(path)
    greys, _ = decode_all(path)
    rng = np.random.default_rng(0)
    for _ in range(3):
        targets = sorted(set(rng.integers(0, index.frame_count, 9).tolist()) | {index.frame_count - 1})
        counter = media.DecodeCounter()
        got = {n: f.to_ndarray(format="gray")[::4, ::4] for n, f in
               media.decode_frames(path, index, targets, counter=counter)}
        assert sorted(got) == targets
        assert all(np.array_equal(got[n], greys[n]) for n in targets)
        assert counter.frames <= min(media.full_scan_cost(targets, index.seek_points),
                                     media.seek_each_cost(targets, index.seek_points))


def test_plan_sparse_never_costs_more_than_either_reference():
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(50, 3000))
        gop = int(rng.integers(1, 300))
        keyframes = np.arange(0, n, gop)
        targets = sorted(set(rng.integers(0, n, int(rng.integers(1, 60))).tolist()))
        runs = media.plan_sparse(targets, keyframes)
        assert [t for run in runs for t in run.targets] == targets
        assert all(run.keyframe in keyframes and run.keyframe <= run.targets[0] for run in runs)
        cost = media.plan_cost(runs)
        assert cost <= min(media.full_scan_cost(targets, keyframes), media.seek_each_cost(targets, keyframes))


def test_plan_sparse_seeks_only_when_it_pays():
    keyframes = np.array([0, 100, 200])
    runs = media.plan_sparse([5, 10, 150, 160, 198, 250], keyframes)
    assert [(r.keyframe, r.targets) for r in runs] == [(0, (5, 10)), (100, (150, 160, 198)), (200, (250,))]
    assert media.plan_cost(runs) == 11 + 99 + 51
    ties = media.plan_sparse([150, 199, 250], keyframes)         # equal cost: keep decoding
    assert [(r.keyframe, r.targets) for r in ties] == [(100, (150, 199, 250))]


def test_scan_thumbnails_bounded_and_in_range(bframe_video):
    index = media.index_video(bframe_video)
    counter = media.DecodeCounter()
    numbers, thumbs = media.scan_thumbnails(bframe_video, index, start=35, stop=100, counter=counter)
    assert thumbs.shape == (len(numbers), 32, 32) and thumbs.dtype == np.uint8
    assert numbers.min() >= 35 and numbers.max() < 100 and np.all(np.diff(numbers) > 0)
    assert len(numbers) < 65                                          # reference frames only
    capped, _ = media.scan_thumbnails(bframe_video, index, start=0, stop=120, fast=False, max_candidates=10)
    assert len(capped) <= 10 and capped[0] == 0


def test_context_targets():
    assert context_targets(np.array([10, 13]), 2, 100) == {8: 10, 9: 10, 11: 10, 12: 13, 14: 13, 15: 13}
    assert context_targets(np.array([0, 99]), 2, 100) == {1: 0, 2: 0, 97: 99, 98: 99}
    assert context_targets(np.array([5]), 0, 100) == {}


# --- extract_frames ---------------------------------------------------------------------------

def test_uniform_extraction_writes_frames_and_rows(con, settings, disc):
    calls: list[tuple[float, str]] = []
    result = media_service.extract(lead(con, settings, "ann"), disc.id, method="uniform", count=4,
                                   progress=lambda f, m: calls.append((f, m)))
    assert result.method is SampleMethod.UNIFORM and result.video_id == disc.id
    assert [f.frame_number for f in result.picked] == [12, 37, 62, 87]
    assert len(result.context) == 16
    index = media.index_video(settings.absolute(disc.path))
    for frame in result.picked + result.context:
        path = settings.absolute(frame.path)
        assert frame.path == f"frames/video_{disc.id}/frame_{frame.id}.jpg" and path.is_file()
        assert media.read_image(path).shape == (144, 192, 3)
        assert (frame.width, frame.height) == (192, 144)
        assert frame.sha256 == media.sha256_file(path)
        assert frame.timestamp == pytest.approx(index.timestamps[frame.frame_number])
        assert frame.video_id == disc.id and frame.group_id is None and frame.created_by == "ann"
    by_number = {f.frame_number: f for f in result.picked}
    for frame in result.context:
        assert frame.is_context
        parent = min(by_number, key=lambda p: abs(p - frame.frame_number))
        assert frame.parent_id == by_number[parent].id and abs(frame.frame_number - parent) <= 2
    assert not any(f.is_context for f in result.picked)
    assert len(store.frames_of(con, video_id=disc.id)) == 20
    assert 0 < result.frames_decoded <= 100
    [entry] = audit.recent(con, action="media.extract")
    assert (entry.username, entry.entity, entry.entity_id) == ("ann", "video", disc.id)
    assert entry.details["extraction_id"] == result.extraction_id
    assert entry.details["picked"] == [f.id for f in result.picked] and entry.details["context"] == 16
    row = con.execute("SELECT method, frames_decoded FROM extractions WHERE id = ?",
                      [result.extraction_id]).fetchone()
    assert row == ("uniform", result.frames_decoded)
    assert calls[-1][0] == 1.0 and all(0.0 <= f <= 1.0 for f, _ in calls)


def test_frames_decoded_bounded_by_both_references(con, settings, disc):
    result = extract_frames(con, settings, disc.id, method="uniform", count=5, context=1)
    index = media.index_video(settings.absolute(disc.path))
    targets = [f.frame_number for f in result.picked + result.context]
    assert result.frames_decoded <= min(media.full_scan_cost(targets, index.seek_points),
                                        media.seek_each_cost(targets, index.seek_points))


def test_start_end_as_fraction_and_seconds(con, settings, disc):
    a = extract_frames(con, settings, disc.id, method="uniform", count=5, context=0, start=0.5, end="0.75")
    assert all(50 <= f.frame_number < 75 for f in a.picked) and len(a.picked) == 5
    b = extract_frames(con, settings, disc.id, method="random", count=8, context=0, start="1s", end="2.0s")
    assert all(25 <= f.frame_number < 50 for f in b.picked) and len(b.picked) == 8
    assert all(1.0 <= f.timestamp < 2.0 for f in b.picked)
    whole = extract_frames(con, settings, disc.id, method="uniform", count=2, context=0,
                           start="0s", end=f"{disc.duration}s")          # what the page sends
    assert [f.frame_number for f in whole.picked] == [25, 75]


@pytest.mark.parametrize("options, name", [
    (dict(start="abc"), "start"), (dict(end=1.5), "end"), (dict(start=-0.1), "start"),
    (dict(start="-1s"), "start"), (dict(end="99s"), "end"), (dict(start=0.6, end=0.4), "start"),
    (dict(start=True), "start"), (dict(count=0), "count"), (dict(count="5"), "count"),
    (dict(fmt="gif"), "fmt"), (dict(quality=0), "quality"), (dict(quality=101), "quality"),
    (dict(context=-1), "context"), (dict(method="best"), "method"), (dict(seed=-3), "seed"),
    (dict(step=0), "step"), (dict(step=2, target_fps=5.0), "step"), (dict(fmt=None), "fmt"),
    (dict(method="random", step=3), "step"),
])
def test_bad_options_raise_invalid_input(con, settings, disc, options, name):
    kwargs = dict(method="uniform", count=3) | options
    with pytest.raises(InvalidInput, match=name):
        extract_frames(con, settings, disc.id, **kwargs)
    assert store.frames_of(con, video_id=disc.id) == []


def test_unknown_video(con, settings):
    with pytest.raises(NotFound):
        extract_frames(con, settings, 999, method="uniform", count=3)


def test_png_and_quality(con, settings, disc):
    png = extract_frames(con, settings, disc.id, method="uniform", count=1, context=0, fmt="png",
                         start=0.0, end=0.2)
    path = settings.absolute(png.picked[0].path)
    assert path.suffix == ".png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    low = extract_frames(con, settings, disc.id, method="uniform", count=1, context=0, quality=20,
                         start=0.4, end=0.6)
    high = extract_frames(con, settings, disc.id, method="uniform", count=1, context=0, quality=95,
                          start=0.8, end=1.0)
    assert settings.absolute(low.picked[0].path).stat().st_size < settings.absolute(high.picked[0].path).stat().st_size


def test_step_and_target_fps_options(con, settings, disc):
    result = extract_frames(con, settings, disc.id, method="uniform", count=0, step=20, context=0)
    assert [f.frame_number for f in result.picked] == [0, 20, 40, 60, 80]
    per_second = extract_frames(con, settings, disc.id, method="uniform", count=0, target_fps=2.0,
                                context=0, start="1s")
    assert [f.frame_number for f in per_second.picked] == [25, 38, 50, 63, 75, 88]


def test_reextraction_reuses_rows_and_promotes_context(con, settings, disc):
    first = extract_frames(con, settings, disc.id, method="uniform", count=0, step=10, context=1, end=0.5)
    files = {f.frame_number: (f.id, f.path, settings.absolute(f.path).stat().st_mtime_ns)
             for f in first.picked + first.context}
    assert 11 in {f.frame_number for f in first.context}
    second = extract_frames(con, settings, disc.id, method="uniform", count=0, step=11, context=1, end=0.5)
    numbers = [f.frame_number for f in store.frames_of(con, video_id=disc.id)]
    assert len(numbers) == len(set(numbers))                     # nothing duplicated
    by_number = {f.frame_number: f for f in second.picked}
    assert by_number[0].id == files[0][0]                        # a former pick reused as is
    promoted = by_number[11]
    assert promoted.id == files[11][0] and not promoted.is_context and promoted.parent_id is None
    assert settings.absolute(promoted.path).stat().st_mtime_ns == files[11][2]
    assert store.get_frame(con, files[11][0]).is_context is False
    assert second.frames_decoded < first.frames_decoded + 50
    for frame in second.context:
        assert frame.is_context and frame.parent_id is not None


def test_failure_rolls_back_and_removes_files(con, settings, disc, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "insert_frames", broken)
    with pytest.raises(RuntimeError):
        media_service.extract(lead(con, settings), disc.id, method="uniform", count=3)
    assert store.frames_of(con, video_id=disc.id) == []
    assert con.execute("SELECT count(*) FROM extractions").fetchone()[0] == 0
    assert audit.recent(con, action="media.extract") == []
    frames_dir = settings.video_frames_dir(disc.id)
    assert not frames_dir.exists() or not any(frames_dir.iterdir())


def test_failure_while_writing_removes_files(con, settings, disc, monkeypatch):
    calls = {"n": 0}
    real_encode = media.encode_bgr

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("no space left on device")
        return real_encode(*args, **kwargs)

    monkeypatch.setattr(media, "encode_bgr", flaky)
    with pytest.raises(OSError):
        extract_frames(con, settings, disc.id, method="random", count=3, context=1)
    assert store.frames_of(con, video_id=disc.id) == []
    frames_dir = settings.video_frames_dir(disc.id)
    assert not frames_dir.exists() or not any(frames_dir.iterdir())


def test_keyframes_method(con, settings, disc):
    result = extract_frames(con, settings, disc.id, method=SampleMethod.KEYFRAMES, count=10, context=0)
    assert [f.frame_number for f in result.picked] == [0, 25, 50, 75]
    assert result.frames_decoded == 4                            # one decoded frame per keyframe


def test_kmeans_extraction_one_per_scene(con, settings, scene_video):
    video = add_video(con, settings, scene_video)
    result = extract_frames(con, settings, video.id, method="kmeans", count=4, context=1, seed=1)
    assert len(result.picked) == 4
    assert sorted(f.frame_number // 40 for f in result.picked) == [0, 1, 2, 3]
    again = extract_frames(con, settings, video.id, method="kmeans", count=7, context=0, seed=2,
                           start=0.25, end=0.75)
    assert len(again.picked) == 7 and all(40 <= f.frame_number < 120 for f in again.picked)


def test_kmeans_exactly_n_in_a_short_range_of_bframes(con, settings, bframe_video):
    video = add_video(con, settings, bframe_video)
    result = extract_frames(con, settings, video.id, method="kmeans", count=10, context=0,
                            start="1s", end="1.48s")              # frames 25..36: 12 frames
    assert len(result.picked) == 10
    assert all(25 <= f.frame_number < 37 for f in result.picked)


def test_kmeans_on_bframes_picks_reference_frames(con, settings, bframe_video):
    video = add_video(con, settings, bframe_video)
    result = extract_frames(con, settings, video.id, method="kmeans", count=12, context=2)
    assert len(result.picked) == 12
    index = media.index_video(bframe_video)
    targets = [f.frame_number for f in result.picked + result.context]
    full = index.frame_count
    assert result.frames_decoded <= full + media.full_scan_cost(targets, index.seek_points)
    greys, _ = decode_all(bframe_video)
    for frame in result.picked[:3]:
        image = media.read_image(settings.absolute(frame.path))
        assert image.shape == (128, 160, 3)
        grey = (image @ np.array([0.299, 0.587, 0.114]))[::4, ::4]
        errors = [np.abs(grey - g).mean() for g in greys]
        assert int(np.argmin(errors)) == frame.frame_number         # the right frame (JPEG)


def test_real_video(con, settings, real):
    source = real / "videos" / "video_coloscopy.mp4"
    video = add_video(con, settings, source)
    index = media.index_video(settings.absolute(video.path))
    assert index.frame_count == video.frame_count
    assert index.keyframes.tolist() == packet_keyframes(source)
    greys, types = decode_all(source)
    assert [n for n, t in enumerate(types) if t == 1] == index.keyframes.tolist()   # the I-frames
    targets = [0, 3, 4, 89, 90, 91, 400, 401, 883]          # pts jitter: 0, 513, 1024, 1537, ...
    got = {n: f.to_ndarray(format="gray")[::4, ::4] for n, f in
           media.decode_frames(source, index, targets)}
    assert sorted(got) == targets and all(np.array_equal(got[n], greys[n]) for n in targets)
    result = extract_frames(con, settings, video.id, method="kmeans", count=6, context=1,
                            start="5s", end=0.9)
    assert len(result.picked) == 6 and len(result.context) == 12
    for frame in result.picked + result.context:
        assert 5.0 - 1 / video.fps <= frame.timestamp and frame.frame_number < 0.9 * video.frame_count + 1
        assert media.read_image(settings.absolute(frame.path)).shape == (410, 470, 3)
    sparse = extract_frames(con, settings, video.id, method="uniform", count=5, context=0, start=0.5)
    targets = [f.frame_number for f in sparse.picked]
    assert sparse.frames_decoded <= min(media.full_scan_cost(targets, index.seek_points),
                                        media.seek_each_cost(targets, index.seek_points))
