"""In Chromium against the real server: hostile upload names stay inside data/, HTML in label
names displays as typed, logging out ends the session for the next user of the tab, and the
toolbar offers no Deploy button."""

from __future__ import annotations

import io
import re
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from endolite import annotate
from endolite.records import LabelKind, Role
from endolite.storage import audit, connect, labels, media
from endolite.synthetic import disc_mask
from tests.e2e_support import (ANNOTATOR, ANNOTATOR_PASSWORD, FRAME_H, FRAME_W, annotation_project,
                                browser_page, canvas_point, dataframe_rows, disc_frame, log_in,
                                log_out, pick_tool, running_dashboard, wait_idle)
from tests.support import ROOT, make_user

pytestmark = pytest.mark.e2e
LEAD, LEAD_PASSWORD = "lena", "lead-pass-1"
HOSTILE = ("<img src=x onerror=window.__pwned=1>", "<b>html</b>")


def _project(tmp_path):
    """annotation_project plus the lead lena, and masks by gina labelled with HTML-ish names."""
    data_dir, settings, group = annotation_project(tmp_path, disc_frame(tmp_path)[0])
    con = connect(settings)
    try:
        make_user(con, LEAD, Role.LEAD, LEAD_PASSWORD)
        [frame] = media.frames_of(con, group_id=group.id)
        for i, name in enumerate(HOSTILE):
            labels.add(con, name, kind=LabelKind.OTHER)
            annotate.save_mask(con, settings, annotate.NewMask(
                frame.id, disc_mask(FRAME_H, FRAME_W, 40 + 60 * i, 200, 15)), label=name,
                annotator="gina")
    finally:
        con.close()
    return data_dir, settings


def _png(seed: int) -> bytes:
    out = io.BytesIO()
    rgb = np.random.default_rng(seed).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(out, format="png")
    return out.getvalue()


def test_upload_names_cannot_escape_the_data_folder(tmp_path):
    from playwright.sync_api import expect

    uid = uuid.uuid4().hex[:10]
    sent = {f"../../../escape_{uid}.png": f"escape_{uid}.png",
            f"/tmp/abs_escape_{uid}.png": f"abs_escape_{uid}.png",
            f"..\\..\\win_{uid}.png": f"win_{uid}.png"}
    data_dir, settings = _project(tmp_path)
    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        log_in(page, url, ANNOTATOR, ANNOTATOR_PASSWORD)
        page.get_by_role("link", name="Upload").click()
        page.get_by_role("heading", name="Upload").wait_for()
        page.locator(".st-key-upload_files input[type=file]").set_input_files(
            [{"name": name, "mimeType": "image/png", "buffer": _png(i)} for i, name in enumerate(sent)])
        expect(page.get_by_text(re.compile(uid[-4:] + r"\.png$"))).to_have_count(3)  # names cut
        wait_idle(page)
        page.get_by_role("button", name="Import").click()
        page.get_by_text("Imported 3 of 3").wait_for()

    staging = settings.tmp_dir
    for base in sent.values():
        for folder in [staging, *staging.parents, ROOT, Path.cwd()]:
            assert not (folder / base).exists(), f"{folder / base} written outside data/"
    assert not Path(f"/tmp/abs_escape_{uid}.png").exists()
    named = [p for p in tmp_path.rglob("*") if uid in p.name or "\\" in p.name]
    assert {p.name for p in named} == set(sent.values()), "only the safe base names were used"
    assert all(p.parent.parent == settings.data_dir / "frames" for p in named), named
    assert not list(staging.glob("upload-*")), "the staging folders are removed again"
    con = connect(settings)
    names = {f.original_name for g in media.list_groups(con) for f in media.frames_of(con, group_id=g.id)}
    con.close()
    assert set(sent.values()) <= names, "imported under their safe base names"


def test_html_in_label_names_displays_as_typed(tmp_path):
    data_dir, _ = _project(tmp_path)
    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        log_in(page, url, ANNOTATOR, ANNOTATOR_PASSWORD)
        page.get_by_role("link", name="Annotate").click()
        page.get_by_text("Masks on this frame (2)").wait_for()
        wait_idle(page)
        for name in HOSTILE:                     # the mask list (markdown with HTML allowed)
            page.get_by_text(name).first.wait_for()
        assert page.evaluate("""() => ({
            bold: [...document.querySelectorAll('b')].filter(e => e.textContent.trim() === 'html').length,
            img: document.querySelectorAll('img[src="x"], img[onerror]').length,
            pwned: typeof window.__pwned})""") == {"bold": 0, "img": 0, "pwned": "undefined"}
        body = page.locator("[data-testid='stMain']").inner_text()
        assert all(name in body for name in HOSTILE)


def test_logout_leaves_nothing_for_the_next_user_of_the_tab(tmp_path):
    data_dir, settings = _project(tmp_path)
    undo = re.compile(r"^Undo \(")                  # the page's button, not the canvas's own
    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        log_in(page, url, ANNOTATOR, ANNOTATOR_PASSWORD)
        page.get_by_role("link", name="Annotate").click()
        page.locator("canvas.upper-canvas").first.wait_for()
        wait_idle(page)
        page.mouse.click(*canvas_point(page, 200, 90, FRAME_W, FRAME_H))     # + on the disc
        page.get_by_role("button", name="Accept mask").click()
        page.get_by_text("Masks on this frame (3)").wait_for()
        page.get_by_role("button", name=undo).wait_for()                      # ann may undo it
        pick_tool(page, "box")                                                # ann's widget state

        log_out(page)
        log_in(page, None, LEAD, LEAD_PASSWORD)                               # same tab, no reload
        page.get_by_role("link", name="Annotate").click()
        page.get_by_text("Masks on this frame (3)").wait_for()
        wait_idle(page)
        assert page.get_by_role("button", name=undo).count() == 0, "ann's undo is not lena's"
        active = page.locator("button[role=radio][aria-checked=true]").inner_text()
        assert "+ point" in active, "the tool ann chose went with her session"

        page.get_by_role("link", name="Audit log").click()
        page.get_by_role("heading", name="Audit log").wait_for()
        wait_idle(page)
        shown = {(r["action"], r["username"]) for r in dataframe_rows(page, "username")}
    assert {("login", "ann"), ("mask.create", "ann"), ("logout", "ann"), ("login", "lena")} <= shown
    con = connect(settings)
    made = audit.search(con, action="mask.create")
    con.close()
    assert [e.username for e in made] == ["ann"]


def test_toolbar_has_no_deploy_button(tmp_path):
    """``endolite serve`` runs Streamlit with --client.toolbarMode minimal (in developer mode
    the header would carry stToolbar > stAppDeployButton)."""
    with running_dashboard(tmp_path / "data", tmp_path / "server.log") as url, \
            browser_page(tmp_path) as page:
        page.goto(url)
        page.get_by_text("Welcome to endolite").wait_for()
        wait_idle(page)
        page.locator("[data-testid='stHeader']").wait_for(state="attached")
        assert page.get_by_role("button", name="Deploy").count() == 0
        assert page.locator("[data-testid='stAppDeployButton']").count() == 0
