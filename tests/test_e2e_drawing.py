"""In Chromium: an annotator draws by hand on the annotation canvas (polygon, brush, eraser) and
saves; the stored masks are checked in the database afterwards against what was drawn."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from endolite import annotate
from endolite.storage import annotations, connect, media
from tests.e2e_support import (DISC, FRAME_H, FRAME_W, annotation_project, browser_page,
                                canvas_point, disc_frame, log_in, pick_tool, running_dashboard,
                                wait_idle)

pytestmark = pytest.mark.e2e
H, W = FRAME_H, FRAME_W
CX, CY, R = DISC         # the synthetic disc (image pixels)


def _setup(tmp_path):
    return annotation_project(tmp_path, disc_frame(tmp_path)[0])


def _stored(settings, group):
    con = connect(settings)
    try:
        frame = media.frames_of(con, group_id=group.id)[0]
        return annotations.masks_of(con, frame_ids=[frame.id])
    finally:
        con.close()


def _to_screen(page, x: float, y: float) -> tuple[float, float]:
    return canvas_point(page, x, y, W, H)


def _open_annotate(page, url: str) -> None:
    log_in(page, url, "ann", "annotator-pw")
    page.get_by_role("link", name="Annotate").click()
    page.get_by_role("heading", name="Annotate").wait_for()
    page.locator("canvas.upper-canvas").first.wait_for()
    wait_idle(page)


def _stroke(page, path: list[tuple[float, float]]) -> None:
    """Drag the mouse through image pixels ``path`` (press at the first, release at the last)."""
    page.mouse.move(*_to_screen(page, *path[0]))
    page.mouse.down()
    for x, y in path[1:]:
        page.mouse.move(*_to_screen(page, x, y), steps=12)
    page.mouse.up()


def _path_mask(path: list[tuple[float, float]], thickness: int = 1) -> np.ndarray:
    out = np.zeros((H, W), dtype=np.uint8)
    cv2.polylines(out, [np.round(np.asarray(path)).astype(np.int32).reshape(-1, 1, 2)], isClosed=False,
                  color=1, thickness=thickness)
    return out.astype(bool)


def test_polygon_clicked_around_the_disc_is_saved_as_that_polygon(tmp_path):
    data_dir, settings, group = _setup(tmp_path)
    # a hexagon just inside the disc, in image pixels
    vertices = [(CX + 38 * math.cos(a), CY + 38 * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 7)[:-1]]

    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        _open_annotate(page, url)
        pick_tool(page, "polygon")
        page.get_by_text("0 closed polygon(s)", exact=False).wait_for()
        for x, y in vertices:
            page.mouse.click(*_to_screen(page, x, y))
            page.wait_for_timeout(150)
        page.mouse.click(*_to_screen(page, *vertices[0]))     # the first vertex's handle closes it
        page.get_by_text("1 closed polygon(s)", exact=False).wait_for()
        page.get_by_role("button", name="Save polygon").click()
        page.get_by_text("Masks on this frame (1)").wait_for()
        wait_idle(page)
        page.screenshot(path=str(tmp_path / "polygon.png"), full_page=True)

    [saved] = _stored(settings, group)
    assert saved.kind == "polygon" and saved.label == "polyp" and saved.annotator == "ann"
    expected = np.zeros((H, W), dtype=np.uint8)
    cv2.fillPoly(expected, [np.round(np.asarray(vertices)).astype(np.int32)], 1)
    expected = expected.astype(bool)
    got = annotate.load_mask(saved)
    iou = (got & expected).sum() / (got | expected).sum()
    assert iou > 0.9, f"the stored polygon matches the clicked one (IoU {iou:.2f})"
    assert len(saved.prompt["polygon"]) == len(vertices)


def test_brush_stroke_over_the_disc_is_saved_as_painted(tmp_path):
    data_dir, settings, group = _setup(tmp_path)
    path = [(165.0, 75.0), (235.0, 75.0), (235.0, 110.0)]      # an L through the disc

    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        _open_annotate(page, url)
        pick_tool(page, "brush")
        _stroke(page, path)
        page.get_by_role("button", name="Save brush mask").click()
        page.get_by_text("Masks on this frame (1)").wait_for()
        wait_idle(page)
        page.screenshot(path=str(tmp_path / "brush.png"), full_page=True)

    [saved] = _stored(settings, group)
    assert saved.kind == "mask" and saved.label == "polyp" and saved.annotator == "ann"
    assert saved.source == "manual"
    got = annotate.load_mask(saved)
    line = _path_mask(path)
    missed = (line & ~got).sum()
    assert missed <= 0.03 * line.sum(), f"the stored mask covers the stroke ({missed} of {line.sum()} missed)"
    # default brush: 20 canvas px = 10 image px wide; nothing far from the stroke is painted
    assert not (got & ~_path_mask(path, thickness=26)).any(), "paint only near the stroke"
    assert got.sum() > 6 * line.sum(), "the stroke has the brush's width, not a hairline"


def test_eraser_removes_part_of_a_brushed_mask(tmp_path):
    data_dir, settings, group = _setup(tmp_path)
    brushed = [(160.0, 90.0), (240.0, 90.0)]                   # horizontal through the disc
    erased = [(200.0, 55.0), (200.0, 125.0)]                   # vertical cut through its middle

    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        _open_annotate(page, url)
        pick_tool(page, "brush")
        _stroke(page, brushed)
        page.get_by_role("button", name="Save brush mask").click()
        page.get_by_text("Masks on this frame (1)").wait_for()
        wait_idle(page)
        pick_tool(page, "eraser")
        page.get_by_text("Erase from").wait_for()
        _stroke(page, erased)
        page.get_by_role("button", name="Erase", exact=True).click()
        page.get_by_role("button", name="Undo (edit)").wait_for()
        page.get_by_text("Masks on this frame (1)").wait_for()
        wait_idle(page)
        page.screenshot(path=str(tmp_path / "eraser.png"), full_page=True)

    [saved] = _stored(settings, group)
    assert saved.label == "polyp" and saved.annotator == "ann"
    assert "edited_from" in saved.prompt, "the live mask is the edited one"
    got = annotate.load_mask(saved)
    assert not got[80:101, 197:204].any(), "the erased band is gone from the stored mask"
    assert got[88:93, 165:185].all() and got[88:93, 215:235].all(), "the rest of the stroke is kept"
