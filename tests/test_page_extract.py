"""Extract frames page (AppTest): a lead picks N uniform frames of an ingested synthetic video and
sees their thumbnails; the page is refused to annotators."""

from __future__ import annotations

from endolite.ingest import ingest_paths
from endolite.records import Role, SampleMethod
from endolite.storage import connect, media
from endolite.synthetic import write_disc_video
from tests.support import make_user, page


def test_lead_extracts_uniform_frames_and_sees_thumbnails(app_env, tmp_path):
    con = connect(app_env)
    lead = make_user(con, "lena", Role.LEAD)
    [video] = ingest_paths(con, app_env, [write_disc_video(tmp_path / "v.mp4", 60, gop=15)],
                           user="lena")
    at = page("views/extract.py", lead).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="extract_method").value == SampleMethod.UNIFORM
    at.number_input(key="extract_count").set_value(6)
    at.number_input(key="extract_context").set_value(0)
    at.button(key="extract_go").click().run()
    assert not at.exception, at.exception

    assert any("6 frames picked" in s.value for s in at.success), [s.value for s in at.success]
    frames = media.frames_of(con, video_id=video.id)
    assert len(frames) == 6
    numbers = [f.frame_number for f in frames]
    assert numbers == sorted(numbers) and numbers[-1] - numbers[0] >= 40, "spread over the video"
    shown = [img for image in at.image for img in image.proto.imgs]
    assert len(shown) == 6, "one thumbnail per picked frame"
    assert all(f"{f.id}:" in " ".join(i.caption for i in shown) for f in frames)


def test_annotator_is_refused_the_page(app_env, tmp_path):
    con = connect(app_env)
    ann = make_user(con, "ann", Role.ANNOTATOR)
    ingest_paths(con, app_env, [write_disc_video(tmp_path / "v.mp4", 20, gop=10)], user="ann")
    at = page("views/extract.py", ann).run()
    assert not at.exception, at.exception
    assert any("for admin / lead" in e.value for e in at.error), [e.value for e in at.error]
    assert not at.button, "no Extract button"
    assert media.frames_of(con, video_id=media.list_videos(con)[0].id) == []


def test_uncertain_method_offers_done_training_runs(app_env, tmp_path):
    con = connect(app_env)
    lead = make_user(con, "lena", Role.LEAD)
    [video] = ingest_paths(con, app_env, [write_disc_video(tmp_path / "v.mp4", 20, gop=10)],
                           user="lena")
    at = page("views/extract.py", lead).run()
    at.selectbox(key="extract_method").set_value("uncertain").run()
    assert not at.exception, at.exception
    assert any("No finished training run" in i.value for i in at.info), [i.value for i in at.info]
    assert at.button(key="extract_go").disabled

    con.execute("INSERT INTO training_runs (id, status, backbone, labels, label_ids, run_dir) "
                "VALUES (7, 'done', 'resnet18', '[\"polyp\"]', '[1]', 'models/run_7'), "
                "(8, 'failed', 'resnet18', '[\"polyp\"]', '[1]', 'models/run_8')")
    at.run()
    model = at.selectbox(key="extract_model")
    assert model.options == ["run 7: resnet18, polyp"], "done runs only"
    at.button(key="extract_go").click().run()
    assert not at.exception, at.exception
    assert any("has no checkpoint" in e.value for e in at.error), [e.value for e in at.error]
    assert media.frames_of(con, video_id=video.id) == []
