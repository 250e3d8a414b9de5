"""Annotation page (AppTest): engine shown, mask list with delete / undo, label-wide delete,
propagation job, blind benchmark frames.  The canvas itself is driven in the browser tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from tests.support import make_user  # noqa: I001
from endolite import annotate, auth
from endolite.benchmark import service as bench
from endolite.ingest import ingest_paths
from endolite.media import write_image_atomic
from endolite.records import LabelKind, Role
from endolite.storage import annotations, connect, labels, media
from endolite.synthetic import moving_disc_frames

ROOT = Path(__file__).resolve().parents[1]


def _setup(app_env, tmp_path, n=6):
    con = connect(app_env)
    ann = make_user(con, "ann", Role.ANNOTATOR, "annotator-pw")
    labels.add(con, "polyp", kind=LabelKind.PATHOLOGY, color="#ff0000")
    labels.add(con, "tool", kind=LabelKind.OTHER, color="#0000ff")
    folder = tmp_path / "seq"
    folder.mkdir()
    pairs = list(moving_disc_frames(n, height=96, width=128))
    for i, (frame, _) in enumerate(pairs):
        write_image_atomic(folder / f"img{i:02d}.png", frame, fmt="png")
    [group] = ingest_paths(con, app_env, [folder], user="ann")
    frames = media.frames_of(con, group_id=group.id)
    return con, ann, frames, [m for _, m in pairs]


def _page(user) -> AppTest:
    at = AppTest.from_file(str(ROOT / "views/annotate.py"), default_timeout=60)
    at.session_state["user_id"] = user.id
    return at


def _button(at, key):
    return at.button(key=key)


def test_page_names_the_engine_and_lists_masks_with_delete_and_undo(app_env, tmp_path):
    con, ann, frames, truth = _setup(app_env, tmp_path)
    m = annotate.save_mask(con, app_env, annotate.NewMask(frames[0].id, truth[0]), label="polyp",
                           annotator="ann")
    at = _page(ann).run()
    assert not at.exception, at.exception
    assert any("Classical engine" in c.value for c in at.caption), "the active engine is named"
    assert any(f"#{m.id}" in md.value for md in at.markdown)

    _button(at, f"ann_del_{m.id}").click().run()
    assert annotations.masks_of(con, frame_ids=[frames[0].id]) == []
    undo = _button(at, "ann_undo_btn")
    assert "delete" in undo.label
    undo.click().run()
    assert [x.id for x in annotations.masks_of(con, frame_ids=[frames[0].id])] == [m.id]


def test_delete_all_masks_of_a_label_needs_confirmation(app_env, tmp_path):
    con, ann, frames, truth = _setup(app_env, tmp_path)
    for f, mask in zip(frames, truth):
        annotate.save_mask(con, app_env, annotate.NewMask(f.id, mask), label="polyp", annotator="ann")
    keep = annotate.save_mask(con, app_env, annotate.NewMask(frames[1].id, truth[1]), label="tool",
                              annotator="ann")
    at = _page(ann).run()
    assert _button(at, "ann_del_all").disabled
    at.checkbox(key="ann_del_confirm").check().run()
    _button(at, "ann_del_all").click().run()
    left = annotations.masks_of(con, group_id=frames[0].group_id)
    assert [x.id for x in left] == [keep.id]
    assert any("Deleted 6" in s.value for s in at.success)


def test_propagation_runs_as_a_job_and_fills_the_review_strip(app_env, tmp_path):
    con, ann, frames, truth = _setup(app_env, tmp_path)
    m = annotate.save_mask(con, app_env, annotate.NewMask(frames[0].id, truth[0]), label="polyp",
                           annotator="ann")
    at = _page(ann).run()
    _button(at, f"ann_prop_{m.id}").click().run()
    at.radio(key="ann_prop_dir").set_value("forward")
    next(b for b in at.button if b.label == "Start propagation").click().run()
    job_id = at.session_state["ann_job"]
    from endolite import jobs

    job = jobs.wait(con, job_id, timeout=120)
    assert job.status == "done", job.message
    assert job.result["made"] == len(frames) - 1
    made = [x for x in annotations.masks_of(con, group_id=frames[0].group_id) if x.source == "propagated"]
    assert len(made) == len(frames) - 1
    at.run()
    assert any("Review propagated masks" in e.label for e in at.expander)


def test_benchmark_frames_are_blind_and_can_be_completed(app_env, tmp_path):
    con, ann, frames, truth = _setup(app_env, tmp_path)
    make_user(con, "gold", Role.LEAD, "gold-password")
    bench_id = bench.create_benchmark(con, name="b1", gold="gold", annotators=["ann"], labels=["polyp"],
                                      frame_ids=[frames[0].id], created_by="gold").id
    gold_mask = annotate.save_mask(con, app_env, annotate.NewMask(frames[0].id, truth[0]), label="polyp",
                                   annotator="gold")
    at = _page(ann).run()
    at.radio(key="ann_mode").set_value(at.radio(key="ann_mode").options[1]).run()
    assert not at.exception, at.exception
    assert any("only your own annotations" in i.value for i in at.info)
    assert not any(f"#{gold_mask.id}" in md.value for md in at.markdown), "gold masks stay hidden"
    _button(at, "ann_task_done").click().run()
    [row] = [r for r in bench.status_rows(con, bench_id) if r["annotator"] == "ann"]
    assert row["complete"] == 1


def test_annotator_cannot_touch_other_peoples_masks_and_undo_is_their_own(app_env, tmp_path):
    """An annotator sees no Delete / Propagate on the gold annotator's masks, 'delete all'
    removes only their own, and their undo never reverts someone else's action."""
    con, ann, frames, truth = _setup(app_env, tmp_path)
    make_user(con, "gold", Role.LEAD, "gold-password")
    from endolite.services import Actor, Ctx
    from endolite.services import masks as mask_service
    from endolite.storage import users

    gold_ctx = Ctx(con=con, settings=app_env, actor=Actor.of(users.get_by_name(con, "gold")))
    golds = [mask_service.save(gold_ctx, annotate.NewMask(f.id, m), label="polyp")
             for f, m in zip(frames, truth)]
    mine = annotate.save_mask(con, app_env, annotate.NewMask(frames[0].id, truth[0]), label="polyp",
                              annotator="ann")
    at = _page(ann).run()
    keys = {b.key for b in at.button}
    assert f"ann_del_{mine.id}" in keys and f"ann_del_{golds[0].id}" not in keys
    assert f"ann_prop_{golds[0].id}" not in keys
    assert _button(at, "ann_undo_btn").disabled, "the gold user's saves are not ann's to undo"

    at.checkbox(key="ann_del_confirm").check().run()
    _button(at, "ann_del_all").click().run()
    left = {m.id for m in annotations.masks_of(con, group_id=frames[0].group_id)}
    assert left == {g.id for g in golds}, "only ann's own mask went"
    at.run()
    undo = _button(at, "ann_undo_btn")
    undo.click().run()
    assert {m.id for m in annotations.masks_of(con, group_id=frames[0].group_id)} == left | {mine.id}


def test_jobs_a_server_stop_interrupted_are_named_once_per_session(app_env, tmp_path):
    """A propagation left 'running' by a killed server is marked failed at the next start, and
    its owner's Annotate page says so (once per session)."""
    from endolite.storage import jobs as job_store

    con, ann, frames, truth = _setup(app_env, tmp_path)
    job = job_store.create(con, "propagate", created_by="ann")
    job_store.update(con, job.id, status="running", progress=0.4)
    con.execute("UPDATE jobs SET owner = 'gone:1:x' WHERE id = ?", [job.id])
    con.close()
    con = connect(app_env)                       # the restart: recovery marks the job failed
    assert job_store.get(con, job.id).status == "failed"
    at = _page(ann).run()
    [warning] = [w.value for w in at.warning if "did not finish" in w.value]
    assert f"propagate job {job.id}" in warning and "interrupted" in warning and "40%" in warning
    at.run()
    assert not [w for w in at.warning if "did not finish" in w.value]


# --- issue 11: the workspace's own bugs ---------------------------------------------------------

def test_hiding_a_mask_takes_effect_in_the_same_run(app_env, tmp_path):
    """The 'show' box updates the hidden set in its on_change (before the canvas is drawn)."""
    con, ann, frames, truth = _setup(app_env, tmp_path)
    m = annotate.save_mask(con, app_env, annotate.NewMask(frames[0].id, truth[0]), label="polyp",
                           annotator="ann")
    at = _page(ann).run()
    at.checkbox(key=f"ann_vis_{m.id}").uncheck().run()
    assert m.id in at.session_state["ann_hidden"]
    at.checkbox(key=f"ann_vis_{m.id}").check().run()
    assert m.id not in at.session_state["ann_hidden"]


def test_completing_a_task_keeps_the_queue_and_opens_the_next_task(app_env, tmp_path):
    con, ann, frames, truth = _setup(app_env, tmp_path)
    make_user(con, "gold", Role.LEAD, "gold-password")
    bench.create_benchmark(con, name="b1", gold="gold", annotators=["ann"], labels=["polyp"],
                           frame_ids=[f.id for f in frames[:3]], created_by="gold")
    at = _page(ann).run()
    at.radio(key="ann_mode").set_value("tasks").run()
    assert at.session_state["ann_frame_id"] == frames[0].id
    assert [o for o in at.selectbox(key="ann_label").options] == ["polyp"], \
        "a benchmark task offers only the benchmark's labels"
    _button(at, "ann_task_done").click().run()
    assert not at.exception, at.exception
    assert at.radio(key="ann_mode").value == "tasks"
    assert at.session_state["ann_frame_id"] == frames[1].id
    _button(at, "ann_task_done").click().run()
    assert at.radio(key="ann_mode").value == "tasks"
    assert at.session_state["ann_frame_id"] == frames[2].id


def test_a_new_sequence_opens_at_its_first_frame_and_context_keeps_the_frame(app_env, tmp_path):
    con, ann, frames, truth = _setup(app_env, tmp_path)
    other = tmp_path / "seq2"
    other.mkdir()
    for i in range(3):
        write_image_atomic(other / f"b{i}.png", np.zeros((40, 50, 3), dtype=np.uint8), fmt="png")
    ingest_paths(con, app_env, [other], user="ann")
    media.set_context(con, [frames[1].id, frames[2].id], is_context=True, parent_id=frames[0].id)
    at = _page(ann).run()
    at.toggle(key="ann_context").set_value(True).run()
    for _ in range(4):
        _button(at, "ann_nav_next").click().run()
    assert at.session_state["ann_frame_id"] == frames[4].id
    at.toggle(key="ann_context").set_value(False).run()          # frames 1, 2 leave the list
    assert at.session_state["ann_frame_id"] == frames[4].id, "the frame shown stays"
    second = media.list_groups(con)[1]
    at.selectbox(key="ann_sequence").set_value(("group", second.id, f"images {second.id}: {second.title}")).run()
    assert at.session_state["ann_nav_index"] == 0, "another sequence opens at its first frame"
    assert media.get_frame(con, at.session_state["ann_frame_id"]).group_id == second.id


def test_the_chosen_label_survives_a_new_login(app_env, tmp_path):
    con, ann, frames, truth = _setup(app_env, tmp_path)
    at = _page(ann).run()
    assert at.selectbox(key="ann_label").value.name == "polyp"
    tool = next(lb for lb in labels.list_all(con) if lb.name == "tool")
    at.selectbox(key="ann_label").set_value(tool).run()
    again = _page(ann).run()                     # a fresh session: a new login
    assert again.selectbox(key="ann_label").value.name == "tool"


def test_redo_beside_undo(app_env, tmp_path):
    con, ann, frames, truth = _setup(app_env, tmp_path)
    m = annotate.save_mask(con, app_env, annotate.NewMask(frames[0].id, truth[0]), label="polyp",
                           annotator="ann")
    at = _page(ann).run()
    assert _button(at, "ann_redo_btn").disabled
    _button(at, f"ann_del_{m.id}").click().run()
    _button(at, "ann_undo_btn").click().run()
    assert [x.id for x in annotations.masks_of(con, frame_ids=[frames[0].id])] == [m.id]
    redo = _button(at, "ann_redo_btn")
    assert not redo.disabled and "delete" in redo.label
    redo.click().run()
    assert annotations.masks_of(con, frame_ids=[frames[0].id]) == []


def test_next_unlabelled_skips_frames_that_carry_masks(app_env, tmp_path):
    con, ann, frames, truth = _setup(app_env, tmp_path)
    for i in (1, 2):
        annotate.save_mask(con, app_env, annotate.NewMask(frames[i].id, truth[i]), label="polyp",
                           annotator="ann")
    at = _page(ann).run()
    _button(at, "ann_next_unlabelled").click().run()
    assert at.session_state["ann_frame_id"] == frames[3].id
    for i in (3, 4, 5):
        annotate.save_mask(con, app_env, annotate.NewMask(frames[i].id, truth[i]), label="polyp",
                           annotator="ann")
    _button(at, "ann_next_unlabelled").click().run()          # wraps round to frame 0
    assert at.session_state["ann_frame_id"] == frames[0].id
    annotate.save_mask(con, app_env, annotate.NewMask(frames[0].id, truth[0]), label="polyp",
                       annotator="ann")
    _button(at, "ann_next_unlabelled").click().run()
    assert any("Every frame of this list carries a mask" in i.value for i in at.info)


def test_model_suggestions_on_the_frame_accept_sets_a_frame_label(app_env, tmp_path):
    from endolite.records import Presence
    from endolite.storage import predictions as prediction_store
    from endolite.storage import training as run_store

    con, ann, frames, truth = _setup(app_env, tmp_path)
    polyp = labels.get_by_name(con, "polyp")
    run = run_store.create_run(con, backbone="resnet18", labels=["polyp"], label_ids=[polyp.id],
                               config={}, dataset={})
    run_store.update_run(con, run.id, status=run_store.RunStatus.DONE)
    first = min(frames, key=lambda f: f.frame_number)
    pset = prediction_store.create_set(con, run_id=run.id, group_id=first.group_id)
    prediction_store.insert_predictions(con, pset, frame_numbers=np.array([first.frame_number]),
                                        frame_ids=np.array([first.id]), label_ids=[polyp.id],
                                        probs=np.array([[0.88]]))
    at = _page(ann).run()
    assert not at.exception, at.exception
    assert any("**polyp** present · p = 0.88" in md.value for md in at.markdown)
    _button(at, f"ann_sug_{first.id}_{polyp.id}_{run.id}_yes").click().run()
    assert not at.exception, at.exception
    [row] = annotations.frame_labels_of(con, first.id, annotator="ann")
    assert (row.label_id, row.value) == (polyp.id, Presence.PRESENT)
    assert not any("p = 0.88" in md.value for md in at.markdown), "decided: gone"
