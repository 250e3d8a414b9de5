"""Export page (AppTest): a lead writes a zip of a validated video and downloads it; a video not
validated cannot be picked; a refused export says why; annotators cannot open the page."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.support import make_user  # noqa: I001
from endolite.export import tickets
from endolite.extract import extract_frames
from endolite.frame_labels import set_frame_labels
from endolite.ingest import ingest_paths
from endolite.records import Presence, Role
from endolite.storage import connect, labels
from endolite.synthetic import write_disc_video
from tests.export_support import mark_anonymized

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def setup(app_env, tmp_path):
    con = connect(app_env)
    ids = []
    labels.add(con, "polyp")
    for n in (0, 1):
        vid = ingest_paths(con, app_env, [write_disc_video(tmp_path / f"{n}.mp4", 12, seed=n)],
                           user="t")[0].id
        (fr, *_) = extract_frames(con, app_env, vid, method="uniform", count=2, context=0).picked
        set_frame_labels(con, fr.id, [("polyp", Presence.PRESENT, None)], annotator="ann")
        ids.append(vid)
    mark_anonymized(con, app_env, video_id=ids[0])
    lead = make_user(con, "lena", Role.LEAD)
    ann = make_user(con, "ann", Role.ANNOTATOR)
    return con, ids, lead, ann


def _page(user) -> AppTest:
    at = AppTest.from_file(str(ROOT / "views/export.py"), default_timeout=90)
    at.session_state["user_id"] = user.id
    return at


def test_lead_writes_a_zip_of_a_validated_video_and_gets_a_download_button(setup, app_env):
    con, ids, lead, _ = setup
    at = _page(lead).run()
    assert not at.exception
    media = at.multiselect(key="export_media")
    assert [o for o in media.options if o.startswith("video")] == [f"video {ids[0]}: 0 (validated)"]
    media.select(media.options[0])
    at.checkbox(key="export_frames").check()
    next(b for b in at.button if b.label == "Write export").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Export 1 written" in s.value for s in at.success)
    # the download is a link to web.py's route, streaming the file its ticket names
    (link,) = [m.value for m in at.markdown if "download/export/" in m.value]
    token = link.split('href="download/export/', 1)[1].split('"', 1)[0]
    ticket = tickets.resolve(token)
    (written,) = list(app_env.exports_dir.glob("*.zip"))
    assert ticket is not None and ticket.path == written and ticket.user == "lena"
    with zipfile.ZipFile(written) as zf:
        names = zf.namelist()
    assert "annotations.csv" in names and any(n.startswith(f"frames/video_{ids[0]}/") for n in names)


def test_the_raw_video_is_listed_as_not_exportable(setup):
    con, ids, lead, _ = setup
    at = _page(lead).run()
    text = " ".join(m.value for m in at.markdown)
    assert f"video {ids[1]}" in text.replace("\\", "") and "raw" in text


def test_a_refused_export_says_why(setup):
    con, ids, lead, _ = setup
    at = _page(lead).run()
    at.multiselect(key="export_media").select(at.multiselect(key="export_media").options[0])
    at.radio(key="export_only").set_value("false")
    next(b for b in at.button if b.label == "Write export").click().run()
    assert any("no annotation rows" in e.value for e in at.error)


def test_annotators_cannot_open_the_page(setup):
    con, ids, _, ann = setup
    at = _page(ann).run()
    assert any("This page is for" in e.value for e in at.error)
