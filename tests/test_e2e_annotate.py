"""In Chromium: an annotator clicks + and - points on the frame canvas, a mask appears and is
accepted; drawing a box and saving it stores a box.  Checked in the database afterwards."""

from __future__ import annotations

import pytest

from endolite import annotate
from endolite.storage import annotations, connect, media
from tests.e2e_support import (FRAME_H, FRAME_W, annotation_project, browser_page, canvas_point,
                                disc_frame, log_in, pick_tool, running_dashboard, wait_idle)

pytestmark = pytest.mark.e2e
H, W = FRAME_H, FRAME_W


def _to_screen(page, x: float, y: float) -> tuple[float, float]:
    return canvas_point(page, x, y, W, H)


def _canvas_click(page, x: float, y: float) -> None:
    page.mouse.click(*_to_screen(page, x, y))


def test_clicks_on_the_canvas_make_and_save_a_mask(tmp_path):
    folder, truth = disc_frame(tmp_path)
    data_dir, settings, group = annotation_project(tmp_path, folder)

    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        log_in(page, url, "ann", "annotator-pw")
        page.get_by_role("link", name="Annotate").click()
        page.get_by_role("heading", name="Annotate").wait_for()
        page.get_by_text("Classical engine").first.wait_for()
        page.locator("canvas.upper-canvas").first.wait_for()
        wait_idle(page)
        _canvas_click(page, 200, 90)                     # + inside the disc
        page.get_by_text("1 positive, 0 negative clicks").wait_for()
        pick_tool(page, "− point")
        _canvas_click(page, 40, 200)                     # - on the background
        page.get_by_text("1 positive, 1 negative clicks").wait_for()
        page.get_by_role("button", name="Accept mask").click()
        page.get_by_text("Masks on this frame (1)").wait_for()
        wait_idle(page)
        page.screenshot(path=str(tmp_path / "annotate.png"), full_page=True)

        pick_tool(page, "box")
        page.mouse.move(*_to_screen(page, 20, 20))
        page.mouse.down()
        page.mouse.move(*_to_screen(page, 80, 60), steps=8)
        page.mouse.up()
        page.get_by_role("button", name="Save as box").click()
        page.get_by_text("Masks on this frame (2)").wait_for()

    con = connect(settings)
    frame = media.frames_of(con, group_id=group.id)[0]
    saved = annotations.masks_of(con, frame_ids=[frame.id])
    assert [m.kind for m in saved] == ["mask", "box"]
    mask, box = saved
    assert mask.annotator == "ann" and mask.label == "polyp"
    points = mask.prompt["points"]
    assert [p[2] for p in points] == [1, 0]
    assert abs(points[0][0] - 200) < 3 and abs(points[0][1] - 90) < 3, "clicks land in image (x, y)"
    got = annotate.load_mask(mask)
    iou = (got & truth).sum() / (got | truth).sum()
    assert iou > 0.8, f"the mask from the clicks covers the disc (IoU {iou:.2f})"
    x, y, w, h = box.bbox
    assert abs(x - 20) <= 3 and abs(y - 20) <= 3 and abs(w - 60) <= 4 and abs(h - 40) <= 4
