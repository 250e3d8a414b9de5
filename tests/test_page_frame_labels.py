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
    at.button[2].click().run()  # prev, next, save
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
