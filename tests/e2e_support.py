"""Helpers for browser tests: run the real dashboard on a free port, drive Debian's Chromium."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_dashboard(data_dir: Path, log_path: Path):
    """Start ``endolite serve`` on 127.0.0.1:<free port>; yield its base URL; stop it after."""
    with dashboard_process(data_dir, log_path) as (url, _proc):
        yield url


@contextlib.contextmanager
def dashboard_process(data_dir: Path, log_path: Path):
    """``running_dashboard`` that yields ``(base URL, Popen)``: ``endolite serve`` execs
    Streamlit, so the Popen's pid is the server itself (a test may SIGKILL it; stopping after
    then only ends what is left of its process group)."""
    port = free_port()
    env = dict(os.environ, ENDOLITE_DATA=str(data_dir), PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "endolite.cli", "--data", str(data_dir), "serve",
             "--port", str(port), "--address", "127.0.0.1"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"dashboard exited: {log_path.read_text()[-2000:]}")
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    time.sleep(0.5)
            else:
                raise RuntimeError("dashboard did not start within 90 s")
            yield url, proc
        finally:
            with contextlib.suppress(ProcessLookupError):    # the group is gone after a kill
                os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


@contextlib.contextmanager
def browser_page(tmp_path: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 1400})
        page = context.new_page()
        page.set_default_timeout(60_000)
        try:
            yield page
        except BaseException:
            with contextlib.suppress(Exception):
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()


def wait_idle(page, timeout: float = 120_000) -> None:
    """Wait until Streamlit has finished the current script run.

    The app root's ``data-test-script-state`` says so as soon as a rerun is requested (the
    'Running...' widget only shows after half a second, so short runs never show it); the short
    pause first lets a click's rerun request reach the frontend."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState"
        " === 'notRunning'", timeout=timeout)


def dataframe_rows(page, has_text: str) -> list[dict[str, str]]:
    """The rows of the st.dataframe whose text includes ``has_text`` (a column name does), as
    dicts keyed by column name (read from the grid's accessible table)."""
    grid = page.locator("[data-testid='stDataFrame']").filter(has_text=has_text)
    grid.locator("tr").nth(1).wait_for(state="attached")
    rows = [[c.strip() for c in row.locator("th, td").all_text_contents()]
            for row in grid.locator("tr").all()]
    return [dict(zip(rows[0], r)) for r in rows[1:]]


def log_in(page, url: str | None, name: str, password: str) -> None:
    """Open the dashboard (``url``; None: stay in this tab's session, e.g. after log_out) and
    sign in through the login form; waits until the sidebar names the user (and for the Library
    page when ``url`` is given).  With ``url`` the browser's session cookie goes first, so the
    form shows even where an earlier login (before a server restart) would resume."""
    if url is not None:
        page.context.clear_cookies(name="endolite_session")     # endolite.auth.SESSION_COOKIE
        page.goto(url)
    page.get_by_text("log in").first.wait_for()
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_text(f"Signed in as {name} (").wait_for()
    if url is not None:
        page.get_by_role("heading", name="Library").wait_for()


def log_out(page) -> None:
    """The sidebar's Log out button; waits for the login form of the same tab."""
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Log in").wait_for()
    wait_idle(page)


def pick_tool(page, name: str) -> None:
    """Choose annotation tool ``name`` and wait for the rerun that hands the canvas its new mode
    (the tool shows as active once the click has requested that rerun; a new kind of tool gets a
    new canvas, mounted a moment after the run ends)."""
    page.get_by_text(name, exact=True).click()
    page.locator("button[role=radio][aria-checked=true]", has_text=name).wait_for()
    wait_idle(page)
    page.locator("canvas.upper-canvas").first.wait_for()
    page.wait_for_timeout(500)


def canvas_point(page, x: float, y: float, width: int, height: int) -> tuple[float, float]:
    """Screen position of image pixel (x, y) on the annotation page's Fabric.js canvas, for a
    frame of ``width`` x ``height`` pixels (the page scales frames to fit)."""
    canvas = page.locator("canvas.upper-canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    return box["x"] + x * box["width"] / width, box["y"] + y * box["height"] / height


ANNOTATOR, ANNOTATOR_PASSWORD = "ann", "annotator-pw"
FRAME_H, FRAME_W = 240, 320      # H != W: a transposed coordinate would miss the disc
DISC = (200, 90, 45)             # (x, y, radius) of disc_frame's disc, in image pixels


def disc_frame(tmp_path: Path):
    """A folder ``tmp_path/frames`` with one noisy 320x240 PNG, ``polyp01.png``, showing a
    reddish disc at DISC; returns ``(folder, the disc's true mask)``."""
    import numpy as np

    from endolite.media import write_image_atomic
    from endolite.synthetic import disc_mask

    rng = np.random.default_rng(3)
    image = (np.full((FRAME_H, FRAME_W, 3), 40, dtype=np.uint8)
             + rng.integers(0, 20, (FRAME_H, FRAME_W, 3), dtype=np.uint8))
    truth = disc_mask(FRAME_H, FRAME_W, *DISC)
    image[truth] = (210, 120, 110)
    folder = tmp_path / "frames"
    folder.mkdir()
    write_image_atomic(folder / "polyp01.png", image, fmt="png")
    return folder, truth


def annotation_project(tmp_path: Path, folder: Path):
    """A fresh data dir (``tmp_path/data``) with the annotator ``ann`` (``annotator-pw``), the
    pathology label ``polyp`` (red) and the images of ``folder`` ingested as one group by ann.
    Returns ``(data_dir, settings, group)``; the connection is closed again (the dashboard
    opens the file)."""
    from endolite.config import Settings
    from endolite.ingest import ingest_paths
    from endolite.records import LabelKind, Role
    from endolite.storage import connect, labels
    from tests.support import make_user

    data_dir = tmp_path / "data"
    settings = Settings.resolve(data_dir)
    con = connect(settings)
    try:
        make_user(con, ANNOTATOR, Role.ANNOTATOR, ANNOTATOR_PASSWORD)
        labels.add(con, "polyp", kind=LabelKind.PATHOLOGY, color="#ff0000")
        [group] = ingest_paths(con, settings, [folder], user=ANNOTATOR)
    finally:
        con.close()
    return data_dir, settings, group
