"""services.annotations: a label set absent on a frame with masks of that label is saved with a
warning; segments are edited (label, [start, end)) and deleted through the service."""

from __future__ import annotations

import pytest

from endolite import annotate
from endolite.errors import InvalidInput, PermissionDenied
from endolite.ingest import ingest_paths
from endolite.records import LabelKind, Presence, Role
from endolite.services import annotations as service
from endolite.services.access import Actor, Ctx
from endolite.storage import annotations, labels, media
from endolite.synthetic import moving_disc_frames, write_disc_video


@pytest.fixture
def project(con, settings, tmp_path):
    [result] = ingest_paths(con, settings, [write_disc_video(tmp_path / "v.mp4", 30, gop=10)], user="u")
    labels.add(con, "polyp", kind=LabelKind.PATHOLOGY)
    labels.add(con, "blurry", kind=LabelKind.QUALITY)
    from endolite.extract import extract_frames

    extract_frames(con, settings, result.id, method="uniform", count=3, context=0)
    return result.id, media.frames_of(con, video_id=result.id)


def _ctx(con, settings, name="ann", role=Role.ANNOTATOR):
    return Ctx(con=con, settings=settings, actor=Actor(name=name, role=role))


def test_absent_on_a_frame_with_masks_of_the_label_warns(con, settings, project):
    _, frames = project
    frame = frames[0]
    truth = dict(enumerate(m for _, m in moving_disc_frames(30)))
    annotate.save_mask(con, settings, annotate.NewMask(frame.id, truth[frame.frame_number]),
                       label="polyp", annotator="ann")
    ctx = _ctx(con, settings)
    saved = service.set_frame_labels(ctx, frame.id, [("polyp", Presence.ABSENT, None),
                                                     ("blurry", Presence.ABSENT, None)])
    assert [r.label for r in saved] == ["polyp", "blurry"], "saved anyway, a list of rows"
    [warning] = saved.warnings
    assert warning.startswith("polyp: set absent, but this frame has 1 polyp mask")
    assert service.set_frame_labels(ctx, frame.id, [("polyp", Presence.PRESENT, None)]).warnings == []
    assert service.set_frame_labels(ctx, frames[1].id, [("polyp", Presence.ABSENT, None)]).warnings == []
    other = _ctx(con, settings, "bob")
    assert service.set_frame_labels(other, frame.id, [("polyp", Presence.ABSENT, None)]).warnings == [], \
        "another annotator's masks are not theirs to contradict (and blind work stays blind)"


def test_segments_are_edited_and_deleted_through_the_service(con, settings, project):
    video_id, _ = project
    ctx = _ctx(con, settings)
    seg = service.add_segment(ctx, video_id, label="polyp", start=2, end=8)
    after = service.update_segment(ctx, seg.id, start=4, end=12, label="blurry")
    assert (after.id, after.label, after.start_frame, after.end_frame) == (seg.id, "blurry", 4, 12)
    assert service.update_segment(ctx, seg.id, end=30).end_frame == 30
    with pytest.raises(InvalidInput, match="past the video's end"):
        service.update_segment(ctx, seg.id, end=31)
    with pytest.raises(InvalidInput, match="start < end"):
        service.update_segment(ctx, seg.id, start=30)
    with pytest.raises(PermissionDenied):
        service.update_segment(_ctx(con, settings, "bob"), seg.id, start=0)
    service.delete_segment(ctx, seg.id)
    assert annotations.segments_of(con, video_id=video_id) == []


def test_cli_frame_label_prints_the_warning(con, settings, project, capsys):
    from endolite import auth
    from endolite.cli import main
    from endolite.storage import users

    _, frames = project
    truth = dict(enumerate(m for _, m in moving_disc_frames(30)))
    annotate.save_mask(con, settings, annotate.NewMask(frames[0].id, truth[frames[0].frame_number]),
                       label="polyp", annotator="ann")
    users.add(con, "ann", Role.ANNOTATOR, auth.hash_password("ann-password", n=2**10))
    con.close()
    code = main(["--data", str(settings.data_dir), "--user", "ann", "frame-label", str(frames[0].id),
                 "--set", "polyp=0"])
    captured = capsys.readouterr()
    assert code == 0 and "polyp=absent" in captured.out
    assert "warning: polyp: set absent, but this frame has 1 polyp mask" in captured.err
