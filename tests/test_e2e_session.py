"""A reload keeps the signed-in user (Chromium against ``endolite serve``): the session cookie
is HttpOnly and SameSite=Strict; a reload lands on the same page, still signed in; after logout
a reload shows the login form and a copy of the old cookie signs nobody in; before login the
sidebar names no pages (not even on a page's deep link)."""

from __future__ import annotations

import pytest

from endolite import auth
from endolite.config import Settings
from endolite.records import Role
from endolite.storage import connect
from tests.e2e_support import browser_page, log_in, log_out, running_dashboard, wait_idle
from tests.support import make_user

pytestmark = pytest.mark.e2e
NAME, PASSWORD = "lena", "lead-password"
PAGE_NAMES = ["Library", "Upload", "Annotate", "Labels", "Export", "Audit log", "Users"]


def _session_cookie(page, *, present: bool = True) -> dict | None:
    """The browser's session cookie, waiting (up to 10 s) until it is there (or gone)."""
    for _ in range(100):
        found = [c for c in page.context.cookies() if c["name"] == auth.SESSION_COOKIE]
        if bool(found) == present:
            return found[0] if found else None
        page.wait_for_timeout(100)
    raise AssertionError(f"session cookie {'never set' if present else 'never cleared'}")


def _login_form_without_pages(page) -> None:
    page.get_by_role("button", name="Log in").wait_for()
    wait_idle(page)
    assert page.locator("[data-testid=stSidebarNav]").count() == 0
    assert page.get_by_text("Signed in as").count() == 0
    for name in PAGE_NAMES:
        assert page.get_by_role("link", name=name, exact=True).count() == 0, name


def test_reload_keeps_the_session_and_logout_ends_it(tmp_path):
    settings = Settings.resolve(tmp_path / "data")
    con = connect(settings)
    try:
        make_user(con, NAME, Role.LEAD, PASSWORD)
    finally:
        con.close()

    with running_dashboard(settings.data_dir, tmp_path / "server.log") as url, \
            browser_page(tmp_path) as page:
        page.goto(url)
        _login_form_without_pages(page)
        page.goto(f"{url}/audit")                       # a deep link before login: the form
        _login_form_without_pages(page)

        log_in(page, url, NAME, PASSWORD)
        cookie = _session_cookie(page)
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
        assert PASSWORD not in cookie["value"]
        assert page.evaluate("document.cookie").find(auth.SESSION_COOKIE) < 0, "hidden from JS"

        wait_idle(page)
        page.get_by_role("link", name="Labels", exact=True).click()
        page.get_by_role("heading", name="Labels").wait_for()
        wait_idle(page)
        address = page.url
        page.reload()                                             # F5
        page.get_by_text(f"Signed in as {NAME} (").wait_for()
        page.get_by_role("heading", name="Labels").wait_for()
        assert page.url == address
        assert page.get_by_role("button", name="Log in").count() == 0

        wait_idle(page)
        log_out(page)
        _session_cookie(page, present=False)
        page.reload()
        _login_form_without_pages(page)

        page.context.add_cookies([{k: cookie[k] for k in ("name", "value", "domain", "path",
                                                          "httpOnly", "sameSite", "expires")}])
        page.reload()                                   # the copied cookie of the ended session
        _login_form_without_pages(page)
        _session_cookie(page, present=False)            # ... which the page asks to drop
        page.get_by_text("Your previous session has ended").wait_for()

    con = connect(settings, read_only=True)
    try:
        log = con.execute("SELECT action, details FROM audit_log ORDER BY id").fetchall()
        revoked = con.execute("SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL "
                              "AND revoked_why = 'logout'").fetchone()[0]
    finally:
        con.close()
    names = [a for a, _d in log]
    assert names.count("login") == 1 and names.count("session.resume") == 1, names
    assert names.index("login") < names.index("session.resume") < names.index("logout")
    assert any(a == "session.rejected" and "revoked (logout)" in d for a, d in log), log
    assert revoked == 1


def test_a_server_restart_keeps_the_session(tmp_path):
    settings = Settings.resolve(tmp_path / "data")
    con = connect(settings)
    try:
        make_user(con, NAME, Role.LEAD, PASSWORD)
    finally:
        con.close()
    with browser_page(tmp_path) as page:
        with running_dashboard(settings.data_dir, tmp_path / "server1.log") as url:
            log_in(page, url, NAME, PASSWORD)
            _session_cookie(page)
        with running_dashboard(settings.data_dir, tmp_path / "server2.log") as url:
            page.goto(f"{url}/labels")                  # cookies are per host, not per port
            page.get_by_text(f"Signed in as {NAME} (").wait_for()
            page.get_by_role("heading", name="Labels").wait_for()
