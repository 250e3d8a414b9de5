"""In Chromium: labels added one after another on the Labels page, the colour picker left
alone, get different palette colours (issue #11: every label came out #e6194b, because the
picker kept its first value while only its default moved on)."""

from __future__ import annotations

import pytest

from endolite.config import Settings
from endolite.records import Role
from endolite.storage import connect, labels
from tests.e2e_support import browser_page, log_in, running_dashboard, wait_idle
from tests.support import make_user

pytestmark = pytest.mark.e2e


def test_two_labels_added_in_a_row_get_different_colours(tmp_path):
    data_dir = tmp_path / "data"
    settings = Settings.resolve(data_dir)
    con = connect(settings)
    make_user(con, "lena", Role.LEAD, "lead-password-1")
    con.close()
    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        log_in(page, url, "lena", "lead-password-1")
        page.get_by_role("link", name="Labels", exact=True).click()
        page.get_by_role("heading", name="Labels").wait_for()
        wait_idle(page)
        for name in ("polyp", "instrument"):
            page.get_by_label("Name", exact=True).fill(name)
            page.get_by_role("button", name="Add label").click()
            wait_idle(page)
            page.locator("[data-testid='stDataFrame']").filter(has_text="color").wait_for()
        page.get_by_text("No labels yet").wait_for(state="detached")
    con = connect(settings)
    try:
        colours = {n: labels.get_by_name(con, n).color for n in ("polyp", "instrument")}
    finally:
        con.close()
    assert colours["polyp"] != colours["instrument"], colours
    assert colours == {"polyp": "#e6194b", "instrument": "#3cb44b"}, colours
