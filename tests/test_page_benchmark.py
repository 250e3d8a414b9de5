"""Benchmark page (AppTest): create a benchmark through the form, read the leaderboard, download
the CSVs (content read back from the app's media store), save and compare runs."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import ui
from tests.support import make_user  # noqa: I001
from endolite.benchmark import service
from endolite.storage import benchmarks, connect, users
from tests.test_benchmark_service import IOU_COLUMNS, make_benchmark_data

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def media_store(monkeypatch):
    """Record the in-memory media stores AppTest creates, so download bytes can be read back."""
    import streamlit.testing.v1.app_test as app_test
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    stores: list[MemoryMediaFileStorage] = []

    class Recording(MemoryMediaFileStorage):
        def __init__(self, endpoint: str) -> None:
            super().__init__(endpoint)
            stores.append(self)

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Recording)

    def read(button) -> bytes:
        return stores[-1].get_file(button.proto.url.rsplit("/", 1)[-1]).content

    return read


@pytest.fixture
def setup(app_env, tmp_path):
    con = connect(app_env)
    data = make_benchmark_data(con, app_env, tmp_path / "pngs")
    return con, data, users.get_by_name(con, "lena")


def _table(at: AppTest, column: str):
    """The first dataframe with ``column`` (st.dataframe elements carry no key in AppTest)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _page(user) -> AppTest:
    at = AppTest.from_file(str(ROOT / "views/benchmark.py"), default_timeout=90)
    at.session_state["user_id"] = user.id
    return at


def test_annotators_cannot_open_the_page(setup):
    con, _, _ = setup
    at = _page(users.get_by_name(con, "ann")).run()
    assert any("This page is for" in e.value for e in at.error)
    assert not at.text_input


def test_create_via_form_with_hand_picked_frames(setup):
    con, data, lead = setup
    at = _page(lead).run()
    assert not at.exception
    assert any("No benchmark yet" in i.value for i in at.info)
    at.radio(key="bm_source").set_value("Frame ids").run()
    at.text_input(key="bm_name").input("weekly check")
    at.selectbox(key="bm_gold").select("gina")
    at.multiselect(key="bm_annotators").select("ann").select("bob")
    at.multiselect(key="bm_labels").select("polyp").select("tool")
    at.text_input(key="bm_frames").input(",".join(map(str, data["frames"][:2])))
    next(b for b in at.button if b.label == "Create benchmark").click().run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    [bench] = benchmarks.list_all(con)
    assert (bench.name, bench.gold, bench.annotators) == ("weekly check", "gina", ("ann", "bob"))
    assert bench.frame_ids == tuple(data["frames"][:2]) and bench.created_by == "lena"
    assert any("Benchmark 1 created: 2 frames" in s.value for s in at.success)
    assert at.selectbox(key="bm_pick").value == bench.id
    status = _table(at, "role")
    assert sorted(status["annotator"]) == ["ann", "bob", "gina"] and set(status["todo"]) == {2}


def test_create_from_a_sequence_sample_and_refuse_bad_input(setup):
    con, data, lead = setup
    at = _page(lead).run()
    at.text_input(key="bm_name").input("sampled")
    at.selectbox(key="bm_gold").select("gina")
    at.multiselect(key="bm_labels").select("polyp")
    submit = next(b for b in at.button if b.label == "Create benchmark")
    submit.click().run()
    assert any("at least one annotator" in e.value for e in at.error)
    at.multiselect(key="bm_annotators").select("gina")
    next(b for b in at.button if b.label == "Create benchmark").click().run()
    assert any("gold annotator and cannot also be evaluated" in e.value for e in at.error)
    at.multiselect(key="bm_annotators").unselect("gina").select("ann")
    at.number_input(key="bm_sample").set_value(2)
    at.number_input(key="bm_seed").set_value(4)
    next(b for b in at.button if b.label == "Create benchmark").click().run()
    assert not at.exception and not at.error
    [bench] = benchmarks.list_all(con)
    assert len(bench.frame_ids) == 2 and set(bench.frame_ids) <= set(data["frames"])
    assert list(bench.frame_ids) == service.select_frames(con, group_id=data["group"], sample=2, seed=4)


def test_report_shows_leaderboard_plots_gallery_and_downloads(setup, media_store):
    con, data, lead = setup
    bench = service.create_benchmark(con, name="report", gold="gina", annotators=["ann", "bob"],
                                     labels=["polyp", "tool"], frame_ids=data["frames"])
    for who in ("gina", "ann", "bob"):
        service.complete(con, bench.id, who)
    at = _page(lead).run()
    assert not at.exception, at.exception
    board = _table(at, "tasks_done")
    assert list(board["annotator"]) == ["ann", "bob"], "best F1 first"
    ann = board.set_index("annotator").loc["ann"]
    assert (ann["evaluated"], ann["missing"], ann["mismatched"]) == (3, 1, 1)
    expected = {r["annotator"]: r for r in service.build_benchmark_report(con, bench.id).leaderboard}
    assert ann["mean_iou"] == pytest.approx(expected["ann"]["mean_iou"])
    assert [c.key for c in at.get("plotly_chart")] == ["bm_box", "bm_heat", "bm_cm"]
    gallery = [m.value for m in at.markdown if "· score" in m.value]
    assert gallery[0].startswith(f"**{ui.md('img_c.png')}**") and "mismatched 1" in gallery[0], "worst first"
    assert len(at.get("image")) == 2 * len(gallery) == 6, "gold and annotator side by side"

    labels_ = [b.label for b in at.download_button]
    assert labels_ == ["iou_results.csv", "label_summary.csv", "benchmark_report.json"]
    rows = list(csv.DictReader(io.StringIO(media_store(at.download_button(key="bm_dl_iou")).decode())))
    assert list(rows[0]) == IOU_COLUMNS
    assert {r["annotator"] for r in rows} == {"ann", "bob"}
    exact = next(r for r in rows if r["object_id"] == str(data["masks"]["ann_b"]))
    assert (exact["data_unit_name"], float(exact["iou_score"]), exact["class_score"]) == ("img_b.png", 1.0, "1")
    summary = media_store(at.download_button(key="bm_dl_summary")).decode()
    assert summary.splitlines()[0].startswith("annotator,label_name,label_id")
    assert b'"leaderboard"' in media_store(at.download_button(key="bm_dl_json"))


def test_report_follows_task_status_and_runs_compare(setup):
    con, data, lead = setup
    bench = service.create_benchmark(con, name="runs", gold="gina", annotators=["ann"],
                                     labels=["polyp", "tool"], frame_ids=data["frames"])
    at = _page(lead).run()
    assert any("Nothing to evaluate yet" in i.value for i in at.info)
    service.complete(con, bench.id, "gina")
    service.complete(con, bench.id, "ann", frame_ids=data["frames"][:1])
    at.run()
    assert list(_table(at, "tasks_done")["evaluated"]) == [1]
    at.button(key="bm_save_run").click().run()
    assert any("Saved run" in s.value for s in at.success)
    service.complete(con, bench.id, "ann")
    at.run()
    assert list(_table(at, "tasks_done")["evaluated"]) == [3], "recomputed on change"
    at.button(key="bm_save_run").click().run()
    table = at.dataframe[-1].value
    assert list(table.columns) == ["1", "2"] and list(table.index) == ["ann"]
    assert table.loc["ann", "1"] != table.loc["ann", "2"]


def test_leaderboard_headers_are_readable_and_one_annotator_is_singular(setup):
    import json

    con, data, lead = setup
    at = _page(lead).run()
    at.radio(key="bm_source").set_value("Frame ids").run()
    at.text_input(key="bm_name").input("single")
    at.selectbox(key="bm_gold").select("gina")
    at.multiselect(key="bm_annotators").select("ann")
    at.multiselect(key="bm_labels").select("polyp")
    at.text_input(key="bm_frames").input(str(data["frames"][0]))
    next(b for b in at.button if b.label == "Create benchmark").click().run()
    assert not at.exception and not at.error
    [flash] = [s.value for s in at.success if "created" in s.value]
    assert flash.endswith("and 1 annotator."), flash
    board = next(d for d in at.dataframe if "tasks_done" in d.value.columns)
    config = json.loads(board.proto.columns)
    config = {name: c for name, c in config.items() if not name.startswith("_")}
    labels_ = {name: c.get("label") for name, c in config.items()}
    assert labels_["mean_dice"] == "Mean Dice" and labels_["mean_iou"] == "Mean IoU"
    assert labels_["tasks_done"] == "Done" and labels_["mismatched"] == "Wrong label"
    assert all(label and "_" not in label for label in labels_.values()), labels_
    assert {c.get("width") for c in config.values()} <= {"small", "medium"}


def test_worst_frame_caption_shows_the_overlap_below_the_match_threshold(setup):
    """Frame a: ann's disc is the gold disc shifted 3 px (IoU ~0.7).  At a 0.9 threshold it is
    not a match: score 0, missing 1, extra 1; the caption says how much they overlap."""
    from endolite.masks import array_iou
    from tests.test_benchmark_service import H, W, disc_mask

    con, data, lead = setup
    bench = service.create_benchmark(con, name="strict", gold="gina", annotators=["ann"],
                                     labels=["polyp"], frame_ids=data["frames"][:1],
                                     iou_threshold=0.9)
    for who in ("gina", "ann"):
        service.complete(con, bench.id, who)
    at = _page(lead).run()
    assert not at.exception, at.exception
    iou = array_iou(disc_mask(H, W, 24, 20, 10), disc_mask(H, W, 27, 20, 10))
    [line] = [m.value for m in at.markdown if "· score" in m.value]
    assert "score 0.00" in line and "missing 1, extra 1" in line, line
    assert f"best IoU {iou:.3f}" in line, (iou, line)
    assert "below the 0.90 IoU match threshold" in line, line
