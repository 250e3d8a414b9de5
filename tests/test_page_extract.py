"""Extract frames page (AppTest): a lead picks N uniform frames of an ingested synthetic video in
a background job and sees their thumbnails (also after coming back to the page); a second start
while the video's extraction runs is refused; errors show the service's message; the page is
refused to annotators."""

from __future__ import annotations

import time

import pytest

from endolite.errors import PermissionDenied
from endolite.ingest import ingest_paths
from endolite.records import JobStatus, Role, SampleMethod
from endolite.services import Actor, Ctx
from endolite.services import media as media_service
from endolite.storage import audit, connect, jobs, media
from endolite.synthetic import write_disc_video
from tests.support import make_user, page


def _until_done(at, timeout: float = 60.0):
    """Rerun the page until its extraction job has ended (no progress bar left), with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        assert not at.exception, at.exception
        if not at.get("progress"):
            return at
        assert time.monotonic() < deadline, "the extraction job did not end in time"
        time.sleep(0.2)
        at.run()


def _errors(at) -> list[str]:
    """The page's error messages as a person reads them (ui.md's markdown escapes removed)."""
    return [e.value.replace("\\", "") for e in at.error]


def _lead_and_video(app_env, tmp_path, frames: int, *, gop: int):
    """(connection, the lead "lena", a synthetic video of ``frames`` frames she ingested)."""
    con = connect(app_env)
    lead = make_user(con, "lena", Role.LEAD)
    [video] = ingest_paths(con, app_env, [write_disc_video(tmp_path / "v.mp4", frames, gop=gop)],
                           user="lena")
    return con, lead, video


def _extract_jobs(con):
    return jobs.recent(con, kind="extract")


def test_lead_extracts_uniform_frames_and_sees_thumbnails(app_env, tmp_path):
    con, lead, video = _lead_and_video(app_env, tmp_path, 60, gop=15)
    at = page("views/extract.py", lead).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="extract_method").value == SampleMethod.UNIFORM
    at.number_input(key="extract_count").set_value(6)
    at.number_input(key="extract_context").set_value(0)
    at.button(key="extract_go").click().run()
    assert not at.exception, at.exception
    [job] = _extract_jobs(con)
    assert job.created_by == "lena" and job.params["video_id"] == video.id
    _until_done(at)

    assert any("6 frames picked" in s.value for s in at.success), [s.value for s in at.success]
    frames = media.frames_of(con, video_id=video.id)
    assert len(frames) == 6
    numbers = [f.frame_number for f in frames]
    assert numbers == sorted(numbers) and numbers[-1] - numbers[0] >= 40, "spread over the video"
    shown = [img for image in at.image for img in image.proto.imgs]
    assert len(shown) == 6, "one thumbnail per picked frame"
    assert all(f"{f.id}:" in " ".join(i.caption for i in shown) for f in frames)
    [entry] = audit.search(con, action="media.extract")
    assert entry.username == "lena" and entry.entity_id == video.id, "the service audits it"

    back = page("views/extract.py", lead).run()         # a new session: the page finds the job
    assert not back.exception, back.exception
    assert any("6 frames picked" in s.value for s in back.success), [s.value for s in back.success]
    assert len([i for image in back.image for i in image.proto.imgs]) == 6


def test_second_start_while_the_video_is_extracting_is_refused(app_env, tmp_path):
    con, lead, video = _lead_and_video(app_env, tmp_path, 40, gop=10)
    running = jobs.create(con, "extract", params={"video_id": video.id}, created_by="lena")
    jobs.update(con, running.id, status=JobStatus.RUNNING, progress=0.4,
                message="decoding picked frames")

    at = page("views/extract.py", lead).run()      # lena's job of this video, still running
    assert not at.exception, at.exception
    [bar] = at.get("progress")
    assert "decoding picked frames" in bar.proto.text and f"job {running.id}" in bar.proto.text
    at.button(key="extract_go").click().run()
    assert not at.exception, at.exception
    assert any(f"already running (job {running.id} of lena, 40%)" in e for e in _errors(at)), \
        _errors(at)
    assert [j.id for j in _extract_jobs(con)] == [running.id], "no second job"
    assert at.get("progress"), "the running job's progress is still shown"
    assert media.frames_of(con, video_id=video.id) == []

    jobs.update(con, running.id, status=JobStatus.FAILED, message="interrupted: start it again")
    at.run()
    assert any("Extraction failed: interrupted: start it again" in e for e in _errors(at))
    at.number_input(key="extract_count").set_value(3)
    at.button(key="extract_go").click().run()         # nothing runs now: this one starts
    _until_done(at)
    assert len(_extract_jobs(con)) == 2
    assert any("3 frames picked" in s.value for s in at.success), [s.value for s in at.success]


def test_empty_portion_fails_the_job_with_the_reason(app_env, tmp_path):
    con, lead, video = _lead_and_video(app_env, tmp_path, 50, gop=10)
    at = page("views/extract.py", lead).run()
    at.slider(key="extract_span").set_value((1.0, 1.0))
    at.button(key="extract_go").click().run()
    _until_done(at)
    assert any("Extraction failed: start / end: the range '1.0s' to '1.0s' holds no frames"
               in e for e in _errors(at)), _errors(at)
    [job] = _extract_jobs(con)
    assert job.status == JobStatus.FAILED
    assert media.frames_of(con, video_id=video.id) == []


def test_annotator_cannot_start_an_extraction_job(app_env, tmp_path):
    con, _, video = _lead_and_video(app_env, tmp_path, 20, gop=10)
    ann = make_user(con, "ann", Role.ANNOTATOR)
    with pytest.raises(PermissionDenied, match="ann \\(annotator\\) may not media.extract"):
        media_service.start_extract(Ctx(con, app_env, Actor.of(ann)), video.id, method="uniform",
                                    count=3)
    assert _extract_jobs(con) == [], "refused before a job row exists"
    assert [e.username for e in audit.search(con, action="denied")] == ["ann"]


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
    con, lead, video = _lead_and_video(app_env, tmp_path, 20, gop=10)
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
    assert _extract_jobs(con) == [], "refused before a job starts"
    assert media.frames_of(con, video_id=video.id) == []


def test_a_running_extraction_is_found_however_many_jobs_finished_since(app_env, tmp_path):
    """The refusal looks at every unfinished extraction, not at a window of recent jobs."""
    con, lead, video = _lead_and_video(app_env, tmp_path, 12, gop=4)
    running = jobs.create(con, "extract", params={"video_id": video.id}, created_by="otto")
    jobs.update(con, running.id, status=JobStatus.RUNNING, progress=0.1)
    for _ in range(media_service.RECENT_JOBS + 5):     # newer, finished, of another video
        done = jobs.create(con, "extract", params={"video_id": video.id + 1}, created_by="lena")
        jobs.update(con, done.id, status=JobStatus.DONE, progress=1.0)
    assert media_service.running_extraction(con, video.id).id == running.id
    assert media_service.running_extraction(con, video.id + 1) is None
    ctx = Ctx(con=con, settings=app_env, actor=Actor.of(lead))
    with pytest.raises(Exception, match=f"already running \\(job {running.id} of otto"):
        media_service.start_extract(ctx, video.id, method=SampleMethod.UNIFORM, count=2,
                                    background=False)
    assert media_service.extraction_job(con, video.id, created_by="lena") is None, \
        "lena has no job of this video (otto's is not offered to her)"
