"""In Chromium: the Annotate workspace (issue 11).  The whole frame is on screen at 1366x768
without scrolling; a mask's 'show' box hides it at once; 'Complete and next' keeps the task
queue; tool and frame hotkeys; a click on a zoomed view lands on the right frame pixel."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from endolite import annotate
from endolite.storage import annotations, connect, media
from tests.e2e_support import (ANNOTATOR, ANNOTATOR_PASSWORD, DISC, FRAME_H, FRAME_W,
                                annotation_project, browser_page, disc_frame, log_in,
                                running_dashboard, wait_idle)

pytestmark = pytest.mark.e2e
CX, CY, R = DISC


def _project(tmp_path, n: int = 1):
    """The disc frame (``n`` copies: polyp01.png, polyp02.png, ...) as one group of ann's."""
    from endolite.media import read_image, write_image_atomic

    folder, truth = disc_frame(tmp_path)
    image = read_image(folder / "polyp01.png")
    for i in range(2, n + 1):                 # distinct files (identical ones are one frame)
        copy = image.copy()
        copy[0, 0] = (i, i, i)
        write_image_atomic(folder / f"polyp{i:02d}.png", copy, fmt="png")
    data_dir, settings, group = annotation_project(tmp_path, folder)
    return data_dir, settings, group, truth


def _open_annotate(page, url: str) -> None:
    log_in(page, url, ANNOTATOR, ANNOTATOR_PASSWORD)
    page.get_by_role("link", name="Annotate").click()
    page.get_by_role("heading", name="Annotate").wait_for()
    page.locator("canvas.upper-canvas").first.wait_for()
    wait_idle(page)


def _canvas_box(page) -> dict:
    return page.locator("canvas.upper-canvas").first.bounding_box()


def _pixel(page, x: float, y: float) -> tuple[int, int, int]:
    """The screen colour at image pixel (x, y) of the unzoomed canvas."""
    box = _canvas_box(page)
    sx, sy = box["x"] + x * box["width"] / FRAME_W, box["y"] + y * box["height"] / FRAME_H
    shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    return shot.getpixel((int(sx), int(sy)))


def _press(page, key: str) -> None:
    """A hotkey with the focus on the page (not in a text field)."""
    page.get_by_role("heading", name="Annotate").click()
    page.keyboard.press(key)
    wait_idle(page)


def test_the_whole_frame_is_visible_at_1366x768_without_scrolling(tmp_path):
    data_dir, settings, group, _ = _project(tmp_path)
    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        page.set_viewport_size({"width": 1366, "height": 768})
        _open_annotate(page, url)
        page.wait_for_timeout(500)
        page.screenshot(path=str(tmp_path / "workspace-1366x768.png"))
        box = _canvas_box(page)
        scrolled = page.evaluate("() => [window.scrollX, window.scrollY]")
    assert scrolled == [0, 0]
    assert box["x"] >= 0 and box["y"] >= 0, box
    assert box["x"] + box["width"] <= 1366 and box["y"] + box["height"] <= 768, \
        f"the canvas {box} is not wholly inside the 1366x768 viewport"
    assert box["width"] >= 480, "the frame is shown larger than a thumbnail"


def test_unticking_show_hides_the_mask_at_once(tmp_path):
    data_dir, settings, group, truth = _project(tmp_path)
    con = connect(settings)
    [frame] = media.frames_of(con, group_id=group.id)
    saved = annotate.save_mask(con, settings, annotate.NewMask(frame.id, truth), label="polyp",
                               annotator=ANNOTATOR)
    con.close()
    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        _open_annotate(page, url)
        page.wait_for_timeout(800)
        shown = _pixel(page, CX, CY)
        assert shown[1] < 95, f"the red mask is drawn over the disc ({shown})"
        page.locator(f".st-key-ann_vis_{saved.id}").get_by_text("show").click()
        wait_idle(page)
        colour = shown
        for _ in range(20):                  # the canvas's new background arrives within a moment
            page.wait_for_timeout(250)
            colour = _pixel(page, CX, CY)
            if colour[1] > 100:
                break
        assert colour[1] > 100, f"the mask is hidden after the one click ({colour})"


def test_complete_and_next_keeps_the_task_queue(tmp_path):
    from endolite.benchmark import service as bench
    from endolite.records import Role
    from tests.support import make_user

    data_dir, settings, group, _ = _project(tmp_path, n=3)
    con = connect(settings)
    frames = media.frames_of(con, group_id=group.id)
    make_user(con, "gold", Role.LEAD, "gold-password")
    bench.create_benchmark(con, name="weekly", gold="gold", annotators=[ANNOTATOR], labels=["polyp"],
                           frame_ids=[f.id for f in frames], created_by="gold")
    con.close()
    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        _open_annotate(page, url)
        page.get_by_text("My benchmark tasks (3)").click()
        wait_idle(page)
        page.get_by_text("1 / 3").wait_for()
        page.get_by_role("button", name="Complete and next").click()
        wait_idle(page)
        page.get_by_text("1 / 2").wait_for()
        page.get_by_text(f"(id {frames[1].id})").wait_for()
        # still the queue (2 tasks left), not 'A sequence' at frame 1 of 3
        page.get_by_text("My benchmark tasks (2)").wait_for()
        assert page.get_by_text("/ 3").count() == 0
        _press(page, "m")                       # the hotkey does the same
        page.get_by_text("1 / 1").wait_for()
        page.get_by_text(f"(id {frames[2].id})").wait_for()


def test_hotkeys_choose_tools_and_move_between_frames(tmp_path):
    data_dir, settings, group, _ = _project(tmp_path, n=3)
    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        _open_annotate(page, url)
        checked = "button[role=radio][aria-checked=true]"
        for key, tool in [("b", "box"), ("g", "polygon"), ("d", "brush"), ("e", "eraser"),
                          ("n", "− point"), ("p", "+ point")]:
            _press(page, key)
            page.locator(checked, has_text=tool).wait_for()
        _press(page, "k")
        page.get_by_text("2 / 3").wait_for()
        _press(page, "k")
        page.get_by_text("3 / 3").wait_for()
        _press(page, "j")
        page.get_by_text("2 / 3").wait_for()
        page.get_by_text("Hotkeys", exact=True).click()       # the help panel names them
        page.get_by_text("next unlabelled frame").wait_for()


def test_a_click_on_a_zoomed_view_lands_on_the_right_frame_pixel(tmp_path):
    data_dir, settings, group, truth = _project(tmp_path)
    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        _open_annotate(page, url)
        page.locator(".st-key-ann_zoom_in button").first.click()        # 2x about the centre (160, 120)
        wait_idle(page)
        page.get_by_text("Zoom 2×").wait_for()
        page.wait_for_timeout(800)
        box = _canvas_box(page)
        # the view shows x 80..240, y 60..180 of the 320x240 frame on the whole canvas
        sx = box["x"] + (CX - 80) / 160 * box["width"]
        sy = box["y"] + (CY - 60) / 120 * box["height"]
        page.mouse.click(sx, sy)
        page.get_by_text("1 positive, 0 negative clicks").wait_for()
        page.get_by_role("button", name="Accept mask").click()
        page.get_by_text("Masks on this frame (1)").wait_for()
        wait_idle(page)
        page.screenshot(path=str(tmp_path / "zoomed.png"), full_page=True)

    con = connect(settings)
    [frame] = media.frames_of(con, group_id=group.id)
    [mask] = annotations.masks_of(con, frame_ids=[frame.id])
    con.close()
    x, y, sign = mask.prompt["points"][0]
    assert sign == 1 and abs(x - CX) < 1.5 and abs(y - CY) < 1.5, (x, y)
    got = annotate.load_mask(mask)
    assert (got & truth).sum() / (got | truth).sum() > 0.8, "the whole disc, not only the view"
    assert np.asarray(got).shape == (FRAME_H, FRAME_W)


def test_unsaved_clicks_survive_a_zoom(tmp_path):
    """A + click made on the whole frame is still there (in frame pixels) after zooming in."""
    data_dir, settings, group, truth = _project(tmp_path)
    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        _open_annotate(page, url)
        box = _canvas_box(page)
        page.mouse.click(box["x"] + CX / FRAME_W * box["width"], box["y"] + CY / FRAME_H * box["height"])
        page.get_by_text("1 positive, 0 negative clicks").wait_for()
        wait_idle(page)
        _press(page, "i")                               # zoom in by hotkey
        page.get_by_text("Zoom 2×").wait_for()
        page.wait_for_timeout(1000)
        wait_idle(page)
        page.get_by_text("1 positive, 0 negative clicks").wait_for()
        page.get_by_role("button", name="Accept mask").click()
        page.get_by_text("Masks on this frame (1)").wait_for()

    con = connect(settings)
    [frame] = media.frames_of(con, group_id=group.id)
    [mask] = annotations.masks_of(con, frame_ids=[frame.id])
    con.close()
    [(x, y, sign)] = mask.prompt["points"]
    assert sign == 1 and abs(x - CX) < 1.5 and abs(y - CY) < 1.5, (x, y)


def test_the_mouse_wheel_zooms_about_the_pointer(tmp_path):
    data_dir, settings, group, truth = _project(tmp_path)
    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        _open_annotate(page, url)
        box = _canvas_box(page)
        page.mouse.move(box["x"] + CX / FRAME_W * box["width"], box["y"] + CY / FRAME_H * box["height"])
        page.mouse.wheel(0, -120)                             # up: zoom in about the disc
        page.get_by_text("Zoom 2×").wait_for()
        wait_idle(page)
        # the disc's centre (200, 90) stays under the pointer: the view starts at 200 - 200/2 = 100
        page.get_by_text("x 100–260, y 45–165 of 320×240").wait_for()
        assert page.evaluate("() => window.scrollY") == 0, "the wheel zooms instead of scrolling"
        page.wait_for_timeout(400)
        page.mouse.wheel(0, 120)                              # down: back out
        page.get_by_text("Zoom 1×").wait_for()
