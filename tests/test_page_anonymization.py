"""Anonymization page (AppTest): a lead anonymizes a video as a background job, sees raw and
anonymized frames side by side and the residual count, sends it back with a reason and validates
it; annotators are refused the page."""

from __future__ import annotations

from endolite import jobs
from endolite.records import JobStatus, Role
from endolite.services import Actor, Ctx
from endolite.services import media as media_service
from endolite.storage import anonymizations as anon
from endolite.storage import audit, connect
from endolite.storage.anonymizations import AnonStatus
from tests.support import make_user, page
from tests.test_anonymize import write_screen_video


def _video(con, settings, tmp_path) -> int:
    [result] = media_service.import_server(Ctx(con=con, settings=settings, actor=Actor.server_shell()),
                                           [write_screen_video(tmp_path / "screen.mp4", 8)])
    return result.id


def test_lead_anonymizes_rejects_and_validates_a_video(app_env, tmp_path):
    con = connect(app_env)
    lead = make_user(con, "lena", Role.LEAD)
    video_id = _video(con, app_env, tmp_path)
    at = page("views/anonymization.py", lead).run()
    assert not at.exception, at.exception
    assert any("Not anonymized yet" in i.value for i in at.info)

    at.text_area(key="anon_rects").input("0,0,30,30")
    next(b for b in at.button if b.label == "Anonymize").click().run()
    assert not at.exception, at.exception
    job_id = at.session_state["anon_job"]
    job = jobs.wait(con, job_id, timeout=120)
    assert job.status == JobStatus.DONE, job.message
    at.run()                                   # the fragment sees the finished job and reruns
    at.run()
    assert not at.exception, at.exception
    row = anon.get(con, video_id=video_id)
    assert row.status == AnonStatus.ANONYMIZED and row.redactions == [[0, 0, 30, 30]]
    assert row.created_by == "lena" and row.residual == [] and row.sampled_frames == 8
    assert any("status: **anonymized**" in m.value for m in at.markdown)
    assert any("No text found on the 8 anonymized frames" in s.value for s in at.success)
    captions = [img.caption for image in at.image for img in image.proto.imgs]
    assert sum("raw" in c for c in captions) == 6 and sum("anonymized" in c for c in captions) == 6

    at.text_input(key="anon_reason").input("blank the *corner* too")
    next(b for b in at.button if b.label == "Send back").click().run()
    assert not at.exception, at.exception
    row = anon.get(con, video_id=video_id)
    assert (row.status, row.reason, row.decided_by) == (AnonStatus.REJECTED, "blank the *corner* too",
                                                        "lena")
    assert any("sent back" in s.value for s in at.success)

    at.button(key="anon_validate").click().run()
    assert not at.exception, at.exception
    assert anon.status_of(con, video_id=video_id) == AnonStatus.VALIDATED
    assert any("validated" in s.value for s in at.success)
    assert [e.details["status"] for e in reversed(audit.search(con, action="media.validate"))] == [
        "rejected", "validated"]


def test_annotator_is_refused_the_page(app_env, tmp_path):
    con = connect(app_env)
    ann = make_user(con, "ann", Role.ANNOTATOR)
    _video(con, app_env, tmp_path)
    at = page("views/anonymization.py", ann).run()
    assert not at.exception, at.exception
    assert any("for admin / lead" in e.value for e in at.error)
    assert not at.button
