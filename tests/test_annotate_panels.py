"""Annotate page panels (AppTest, annotate_panels.py): propagation offers the CLI's options and
a re-run replaces the earlier result; the done message survives the job's rerun; the review
strip is in frame order, flagged first, and opens a frame; the compact timeline is drawn."""

from __future__ import annotations

from endolite import annotate, jobs
from endolite.storage import annotations
from tests.test_page_annotate import _page, _setup


def _propagate(at, mask_id, direction="forward"):
    at.button(key=f"ann_prop_{mask_id}").click().run()
    at.radio(key="ann_prop_dir").set_value(direction)
    next(b for b in at.button if b.label == "Start propagation").click().run()
    assert not at.exception


def _last_job(con):
    return con.execute("SELECT max(id) FROM jobs WHERE kind = 'propagate'").fetchone()[0]


def test_second_propagation_leaves_one_mask_per_frame_and_the_message_stays(app_env, tmp_path):
    con, ann, frames, truth = _setup(app_env, tmp_path)
    m = annotate.save_mask(con, app_env, annotate.NewMask(frames[0].id, truth[0]), label="polyp",
                           annotator="ann")
    at = _page(ann).run()
    assert at.get("plotly_chart"), "the compact timeline is drawn"
    at.button(key=f"ann_prop_{m.id}").click().run()
    refine = at.checkbox(key="ann_prop_refine")
    assert refine.disabled, "no SAM checkpoint: refinement is offered but off"
    assert at.checkbox(key="ann_prop_replace").value is True
    assert [o for o in at.radio(key="ann_prop_dir").options] == ["both", "forward", "backward"]
    at.radio(key="ann_prop_dir").set_value("forward")
    next(b for b in at.button if b.label == "Start propagation").click().run()
    for run in (1, 2):
        job = jobs.wait(con, _last_job(con), timeout=120)
        assert job.params["replace"] is True and job.params["refine"] is False
        assert job.status == "done", job.message
        if "ann_job" in at.session_state:
            at.run()                               # the fragment sees the end and reruns the page
        assert not at.exception
        assert any(f"Propagation done: {len(frames) - 1} masks" in s.value for s in at.success)
        assert "ann_job" not in at.session_state
        at.run()                                   # another rerun soon after: still shown
        assert any("Propagation done" in s.value for s in at.success)
        per_frame: dict[int, int] = {}
        for x in annotations.masks_of(con, group_id=frames[0].group_id):
            if x.source == "propagated":
                per_frame[x.frame_id] = per_frame.get(x.frame_id, 0) + 1
        assert per_frame == {f.id: 1 for f in frames[1:]}, f"run {run}: one mask per frame"
        if run == 1:
            _propagate(at, m.id)


def test_review_strip_is_in_frame_order_flagged_first_and_opens_a_frame(app_env, tmp_path):
    con, ann, frames, truth = _setup(app_env, tmp_path)
    items = [annotate.NewMask(f.id, truth[i], source="propagated", confidence=0.9 - 0.1 * i,
                              flagged=i in (2, 4)) for i, f in enumerate(frames) if i]
    made = annotate.save_masks(con, app_env, items, label="polyp", annotator="ann")
    at = _page(ann).run()
    assert [e for e in at.expander if "Review propagated masks (2 flagged of 5)" in e.label]
    assert not any((b.key or "").startswith("ann_review_open_") for b in at.button), "closed: not built"
    at.session_state["ann_review"] = True          # open the expander
    at.run()
    opens = [b for b in at.button if (b.key or "").startswith("ann_review_open_")]
    expect = [frames[2], frames[4], frames[1], frames[3], frames[5]]   # flagged first, then frame order
    assert [b.label for b in opens] == [f"Open #{f.frame_number}" for f in expect]
    assert len(made) == 5
    opens[1].click().run()                         # frame #4's mask
    assert not at.exception
    assert at.session_state["ann_nav_index"] == 4


def test_sam_refinement_is_passed_to_the_job_when_sam_is_active(app_env, tmp_path, monkeypatch):
    """With a SAM engine active the box is enabled and the job refines (here the refiner wraps
    the test's classical engine: the wiring is what is checked, not SAM)."""
    import annotate_panels

    monkeypatch.setattr(annotate_panels, "sam_active", lambda: True)
    con, ann, frames, truth = _setup(app_env, tmp_path)
    m = annotate.save_mask(con, app_env, annotate.NewMask(frames[0].id, truth[0]), label="polyp",
                           annotator="ann")
    at = _page(ann).run()
    at.button(key=f"ann_prop_{m.id}").click().run()
    box = at.checkbox(key="ann_prop_refine")
    assert not box.disabled
    box.check()
    at.selectbox(key="ann_prop_to").select_index(3)               # up to the 3rd frame
    next(b for b in at.button if b.label == "Start propagation").click().run()
    assert not at.exception
    job = jobs.wait(con, _last_job(con), timeout=120)
    assert job.status == "done", job.message
    assert job.params["refine"] is True and job.params["to_frame_id"] == frames[2].id
    made = [x for x in annotations.masks_of(con, group_id=frames[0].group_id) if x.source == "propagated"]
    assert {x.frame_id for x in made} == {frames[1].id, frames[2].id}
    assert all("refined" in x.prompt for x in made)
