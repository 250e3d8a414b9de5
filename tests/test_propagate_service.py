"""Propagation through stored sequences (annotate.propagate_mask) and the frame getters."""

from __future__ import annotations

import numpy as np
import pytest

from endolite import annotate
from endolite.errors import InvalidInput
from endolite.ingest import ingest_paths
from endolite.media import write_image_atomic
from endolite.records import MaskSource
from endolite.sequence import VideoFrames
from endolite.storage import annotations, labels, media
from endolite.synthetic import moving_disc_frames, write_disc_video

N = 60


@pytest.fixture
def video_setup(con, settings, tmp_path):
    video = write_disc_video(tmp_path / "v.mp4", N, gop=20)
    [result] = ingest_paths(con, settings, [video], user="u")
    labels.add(con, "polyp")
    from endolite.extract import extract_frames

    picked = extract_frames(con, settings, result.id, method="uniform", count=4, context=1)
    truth = [m for _, m in moving_disc_frames(N)]
    return result.id, picked, truth, video


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_video_frames_getter_returns_the_right_frame_in_both_directions(tmp_path):
    path = write_disc_video(tmp_path / "v.mp4", 40, gop=10)
    truth = [f for f, _ in moving_disc_frames(40)]
    get = VideoFrames(path, chunk=6)
    for order in ([0, 1, 2, 17, 18, 39], [30, 29, 28, 12, 11, 0]):
        for i in order:
            errors = [np.abs(get(i).astype(int) - t).mean() for t in truth]
            assert int(np.argmin(errors)) == i
    assert get(40) is None and get(-1) is None


def test_mask_is_carried_to_every_stored_frame_both_ways(con, settings, video_setup):
    video_id, picked, truth, _ = video_setup
    start = picked.picked[1]
    source = annotate.save_mask(con, settings, annotate.NewMask(start.id, truth[start.frame_number]),
                                label="polyp", annotator="ann")
    made = annotate.propagate_mask(con, settings, source.id, direction="both", annotator="ann")
    stored = {f.id: f for f in media.frames_of(con, video_id=video_id)}
    reached = {stored[m.frame_id].frame_number for m in made}
    assert reached == {f.frame_number for f in stored.values()} - {start.frame_number}
    for m in made:
        assert m.source == MaskSource.PROPAGATED and m.origin_mask_id == source.id
        assert 0.0 <= m.confidence <= 1.0
        assert _iou(annotate.load_mask(m), truth[stored[m.frame_id].frame_number]) >= 0.9
    # the PNG mirror and the row agree
    assert annotate.mask_png_path(settings, made[0].frame_id, made[0].id).exists()


def test_to_frame_limits_the_walk(con, settings, video_setup):
    video_id, picked, truth, _ = video_setup
    start, stop = picked.picked[0], picked.picked[2]
    source = annotate.save_mask(con, settings, annotate.NewMask(start.id, truth[start.frame_number]),
                                label="polyp", annotator="ann")
    made = annotate.propagate_mask(con, settings, source.id, direction="forward", to_frame_id=stop.id,
                                   annotator="ann")
    numbers = sorted(media.get_frame(con, m.frame_id).frame_number for m in made)
    assert numbers[-1] == stop.frame_number and numbers[0] > start.frame_number
    with pytest.raises(InvalidInput):
        annotate.propagate_mask(con, settings, source.id, direction="backward", to_frame_id=stop.id,
                                annotator="ann")


def test_image_group_propagation_follows_frame_order(con, settings, tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    pairs = list(moving_disc_frames(12, height=96, width=128))
    for i, (frame, _) in enumerate(pairs):
        write_image_atomic(folder / f"{i + 1}.png", frame, fmt="png")
    [group] = ingest_paths(con, settings, [folder], user="u")
    labels.add(con, "polyp")
    frames = media.frames_of(con, group_id=group.id)
    first = annotate.save_mask(con, settings, annotate.NewMask(frames[0].id, pairs[0][1]),
                               label="polyp", annotator="ann")
    made = annotate.propagate_mask(con, settings, first.id, direction="forward", annotator="ann")
    assert [m.frame_id for m in made] == [f.id for f in frames[1:]][:len(made)]
    assert len(made) >= 10
    last = frames.index(next(f for f in frames if f.id == made[-1].frame_id))
    assert _iou(annotate.load_mask(made[-1]), pairs[last][1]) >= 0.85
    assert len(annotations.masks_of(con, group_id=group.id, annotator="ann")) == 1 + len(made)


def test_cli_propagate_prints_the_masks_made(con, settings, video_setup, capsys):
    import json

    from endolite import auth
    from endolite.cli import main
    from endolite.records import Role
    from endolite.storage import users

    video_id, picked, truth, _ = video_setup
    start, stop = picked.picked[0], picked.picked[1]
    for name, role in (("root", Role.ADMIN), ("ann", Role.ANNOTATOR)):
        users.add(con, name, role, auth.hash_password(f"{name}-password", n=2**10))
    source = annotate.save_mask(con, settings, annotate.NewMask(start.id, truth[start.frame_number]),
                                label="polyp", annotator="ann")
    con.close()

    def propagate(*extra: str) -> tuple[int, list[dict], str]:
        code = main(["--data", str(settings.data_dir), "--json", "--user", "ann", "propagate",
                     str(source.id), "--direction", "forward", "--to", str(stop.id), *extra])
        captured = capsys.readouterr()
        return code, json.loads(captured.out), captured.err

    code, rows, _ = propagate()
    assert code == 0
    assert rows and all(0.0 <= r["confidence"] <= 1.0 for r in rows)
    assert rows[-1]["frame_id"] == stop.id

    def live() -> list[int]:
        from endolite.storage import connect

        c = connect(settings)
        try:
            return sorted(m.id for m in annotations.masks_of(c, origin_mask_id=source.id, annotator="ann"))
        finally:
            c.close()

    assert live() == sorted(r["id"] for r in rows)
    code, again, _ = propagate()                       # a re-run replaces ann's earlier result
    assert code == 0 and live() == sorted(r["id"] for r in again)
    assert not {r["id"] for r in rows} & set(live())
    code, kept, _ = propagate("--keep-earlier")
    assert code == 0 and live() == sorted(r["id"] for r in again + kept)

    code, out, err = propagate("--annotator", "bob")
    assert code == 2 and "use --user bob" in err
    assert len(live()) == len(again) + len(kept)


def _ctx(con, settings, name="ann"):
    from endolite.records import Role
    from endolite.services.access import Actor, Ctx

    return Ctx(con=con, settings=settings, actor=Actor(name=name, role=Role.ANNOTATOR))


def test_service_rerun_leaves_one_propagated_mask_per_frame(con, settings, video_setup):
    """Propagating the same mask twice replaces the first run's masks (one per frame, not two),
    in one undoable step per frame; a backward run keeps the forward run's masks."""
    from endolite.services import masks as mask_service
    from endolite.storage import history

    video_id, picked, truth, _ = video_setup
    start = picked.picked[1]
    source = annotate.save_mask(con, settings, annotate.NewMask(start.id, truth[start.frame_number]),
                                label="polyp", annotator="ann")
    ctx = _ctx(con, settings)

    def per_frame() -> dict[int, int]:
        counts: dict[int, int] = {}
        for m in annotations.masks_of(con, video_id=video_id, annotator="ann"):
            if m.origin_mask_id == source.id:
                counts[m.frame_id] = counts.get(m.frame_id, 0) + 1
        return counts

    first = mask_service.propagate(ctx, source.id, direction="forward")
    assert first and set(per_frame().values()) == {1}
    second = mask_service.propagate(ctx, source.id, direction="forward")
    assert set(per_frame().values()) == {1}, "a re-run stacked a second mask on a frame"
    assert set(per_frame()) == {m.frame_id for m in second}
    step = history.last(con, frame_id=second[0].frame_id, username="ann")
    assert step.added == (second[0].id,) and step.removed == (first[0].id,)
    mask_service.undo(ctx, second[0].frame_id)                # undo brings the first run's back
    live = {m.id for m in annotations.masks_of(con, frame_ids=[second[0].frame_id])}
    assert first[0].id in live and second[0].id not in live

    back = mask_service.propagate(ctx, source.id, direction="backward")
    assert back and set(per_frame().values()) == {1}
    assert {m.frame_id for m in back} <= set(per_frame()) and second[-1].frame_id in per_frame()
    mask_service.propagate(ctx, source.id, direction="both")
    assert set(per_frame().values()) == {1}


def test_propagation_progress_never_reports_done_before_storing(con, settings, video_setup):
    """The walk fills the bar to 0.9 (both ways: half each, never going back), then 'storing N
    masks': a long run does not sit at 100 % while its masks are still written."""
    from endolite.services import masks as mask_service

    _, picked, truth, _ = video_setup
    start = picked.picked[1]
    source = annotate.save_mask(con, settings, annotate.NewMask(start.id, truth[start.frame_number]),
                                label="polyp", annotator="ann")
    seen: list[tuple[float, str]] = []
    made = mask_service.propagate(_ctx(con, settings), source.id, direction="both",
                                  progress=lambda f, msg="": seen.append((f, msg)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and max(fractions) <= 0.9
    assert seen[-1] == (0.9, f"storing {len(made)} masks")
    assert any(msg.startswith("backward") and f > 0.45 for f, msg in seen)
