"""In Chromium: the Frame labels page's timeline jumps to the clicked frame; a segment marked
while scrubbing (Mark start, click further on, Mark end) is stored and drawn; on the Annotate
page a propagation's done message stays after the job's rerun and a second run leaves one
propagated mask per frame.  Checked in the database afterwards."""

from __future__ import annotations

import re

import pytest

from endolite.storage import annotations, connect, media
from tests.e2e_support import browser_page, log_in, running_dashboard, wait_idle

pytestmark = pytest.mark.e2e
N = 40


def _video_project(tmp_path):
    from endolite import annotate
    from endolite.config import Settings
    from endolite.extract import extract_frames
    from endolite.ingest import ingest_paths
    from endolite.records import LabelKind, Role
    from endolite.storage import labels
    from endolite.synthetic import moving_disc_frames, write_disc_video
    from tests.support import make_user

    data_dir = tmp_path / "data"
    settings = Settings.resolve(data_dir)
    con = connect(settings)
    try:
        make_user(con, "ann", Role.ANNOTATOR, "annotator-pw")
        labels.add(con, "polyp", kind=LabelKind.PATHOLOGY, color="#ff0000")
        [video] = ingest_paths(con, settings, [write_disc_video(tmp_path / "v.mp4", N, gop=10)], user="ann")
        extract_frames(con, settings, video.id, method="uniform", count=N, context=0)
        frames = media.frames_of(con, video_id=video.id)
        truth = [m for _, m in moving_disc_frames(N)]
        source = annotate.save_mask(con, settings, annotate.NewMask(frames[0].id, truth[0]),
                                    label="polyp", annotator="ann")
    finally:
        con.close()
    return data_dir, settings, video.id, frames, source


def _click_frame(page, number: int) -> None:
    """Click the timeline's frames lane (its first trace: one point per frame here) at ``number``."""
    point = page.locator(".js-plotly-plot .scatterlayer .trace").first.locator("path.point").nth(number)
    point.scroll_into_view_if_needed()
    box = point.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    wait_idle(page)


def test_timeline_click_jumps_and_a_segment_is_marked_while_scrubbing(tmp_path):
    data_dir, settings, video_id, frames, _ = _video_project(tmp_path)
    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        log_in(page, url, "ann", "annotator-pw")
        page.get_by_role("link", name="Frame labels & segments").click()
        page.get_by_role("heading", name="Frame labels & segments").wait_for()
        page.locator(".js-plotly-plot").first.wait_for()
        wait_idle(page)
        page.get_by_text(f"1 / {N}").first.wait_for()
        _click_frame(page, 20)
        page.get_by_text(f"21 / {N}").first.wait_for()          # the navigator jumped to #20

        page.get_by_role("tab", name="Time segments").click()
        page.get_by_role("button", name="Mark start").click()
        page.get_by_text("Start marked at frame #20").wait_for()
        wait_idle(page)
        _click_frame(page, 25)                                    # scrub on by clicking
        page.get_by_text(f"26 / {N}").first.wait_for()           # still on the segments tab
        page.get_by_role("button", name="Mark end").click()
        page.get_by_text("frames [20, 26)").first.wait_for()
        wait_idle(page)
        page.locator(".js-plotly-plot .barlayer path").first.wait_for()   # the segment is drawn
        page.screenshot(path=str(tmp_path / "timeline.png"), full_page=True)

    con = connect(settings)
    [segment] = annotations.segments_of(con, video_id=video_id)
    assert (segment.start_frame, segment.end_frame, segment.label, segment.annotator) == (
        20, 26, "polyp", "ann")


def test_propagation_message_stays_and_a_second_run_leaves_one_mask_per_frame(tmp_path):
    data_dir, settings, video_id, frames, source = _video_project(tmp_path)
    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        log_in(page, url, "ann", "annotator-pw")
        page.get_by_role("link", name="Annotate").click()
        page.get_by_role("heading", name="Annotate").wait_for()
        page.locator("canvas.upper-canvas").first.wait_for()     # drawn once fitted to the window
        wait_idle(page)
        seen: list[str] = []
        for run in (1, 2):
            page.locator(f".st-key-ann_prop_{source.id} button").click()
            page.get_by_role("button", name="Start propagation").click()
            wait_idle(page)
            # this run's message (it names the time the job ended: not the earlier run's)
            done = page.get_by_text("Propagation done:").filter(
                has_not_text=seen[-1] if seen else "never shown").first
            done.wait_for(timeout=180_000)
            seen.append(done.inner_text())
            wait_idle(page)
            page.wait_for_timeout(2500)                      # polling fragments, reruns: it stays
            assert done.is_visible(), f"run {run}: the done message was wiped"
        assert seen[0] != seen[1]
    con = connect(settings)
    per_frame: dict[int, int] = {}
    for m in annotations.masks_of(con, video_id=video_id):
        if m.origin_mask_id == source.id:
            per_frame[m.frame_id] = per_frame.get(m.frame_id, 0) + 1
    assert per_frame and set(per_frame.values()) == {1}, per_frame


def test_the_thumbnail_strip_opens_its_frame(tmp_path):
    """Eight evenly spaced pictures above the lanes (frames 0, 6, 11, 17, 22, 28, 33, 39 of 40);
    a picture's button opens its frame; the toggle hides the strip."""
    data_dir, settings, video_id, frames, _ = _video_project(tmp_path)
    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        log_in(page, url, "ann", "annotator-pw")
        page.get_by_role("link", name="Frame labels & segments").click()
        page.get_by_role("heading", name="Frame labels & segments").wait_for()
        wait_idle(page)
        strip = page.get_by_role("button", name=re.compile(r"^(▸ )?#\d+$"))
        strip.nth(7).wait_for()
        assert [b.inner_text().replace("▸ ", "") for b in strip.all()] == [
            f"#{n}" for n in (0, 6, 11, 17, 22, 28, 33, 39)]
        shown = page.locator("[data-testid='stImage'] img")
        shown.nth(7).wait_for()                 # the pictures arrive a moment after the buttons
        assert shown.count() >= 8 and shown.first.evaluate("img => img.naturalWidth") > 0
        page.get_by_role("button", name="#28").click()
        wait_idle(page)
        page.get_by_text(f"29 / {N}").first.wait_for()               # the navigator jumped
        page.get_by_role("button", name="▸ #28").wait_for()          # and marks the picture
        page.screenshot(path=str(tmp_path / "thumbnails.png"), full_page=True)
        page.get_by_text("Thumbnails", exact=True).click()
        wait_idle(page)
        assert strip.count() == 0
