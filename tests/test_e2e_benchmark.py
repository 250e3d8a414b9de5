"""In Chromium: a lead logs in, opens the Benchmark page, sees the leaderboard and downloads
iou_results.csv.  The data (users, labels, an image group of synthetic PNGs, gold and annotator
masks, completed tasks) is prepared through the core before the dashboard starts."""

from __future__ import annotations

import csv

import pytest

from endolite.benchmark import service
from endolite.config import Settings
from endolite.storage import connect
from tests.e2e_support import browser_page, dataframe_rows, log_in, running_dashboard, wait_idle
from tests.test_benchmark_service import IOU_COLUMNS, make_benchmark_data

pytestmark = pytest.mark.e2e


def test_lead_sees_leaderboard_and_downloads_iou_results(tmp_path):
    data_dir = tmp_path / "data"
    settings = Settings.resolve(data_dir)
    con = connect(settings)
    data = make_benchmark_data(con, settings, tmp_path / "pngs")
    bench = service.create_benchmark(con, name="polyp weekly", gold="gina", annotators=["ann", "bob"],
                                     labels=["polyp", "tool"], frame_ids=data["frames"], created_by="lena")
    service.complete(con, bench.id, "gina")
    service.complete(con, bench.id, "ann")
    con.close()                                       # the dashboard is the one writer now

    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        log_in(page, url, "lena", "lena-pass-1")        # make_benchmark_data: NAME-pass-1

        page.get_by_role("link", name="Benchmark").click()
        page.get_by_role("heading", name="Benchmark").first.wait_for()
        page.get_by_role("heading", name="Leaderboard").wait_for()
        wait_idle(page)
        page.get_by_text("Only frames that both the gold annotator").wait_for()
        page.get_by_role("heading", name="Worst frames").wait_for()
        page.get_by_text("img_c.png").first.wait_for()       # the worst frame: polyp drawn as tool
        page.screenshot(path=str(tmp_path / "benchmark.png"), full_page=True)
        board = dataframe_rows(page, "Evaluated")           # readable headers, not snake_case
        assert list(board[0])[:4] == ["Annotator", "Done", "Tasks", "Evaluated"]
        leader = {r["Annotator"]: r for r in board}
        assert set(leader) == {"ann", "bob"}
        # (the grid renders the columns in view; the rest are checked in tests/test_page_benchmark.py)
        assert (leader["ann"]["Evaluated"], leader["bob"]["Evaluated"]) == ("3", "0")
        assert 0.5 < float(leader["ann"]["Mean IoU"]) < 1.0
        with page.expect_download() as info:
            page.get_by_role("button", name="iou_results.csv").click()
        download = info.value
        assert download.suggested_filename == "iou_results.csv"
        target = tmp_path / "iou_results.csv"
        download.save_as(str(target))

    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert list(rows[0]) == IOU_COLUMNS
    assert {r["annotator"] for r in rows} == {"ann"}, "bob completed nothing: not evaluated"
    exact = next(r for r in rows if r["object_id"] == str(data["masks"]["ann_b"]))
    assert exact["data_unit_name"] == "img_b.png"
    assert float(exact["iou_score"]) == 1.0 and exact["class_score"] == "1"
    shifted = next(r for r in rows if r["object_id"] == str(data["masks"]["ann_a"]))
    assert 0.5 < float(shifted["iou_score"]) < 1.0
