"""Training page (AppTest): a lead checks the dataset (positives per split, warnings), starts a
real training run (a worker process), watches it finish, reads its curves and test table,
predicts over an image group and reviews likely mislabels; annotators are refused the page.

The project is tests/test_train_runs.py's: image groups of colour images labelled red / green.
"""

from __future__ import annotations

import time

import pytest

from endolite import jobs
from endolite.records import JobStatus, Role
from endolite.storage import audit, connect, media
from endolite.storage import predictions as prediction_store
from endolite.storage import training as repo
from endolite.storage.training import RunStatus
from tests.support import make_user, page
from tests.test_train_runs import make_project


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("ENDOLITE_TRAIN_THREADS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _form(at, **values):
    by_label = {w.label: w for w in [*at.number_input, *at.checkbox, *at.selectbox,
                                     *at.text_input, *at.multiselect]}
    for label, value in values.items():
        by_label[label].set_value(value)
    return at


def test_annotators_are_refused_the_page(app_env):
    con = connect(app_env)
    ann = make_user(con, "ann", Role.ANNOTATOR)
    at = page("views/training.py", ann).run()
    assert not at.exception, at.exception
    assert not any("Start training" == b.label for b in at.button)
    assert any("you are signed in as annotator" in e.value for e in at.error)


def test_check_dataset_shows_positives_per_split_and_warnings(app_env, tmp_path):
    con = connect(app_env)
    make_project(con, app_env, tmp_path / "pictures", groups=4, per_group=3)
    lead = make_user(con, "lena", Role.LEAD)
    at = page("views/training.py", lead).run()
    assert not at.exception, at.exception
    assert any("No training runs yet" in i.value for i in at.info)
    _form(at, Labels=["red", "green"])
    next(b for b in at.button if b.label == "Check dataset").click().run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["label"]) == ["red", "green"]
    frames = sum(int(table.loc[0, c]) for c in table.columns if c.endswith(("+", "−", "?")))
    assert frames == 12, "every frame is counted once for 'red' across the splits"
    assert any("frames from 4" in c.value for c in at.caption)
    assert at.warning, "4 image groups leave some split without positives: warned"
    assert repo.list_runs(con) == [], "checking starts nothing"


@pytest.mark.slow
def test_lead_trains_watches_predicts_and_reviews(app_env, tmp_path):
    con = connect(app_env)
    make_project(con, app_env, tmp_path / "pictures", groups=6, per_group=4)
    lead = make_user(con, "lena", Role.LEAD)
    at = page("views/training.py", lead).run()
    _form(at, Labels=["red", "green"], Epochs=3, Precision="fp32",
          **{"Batch size": 8, "Image size": 32})
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, at.exception
    [run] = repo.list_runs(con)
    assert run.created_by == "lena" and run.config["epochs"] == 3
    assert run.config["precision"] == "fp32", "the form's precision reaches the run"
    assert run.config["image_size"] == 32 and list(run.labels) == ["red", "green"]
    assert any("Run 1 started" in s.value for s in at.success)
    assert [e.username for e in audit.search(con, action="model.train")] == ["lena"]

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        at.run()                             # the page's watcher records the worker's files
        run = repo.get_run(con, run.id)
        if run.finished:
            break
        time.sleep(1)
    assert run.status == RunStatus.DONE, (run.status, run.error)
    at.run()
    assert not at.exception, at.exception
    status = " ".join(m.value for m in at.markdown)
    assert "Run 1: **done**" in status and "best epoch" in status
    assert len(at.get("plotly_chart")) >= 2, "loss and per-label curves are drawn"
    tables = [d.value for d in at.dataframe]
    assert any("tp" in t.columns and set(t.index) == {"red", "green"} for t in tables), \
        "the test split's confusion per label"

    # predictions over the first image group, as a background job
    group = media.list_groups(con)[0]
    at.selectbox(key="predict_seq").set_value(("group", group.id, f"images {group.id}: {group.title}"))
    at.run()
    at.button(key="predict_go").click().run()
    assert not at.exception, at.exception
    job = jobs.wait(con, at.session_state[f"predict_job_{run.id}"], timeout=120)
    assert job.status == JobStatus.DONE, job.message
    at.run()                                 # the job's fragment sees it done and reruns the page
    assert not at.exception, at.exception
    assert any("Predicted 4 frames" in s.value for s in at.success)
    [pset] = prediction_store.sets_of(con, group_id=group.id)
    assert pset.frames == 4 and pset.run_id == run.id and pset.job_id == job.id
    assert any(f"Prediction set {pset.id}: 4 frames" in c.value for c in at.caption)

    # likely mislabels: what the service lists is what the page says
    from endolite.services import mislabels
    listed = mislabels.likely_mislabels(con, app_env, run.id)
    captions = " ".join(c.value for c in at.caption)
    if listed:
        assert f"{len(listed)} frame / label pairs" in captions
    else:
        assert "No likely mislabels" in captions


def test_predictions_over_a_video_draw_the_timeline_and_segments_can_be_accepted(app_env, tmp_path):
    """A done run (random-init checkpoint) predicts over a video from the page as a job whose id
    the stored set records; the timeline and the predicted-segment panel appear; accepting a
    proposed segment adds a real segment."""
    from endolite.ingest import ingest_paths
    from endolite.storage import annotations, labels
    from endolite.synthetic import write_disc_video
    from tests.test_uncertainty import add_done_run

    con = connect(app_env)
    lead = make_user(con, "lena", Role.LEAD)
    polyp = labels.add(con, "polyp")
    [video] = ingest_paths(con, app_env, [write_disc_video(tmp_path / "v.mp4", 40)], user="t")
    run_id, _ = add_done_run(con, app_env, ["polyp"], label_ids=[polyp.id],
                             backbone="mobilenetv3_small_050", image_size=32)
    at = page("views/training.py", lead).run()
    assert not at.exception, at.exception
    assert at.session_state["train_run"] == run_id
    at.number_input(key="predict_every").set_value(2)
    at.button(key="predict_go").click().run()
    job = jobs.wait(con, at.session_state[f"predict_job_{run_id}"], timeout=120)
    assert job.status == JobStatus.DONE, job.message
    at.run()
    assert not at.exception, at.exception
    [pset] = prediction_store.sets_of(con, video_id=video.id)
    assert pset.frames == 20 and pset.every == 2
    assert pset.job_id == job.id, "the set records the page's prediction job"
    assert job.created_by == "lena" and job.kind == "predict" and job.result["set_id"] == pset.id
    assert any(f"Prediction set {pset.id}: 20 frames (every 2)" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) >= 1, "the probability timeline is drawn"
    # random weights give an arbitrary track: add one known proposal to decide on the page
    before = {p.id for p in prediction_store.predicted_segments(con, pset.id)}
    prediction_store.insert_predicted_segments(con, pset, [
        {"label_id": polyp.id, "start_frame": 4, "end_frame": 12, "mean_probability": 0.8}])
    [first] = [p for p in prediction_store.predicted_segments(con, pset.id) if p.id not in before]
    at.run()
    accept = next(b for b in at.button if b.label == "Accept" and (b.key or "").endswith(f"_accept_{first.id}"))
    accept.click().run()
    assert not at.exception, at.exception
    decided = prediction_store.get_predicted_segment(con, first.id)
    assert decided.status == "accepted" and decided.segment_id is not None
    [segment] = annotations.segments_of(con, video_id=video.id)
    assert (segment.start_frame, segment.end_frame) == (first.start_frame, first.end_frame)
    assert segment.annotator == "lena"
