"""In Chromium: the Annotate canvas fitted to the window (issue 11: "the canvas sized to the
available width, not a fixed 640 px"; the whole frame visible without scrolling at 1366x768 and
up), a canvas-size preset overriding the fit, and panning the zoomed view by hotkeys."""

from __future__ import annotations

import pytest

from tests.e2e_support import (ANNOTATOR, ANNOTATOR_PASSWORD, FRAME_H, FRAME_W, browser_page,
                                disc_frame, log_in, running_dashboard, wait_idle)
from tests.e2e_support import annotation_project

pytestmark = pytest.mark.e2e


def _open_annotate(page, url: str) -> None:
    log_in(page, url, ANNOTATOR, ANNOTATOR_PASSWORD)
    page.get_by_role("link", name="Annotate").click()
    page.get_by_role("heading", name="Annotate").wait_for()
    page.locator("canvas.upper-canvas").first.wait_for()
    _settled(page)


def _settled(page) -> None:
    """Wait until the page has laid the canvas out for the window's current geometry."""
    page.wait_for_function("() => document.documentElement.dataset.endoliteFit === 'fitted'")
    wait_idle(page)
    page.locator("canvas.upper-canvas").first.wait_for()


def _canvas_box(page) -> dict:
    return page.locator("canvas.upper-canvas").first.bounding_box()


def _resized(page, width: int, height: int, before: dict) -> dict:
    """Resize the window and return the canvas's box once it has been redrawn for it."""
    page.set_viewport_size({"width": width, "height": height})
    for _ in range(60):
        page.wait_for_timeout(250)
        box = _canvas_box(page)
        if box is not None and abs(box["width"] - before["width"]) > 2:
            break
    _settled(page)
    return _canvas_box(page)


def _choose_size(page, option: str) -> None:
    """Pick ``option`` in the View expander's "Canvas size" box (again if a rerun closed the
    list before the click) and wait for the run it starts."""
    for _ in range(3):
        page.locator(".st-key-ann_canvas_box input").click()
        item = page.get_by_role("option", name=option)
        try:
            item.wait_for(timeout=5000)
        except Exception:  # noqa: BLE001 - the list closed under a rerun: open it again
            wait_idle(page)
            continue
        item.click()
        break
    wait_idle(page)
    page.wait_for_timeout(500)


def _inside(box: dict, width: int, height: int) -> bool:
    return box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= width \
        and box["y"] + box["height"] <= height


def test_the_canvas_fits_the_window_at_1366x768_and_at_1920x1080(tmp_path):
    folder, _ = disc_frame(tmp_path)
    data_dir, settings, group = annotation_project(tmp_path, folder)
    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        page.set_viewport_size({"width": 1366, "height": 768})
        _open_annotate(page, url)
        page.screenshot(path=str(tmp_path / "fit-1366x768.png"))
        small = _canvas_box(page)
        small_scroll = page.evaluate("() => [window.scrollX, window.scrollY]")
        # scrolling the page down (to the mask list) is no new geometry: no redraw
        page.locator("[data-testid='stMain']").evaluate("el => el.scrollTop = 300")
        page.wait_for_timeout(1500)
        wait_idle(page)
        page.locator("[data-testid='stMain']").evaluate("el => el.scrollTop = 0")
        page.wait_for_timeout(500)
        assert _canvas_box(page) == small, "scrolling changed the canvas"
        large = _resized(page, 1920, 1080, small)
        page.screenshot(path=str(tmp_path / "fit-1920x1080.png"))
        large_scroll = page.evaluate("() => [window.scrollX, window.scrollY]")
        # the column beside the canvas keeps its controls (nothing cut off on the right)
        side = page.get_by_role("button", name="Clear prompt").bounding_box()

    assert small_scroll == [0, 0] and large_scroll == [0, 0]
    assert _inside(small, 1366, 768), f"the canvas {small} is not wholly inside 1366x768"
    assert _inside(large, 1920, 1080), f"the canvas {large} is not wholly inside 1920x1080"
    assert large["width"] > small["width"] + 300, (small, large)
    assert small["width"] >= 560, "at 1366 px the frame fills the column, not a thumbnail"
    for box in (small, large):                       # the frame's 4:3 aspect is kept
        assert abs(box["width"] / box["height"] - FRAME_W / FRAME_H) < 0.02, box
    assert side["x"] >= large["x"] + large["width"] and side["x"] + side["width"] <= 1920


def test_a_size_preset_overrides_the_fit_and_auto_comes_back(tmp_path):
    folder, _ = disc_frame(tmp_path)
    data_dir, settings, group = annotation_project(tmp_path, folder)
    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        page.set_viewport_size({"width": 1920, "height": 1080})
        _open_annotate(page, url)
        fitted = _canvas_box(page)
        page.get_by_text("View", exact=True).click()
        wait_idle(page)
        _choose_size(page, "560 × 420")
        preset = _canvas_box(page)
        _choose_size(page, "Auto (fit the window)")
        back = _canvas_box(page)
    assert (round(preset["width"]), round(preset["height"])) == (560, 420)
    assert round(back["width"]) == round(fitted["width"]) > 560


def test_shift_and_the_arrow_keys_pan_the_zoomed_view(tmp_path):
    folder, _ = disc_frame(tmp_path)
    data_dir, settings, group = annotation_project(tmp_path, folder)
    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        page.set_viewport_size({"width": 1366, "height": 768})
        _open_annotate(page, url)

        def press(key: str) -> None:
            page.get_by_role("heading", name="Annotate").click()      # focus on the page
            page.keyboard.press(key)
            wait_idle(page)

        press("i")                                    # 2x about the centre: x 80-240, y 60-180
        page.get_by_text("x 80–240, y 60–180 of 320×240").wait_for()
        press("Shift+ArrowRight")                     # half a view (80 px) right
        page.get_by_text("x 160–320, y 60–180 of 320×240").wait_for()
        press("Shift+ArrowDown")                      # half a view (60 px) down
        page.get_by_text("x 160–320, y 120–240 of 320×240").wait_for()
        press("Shift+ArrowLeft")
        page.get_by_text("x 80–240, y 120–240 of 320×240").wait_for()
        press("Shift+ArrowUp")
        page.get_by_text("x 80–240, y 60–180 of 320×240").wait_for()
        page.screenshot(path=str(tmp_path / "panned.png"))
        page.get_by_text("Hotkeys", exact=True).click()       # the help panel names them
        page.get_by_text("pan the zoomed view by half a view").wait_for()
