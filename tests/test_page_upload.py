"""Upload page (AppTest): browser files through the page's file_uploader are staged and imported;
the server-paths box is for leads and admins and only below the import folders (data/inbox);
rejected and duplicate rows say why."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from endolite.records import Role
from endolite.storage import connect, media
from endolite.synthetic import write_disc_video
from tests.support import make_user, page


def _png(seed: int = 0) -> bytes:
    rgb = np.random.default_rng(seed).integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="png")
    return out.getvalue()


def _upload(at, *files):
    at.file_uploader(key="upload_files").set_value(list(files))
    at.button(key="upload_go").click().run()
    assert not at.exception, at.exception
    return at


def test_annotator_uploads_a_video_and_a_png_and_sees_no_server_paths(app_env, tmp_path):
    con = connect(app_env)
    ann = make_user(con, "ann", Role.ANNOTATOR)
    video = write_disc_video(tmp_path / "clip.mp4", 30, gop=10).read_bytes()
    at = page("views/upload.py", ann).run()
    assert not at.exception, at.exception
    assert not [t for t in at.text_area if t.key == "upload_paths"], "no server paths for annotators"

    _upload(at, ("clip.mp4", video, "video/mp4"), ("still.png", _png(), "image/png"))
    assert [s.value for s in at.subheader] == ["Imported 2 of 2"]
    [v] = media.list_videos(con)
    assert v.frame_count == 30 and v.created_by == "ann"
    [group] = media.list_groups(con)
    [frame] = media.frames_of(con, group_id=group.id)
    assert frame.original_name == "still.png"
    assert not list(app_env.tmp_dir.glob("upload-*")), "the staging folders are removed again"


def test_rejected_and_duplicate_uploads_show_their_reason(app_env):
    con = connect(app_env)
    ann = make_user(con, "ann", Role.ANNOTATOR)
    at = page("views/upload.py", ann).run()
    _upload(at, ("first.png", _png(1), "image/png"))
    _upload(at, ("again.png", _png(1), "image/png"), ("broken.png", b"not an image", "image/png"))
    warnings = [w.value for w in at.warning]
    errors = [e.value for e in at.error]
    assert any("again" in w and "duplicate" in w for w in warnings), warnings
    assert any("broken" in e for e in errors), errors
    table = at.dataframe[0].value
    assert set(table["status"]) == {"duplicate", "rejected"}
    assert table["reason"].str.len().min() > 0, "every row that was not imported says why"


def test_lead_imports_below_the_inbox_and_is_refused_outside(app_env, tmp_path):
    con = connect(app_env)
    lead = make_user(con, "lena", Role.LEAD)
    inbox = app_env.data_dir / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    inside = write_disc_video(inbox / "inbox_clip.mp4", 20, gop=10)
    outside_png = tmp_path / "outside.png"
    outside_png.write_bytes(_png(2))
    link = inbox / "sneaky.png"
    os.symlink(outside_png, link)                  # in the inbox, pointing outside it

    at = page("views/upload.py", lead).run()
    box = at.text_area(key="upload_paths")
    assert "inbox" in box.label
    box.set_value(f"{inside}\n/etc/hostname\n{link}")
    at.button(key="upload_go").click().run()
    assert not at.exception, at.exception

    [v] = media.list_videos(con)
    assert v.title.startswith("inbox_clip")
    assert media.list_groups(con) == [], "nothing came in from outside the inbox"
    errors = " | ".join(e.value for e in at.error)
    assert "/etc/hostname" in errors.replace("\\", ""), errors
    assert "sneaky" in errors, errors
    assert [s.value for s in at.subheader] == ["Imported 1 of 3"]


def test_a_rejected_video_says_what_is_wrong_not_where_the_server_put_it(app_env):
    con = connect(app_env)
    ann = make_user(con, "ann", Role.ANNOTATOR)
    at = page("views/upload.py", ann).run()
    _upload(at, ("fake_video.mp4", b"this is not a video " * 500, "video/mp4"))
    [error] = [e.value for e in at.error]
    assert "not a decodable video" in error, error
    assert error.replace("\\", "").count("fake_video.mp4") == 1, error
    for leak in ("Errno", "upload-", "/tmp", str(app_env.data_dir), "/0/"):
        assert leak not in error, (leak, error)
    [row] = at.session_state["upload_results"]
    assert "Errno" not in row["reason"] and "/" not in row["reason"], row["reason"]
