"""Frame labels & segments page (AppTest): set labels on a frame, add a segment, materialise."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from endolite import auth
from tests.support import make_user
from endolite.ingest import ingest_paths
from endolite.records import LabelKind, Presence, Role
from endolite.storage import annotations, connect, labels, media
from endolite.synthetic import write_disc_video

ROOT = Path(__file__).resolve().parents[1]


def _setup(app_env, tmp_path):
    con = connect(app_env)
    user = make_user(con, "ann", Role.ANNOTATOR, "annotator-pw")
    labels.add(con, "polyp", kind=LabelKind.PATHOLOGY)
    labels.add(con, "blurry", kind=LabelKind.QUALITY)
    video = write_disc_video(tmp_path / "v.mp4", 50, gop=10)
    [result] = ingest_paths(con, app_env, [video], user="ann")
    return con, user, result.id


def _page(user) -> AppTest:
    at = AppTest.from_file(str(ROOT / "views/frame_labels.py"), default_timeout=60)
    at.session_state["user_id"] = user.id
    return at


def test_frame_labels_are_saved_for_the_shown_frame(app_env, tmp_path):
    con, user, video_id = _setup(app_env, tmp_path)
    from endolite.extract import extract_frames

    result = extract_frames(con, app_env, video_id, method="uniform", count=3, context=0)
    first = result.picked[0]
    at = _page(user).run()
    assert not at.exception
    polyp = labels.get_by_name(con, "polyp")
    at.radio(key=f"fl_{first.id}_{polyp.id}").set_value(Presence.PRESENT)
    at.number_input(key=f"flv_{first.id}_{polyp.id}").set_value(0.75)
    next(b for b in at.button if b.label == "Save frame labels").click().run()
    assert not at.exception
    rows = {r.label: r for r in annotations.frame_labels_of(con, first.id, annotator="ann")}
    assert rows["polyp"].value == Presence.PRESENT and rows["polyp"].float_value == 0.75
    assert rows["blurry"].value == Presence.UNKNOWN


def test_segment_add_and_materialise_from_the_page(app_env, tmp_path):
    """The page asks for an exclusive end; materialising marks extracted frames in [start, end)
    present, once."""
    con, user, video_id = _setup(app_env, tmp_path)
    from endolite.extract import extract_frames

    extract_frames(con, app_env, video_id, method="uniform", count=50, context=0)
    numbers = {f.id: f.frame_number for f in media.frames_of(con, video_id=video_id)}
    assert set(range(4, 16)) <= set(numbers.values())
    at = _page(user).run()
    assert any(n.label == "End frame (exclusive)" for n in at.number_input)
    at.selectbox(key="seg_label").select("polyp")
    at.number_input(key="seg_start").set_value(5)
    at.number_input(key="seg_end").set_value(15)
    next(b for b in at.button if b.label == "Add segment").click().run()
    assert not at.exception
    [segment] = annotations.segments_of(con, video_id=video_id)
    assert (segment.start_frame, segment.end_frame, segment.label) == (5, 15, "polyp")
    assert segment.annotator == "ann"
    keys = [b.key for b in at.button]
    assert "seg_materialize" not in keys, "materialising is for leads"

    at = _page(make_user(con, "lena", Role.LEAD, "lead-password")).run()
    at.button(key="seg_dry").click().run()
    assert any("Would create 10" in i.value for i in at.info)
    at.button(key="seg_materialize").click().run()
    assert any("Created 10" in s.value for s in at.success)
    rows = con.execute("SELECT frame_id, value, annotator FROM frame_labels ORDER BY id").fetchall()
    assert sorted(numbers[r[0]] for r in rows) == list(range(5, 15)), "frame 15 (the end) is out"
    assert {(r[1], r[2]) for r in rows} == {("present", "ann")}
    at.button(key="seg_materialize").click().run()
    assert any("Created 0" in s.value for s in at.success)
    assert con.execute("SELECT frame_id, value, annotator FROM frame_labels ORDER BY id").fetchall() == rows


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def test_segment_marked_while_scrubbing_then_edited_and_deleted(app_env, tmp_path):
    """Mark start on the shown frame, step on with Next, Mark end: a segment [start, last + 1);
    the timeline draws it; the edit form changes its bounds and label, then deletes it."""
    con, user, video_id = _setup(app_env, tmp_path)
    from endolite.extract import extract_frames

    extract_frames(con, app_env, video_id, method="uniform", count=10, context=0)
    numbers = [f.frame_number for f in media.frames_of(con, video_id=video_id, include_context=False)]
    at = _page(user).run()
    assert not at.exception
    assert at.get("plotly_chart"), "the timeline is drawn"
    at.button(key="fl_nav_next").click().run()                       # to the 2nd frame
    at.button(key="seg_mark_start").click().run()
    assert at.session_state["fl_mark"] == numbers[1]
    for _ in range(2):
        at.button(key="fl_nav_next").click().run()                   # scrub to the 4th frame
    at.selectbox(key="seg_mark_label").select("polyp")
    at.button(key="seg_mark_end").click().run()
    assert not at.exception
    [segment] = annotations.segments_of(con, video_id=video_id)
    assert (segment.start_frame, segment.end_frame, segment.label) == (numbers[1], numbers[3] + 1, "polyp")
    assert any(f"[{numbers[1]}, {numbers[3] + 1})" in s.value for s in at.success), "the message survives the rerun"
    assert "fl_mark" not in at.session_state

    at.number_input(key=f"seg_edit_start_{segment.id}").set_value(2)
    at.selectbox(key=f"seg_edit_label_{segment.id}").select("blurry")
    _button(at, "Save segment").click().run()
    assert not at.exception
    [edited] = annotations.segments_of(con, video_id=video_id)
    assert (edited.id, edited.start_frame, edited.end_frame, edited.label) == (
        segment.id, 2, numbers[3] + 1, "blurry")
    _button(at, "Delete segment").click().run()
    assert annotations.segments_of(con, video_id=video_id) == []
    assert any(f"Deleted segment {segment.id}" in s.value for s in at.success)


def test_absent_label_on_a_frame_with_masks_warns(app_env, tmp_path):
    con, user, video_id = _setup(app_env, tmp_path)
    from endolite import annotate
    from endolite.extract import extract_frames
    from endolite.synthetic import moving_disc_frames

    first = extract_frames(con, app_env, video_id, method="uniform", count=3, context=0).picked[0]
    truth = [m for _, m in moving_disc_frames(50)]
    annotate.save_mask(con, app_env, annotate.NewMask(first.id, truth[first.frame_number]),
                       label="polyp", annotator="ann")
    at = _page(user).run()
    polyp = labels.get_by_name(con, "polyp")
    at.radio(key=f"fl_{first.id}_{polyp.id}").set_value(Presence.ABSENT)
    _button(at, "Save frame labels").click().run()
    assert not at.exception
    assert any("set absent, but this frame has 1 polyp mask" in w.value for w in at.warning), [w.value for w in at.warning] + [s.value for s in at.success]
    rows = {r.label: r for r in annotations.frame_labels_of(con, first.id, annotator="ann")}
    assert rows["polyp"].value == Presence.ABSENT, "saved anyway: the annotator decides"


def test_model_suggestions_accept_sets_the_label_and_reject_hides_it(app_env, tmp_path):
    import numpy as np

    from endolite.extract import extract_frames
    from endolite.storage import audit
    from endolite.storage import predictions as prediction_store
    from endolite.storage import training as run_store

    con, user, video_id = _setup(app_env, tmp_path)
    first = extract_frames(con, app_env, video_id, method="uniform", count=3, context=0).picked[0]
    polyp, blurry = labels.get_by_name(con, "polyp"), labels.get_by_name(con, "blurry")
    run = run_store.create_run(con, backbone="resnet18", labels=["polyp", "blurry"],
                               label_ids=[polyp.id, blurry.id], config={}, dataset={})
    run_store.update_run(con, run.id, status=run_store.RunStatus.DONE)
    pset = prediction_store.create_set(con, run_id=run.id, video_id=video_id)
    prediction_store.insert_predictions(con, pset, frame_numbers=np.array([first.frame_number]),
                                        frame_ids=np.array([first.id]),
                                        label_ids=[polyp.id, blurry.id],
                                        probs=np.array([[0.93, 0.71]]))
    at = _page(user).run()
    assert not at.exception, at.exception
    shown = " ".join(m.value for m in at.markdown)
    assert "**polyp** present · p = 0.93" in shown and "**blurry** present · p = 0.71" in shown

    at.button(key=f"fl_sug_{first.id}_{polyp.id}_{run.id}_yes").click().run()
    assert not at.exception, at.exception
    [row] = annotations.frame_labels_of(con, first.id, annotator="ann")
    assert (row.label_id, row.value) == (polyp.id, Presence.PRESENT)
    at.button(key=f"fl_sug_{first.id}_{blurry.id}_{run.id}_no").click().run()
    assert not at.exception, at.exception
    assert [r.label_id for r in annotations.frame_labels_of(con, first.id, annotator="ann")] == [polyp.id]
    shown = " ".join(m.value for m in at.markdown)
    assert "p = 0.93" not in shown and "p = 0.71" not in shown, "decided: no longer suggested"
    decisions = [e.details["decision"] for e in audit.search(con, action="model.suggestion")]
    assert sorted(decisions) == ["accepted", "rejected"]
