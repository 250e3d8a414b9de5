"""In Chromium: a lead anonymizes a video on the Anonymization page, looks at raw | anonymized,
validates it, then writes an lx-annotate export on the Export page, downloads the zip through
the page's link (streamed by web.py's route) and opens it.  Before validation the Export page
offers nothing to export.  The data (a synthetic video with text burnt in beside the image,
frames, frame labels, a lead) is prepared through the core before the dashboard starts."""

from __future__ import annotations

import csv
import io
import zipfile

import av
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from endolite import auth
from endolite.config import Settings
from endolite.extract import extract_frames
from endolite.frame_labels import set_frame_labels
from endolite.ingest import ingest_paths
from endolite.records import Presence, Role
from endolite.storage import anonymizations, connect, labels, users
from tests.e2e_support import browser_page, log_in, running_dashboard, wait_idle

pytestmark = pytest.mark.e2e

W, H, N = 320, 240, 40
NAME = "MUELLER HANS"


def _font(size: int):
    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                 "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def _screen_video(path) -> None:
    """A round field of view on the right with a moving disc; a patient name printed left."""
    font = _font(16)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(N):
            image = Image.new("RGB", (W, H), (0, 0, 0))
            draw = ImageDraw.Draw(image)
            draw.ellipse((130, 20, 310, 200), fill=(170, 80, 70))
            draw.ellipse((190 + i, 90, 220 + i, 120), fill=(230, 200, 190))
            draw.text((6, 40), NAME, fill=(255, 255, 255), font=font)
            draw.text((6, 70), "Age: 54", fill=(255, 255, 255), font=font)
            frame = av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_lead_validates_a_video_and_downloads_its_export(tmp_path):
    data_dir = tmp_path / "data"
    settings = Settings.resolve(data_dir)
    con = connect(settings)
    _screen_video(tmp_path / "exam.mp4")
    (result,) = ingest_paths(con, settings, [tmp_path / "exam.mp4"], user="t")
    video_id = result.id
    frames = extract_frames(con, settings, video_id, method="uniform", count=3, context=0).picked
    labels.add(con, "polyp")
    for fr, value in zip(frames, (Presence.PRESENT, Presence.ABSENT, Presence.PRESENT)):
        set_frame_labels(con, fr.id, [("polyp", value, None)], annotator="ann")
    users.add(con, "lena", Role.LEAD, auth.hash_password("lena-pass-1", n=2**10))
    con.close()

    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        log_in(page, url, "lena", "lena-pass-1")

        page.get_by_role("link", name="Export").click()
        page.get_by_role("heading", name="Export").first.wait_for()
        page.get_by_text("Nothing is validated yet.").wait_for()

        page.get_by_role("link", name="Anonymization").click()
        page.get_by_role("heading", name="Anonymization").first.wait_for()
        wait_idle(page)
        page.get_by_role("button", name="Anonymize").click()
        page.get_by_text("Anonymized:").wait_for(timeout=240_000)
        wait_idle(page)
        page.get_by_text("Text boxes on the raw media").wait_for()
        page.get_by_role("heading", name="Raw | anonymized").wait_for()
        page.get_by_text("status: anonymized").wait_for()
        page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
        page.get_by_role("button", name="Validate").click()
        page.get_by_text("validated.").first.wait_for()
        wait_idle(page)

        page.get_by_role("link", name="Export").click()
        page.get_by_role("heading", name="Export").first.wait_for()
        wait_idle(page)
        page.get_by_role("button", name="Write export").wait_for()
        page.locator("[data-testid='stMultiSelect']").first.click()
        page.get_by_role("option", name=f"video {video_id}:").click()
        page.keyboard.press("Escape")
        page.get_by_text("Frames", exact=True).click()
        page.get_by_role("button", name="Write export").click()
        page.get_by_text("Export 1 written").wait_for(timeout=120_000)
        wait_idle(page)
        with page.expect_download() as info:
            page.get_by_role("link", name="Download lx-csv").click()
        download = info.value
        target = tmp_path / "export.zip"
        download.save_as(str(target))

    con = connect(settings)
    row = anonymizations.get(con, video_id=video_id)
    assert row.status == "validated" and row.text_boxes, "OCR found the printed name on the raw video"
    blanked = {fid: settings.absolute(rel) for fid, (rel, _) in
               anonymizations.frames(con, [f.id for f in frames]).items()}
    con.close()
    with zipfile.ZipFile(target) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read("annotations.csv").decode())))
        assert [r["value"] for r in rows] == ["True", "False", "True"]
        for r in rows:
            member = f"frames/video_{video_id}/{r['frame_relative_path']}"
            data = zf.read(member)
            assert data == blanked[int(r["frame_id"])].read_bytes()
            image = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
            assert image[35:95, 0:120].max() < 40, "the printed name and age are blacked out"
        assert NAME.encode() not in b"".join(zf.read(n) for n in zf.namelist())
