"""In Chromium: first-admin setup, log in, upload a video, extract frames, see the thumbnails."""

from __future__ import annotations

import pytest

from endolite.synthetic import write_disc_video
from tests.e2e_support import browser_page, running_dashboard, wait_idle

pytestmark = pytest.mark.e2e


def test_setup_upload_extract_shows_thumbnails(tmp_path):
    data = tmp_path / "data"
    video = write_disc_video(tmp_path / "procedure.mp4", 120, gop=30)
    with running_dashboard(data, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        page.goto(url)
        page.get_by_text("Welcome to endolite").wait_for()
        code = (data / "setup_code.txt").read_text().strip()
        assert code in (tmp_path / "server.log").read_text(), "the code is printed to the console"
        page.get_by_label("Setup code").fill(code)
        page.get_by_label("Administrator name").fill("ada")
        page.get_by_label("Password", exact=True).fill("correct horse")
        page.get_by_role("button", name="Create administrator").click()
        page.get_by_role("heading", name="Library").wait_for()
        wait_idle(page)

        page.get_by_role("link", name="Upload").click()
        page.get_by_role("heading", name="Upload").wait_for()
        page.locator(".st-key-upload_files input[type=file]").set_input_files(str(video))
        page.get_by_text("procedure.mp4").first.wait_for()
        wait_idle(page)                   # the upload's rerun ends before Import is pressed
        page.get_by_role("button", name="Import").click()
        page.get_by_text("Imported 1 of 1").wait_for()

        page.get_by_role("link", name="Extract frames").click()
        page.get_by_role("heading", name="Extract frames").wait_for()
        page.get_by_role("button", name="Extract").click()
        page.get_by_text("proceed to annotation").wait_for()
        wait_idle(page)
        thumbs = page.locator("[data-testid='stImage'] img")
        thumbs.nth(19).wait_for()              # the grid renders after the message
        assert thumbs.count() == 20
        page.screenshot(path=str(tmp_path / "extracted.png"), full_page=True)
