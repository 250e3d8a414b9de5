"""A hostile-input corpus: every file is made here, nothing is downloaded.

Each case hands ingest (or the label / user stores) something broken or malicious and checks
three things: the answer names the file or field and the reason, the call returns (the process
keeps running), and nothing already stored changes (row counts of videos / frames /
image_groups, the files under the data dir, and a stored video and image still read back).
"""

from __future__ import annotations

import fractions
import io
import json
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from endolite import ingest
from endolite.errors import InvalidInput
from endolite.ingest import ZipLimits
from endolite.media import encode_image, read_image, sha256_file
from endolite.records import ItemKind, Role
from endolite.storage import labels
from endolite.storage import media as store
from endolite.storage import users as user_store
from tests.test_ingest import (
    DUPLICATE,
    IMPORTED,
    REJECTED,
    bomb,
    count,
    data_files,
    lp_zip,
    lying_bomb,
    png_bytes,
    rgb,
    run,
    symlink_zip,
    write_png,
)

HOSTILE_NAMES = ["<script>alert(1)</script>", "'; DROP TABLE users; --", "**bold**",
                 "<img src=x onerror=alert(1)>"]


def state(con, settings) -> tuple:
    return (count(con, "videos"), count(con, "frames"), count(con, "image_groups"),
            data_files(settings))


@pytest.fixture
def library(con, settings, tmp_path, disc_video) -> Callable[[], None]:
    """A video and an image stored before the hostile input; returns the check that nothing
    stored changed and both still read back."""
    [video] = run(con, settings, [disc_video])
    [image] = run(con, settings, [write_png(tmp_path / "kept" / "kept.png", seed=500)])
    assert (video.status, image.status) == (IMPORTED, IMPORTED)
    before = state(con, settings)

    def unchanged() -> None:
        assert state(con, settings) == before
        stored = store.get_video(con, video.id)
        assert sha256_file(settings.absolute(stored.path)) == stored.sha256
        frame = store.get_frame(con, image.frame_ids[0])
        assert np.array_equal(read_image(settings.absolute(frame.path)), rgb(24, 32, 500))
    return unchanged


def rejects(con, settings, paths, *parts: str, **kw) -> list:
    """Ingest ``paths``; every result is rejected, names its file and says each of ``parts``."""
    results = run(con, settings, paths, **kw)
    assert results and all(r.status == REJECTED for r in results), results
    for result in results:
        for part in parts:
            assert part in result.reason, (part, result.reason)
    return results


# --- videos -----------------------------------------------------------------------------------

def write_frames(path: Path, pts: list[int], *, codec: str = "mpeg4", time_base: int = 1000) -> Path:
    """A 64x48 video whose frames carry the given presentation timestamps (1/time_base s)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = stream.codec_context.time_base = fractions.Fraction(1, time_base)
        if not pts:
            container.start_encoding()            # header only: a video stream with no frames
        for i, t in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 8 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, fractions.Fraction(1, time_base)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def huge_avi(path: Path) -> Path:
    """A raw-video AVI whose headers declare 60000x60000 frames (the data is 64x48)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("rawvideo", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "bgr24"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    raw = bytearray(path.read_bytes())
    struct.pack_into("<II", raw, raw.find(b"avih") + 8 + 32, 60000, 60000)
    struct.pack_into("<ii", raw, raw.find(b"strf") + 8 + 4, 60000, 60000)
    path.write_bytes(bytes(raw))
    return path


def corrupt_header(source: Path, path: Path) -> Path:
    raw = bytearray(source.read_bytes())
    at = raw.find(b"moov")
    raw[at + 4:at + 200] = os.urandom(196)
    path.write_bytes(bytes(raw))
    return path


VIDEO_CASES = {
    "truncated.mp4": (lambda d, v: d.joinpath("truncated.mp4").write_bytes(v.read_bytes()[:20_000]),
                      "not a decodable video"),
    "corrupt.mp4": (lambda d, v: corrupt_header(v, d / "corrupt.mp4"), "no video stream"),
    "zero frames.mkv": (lambda d, v: write_frames(d / "zero frames.mkv", []), "not a decodable video"),
    "zero frames.mp4": (lambda d, v: write_frames(d / "zero frames.mp4", []), "no video stream"),
    "huge.avi": (lambda d, v: huge_avi(d / "huge.avi"), "not a decodable video"),
    "huge.y4m": (lambda d, v: d.joinpath("huge.y4m").write_bytes(
        b"YUV4MPEG2 W60000 H60000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + os.urandom(1000)), "huge.y4m"),
    "noise.mp4": (lambda d, v: d.joinpath("noise.mp4").write_bytes(os.urandom(50_000)),
                  "not a decodable video"),
}


@pytest.mark.parametrize("name", list(VIDEO_CASES))
def test_broken_videos_are_rejected(con, settings, tmp_path, disc_video, library, name):
    make, says = VIDEO_CASES[name]
    make(tmp_path, disc_video)
    [result] = rejects(con, settings, [tmp_path / name], f"{name}: ", says)
    assert str(settings.data_dir) not in result.reason
    library()


def test_variable_frame_rate_video_imports_with_every_frame(con, settings, tmp_path, library):
    steps = [10, 40, 100] * 10                      # 10 ms, 40 ms, 100 ms apart, repeating
    pts = [sum(steps[:i]) for i in range(30)]
    path = write_frames(tmp_path / "vfr.mkv", pts)
    [result] = run(con, settings, [path])
    assert result.status == IMPORTED, result.reason
    video = store.get_video(con, result.id)
    assert video.frame_count == 30 and video.duration == pytest.approx(1.5, abs=0.1)
    assert (video.width, video.height) == (64, 48)


# --- images -----------------------------------------------------------------------------------

def png_with_size(width: int, height: int) -> bytes:
    """A 4x4 PNG whose IHDR (CRC fixed up) declares width x height."""
    data = bytearray(encode_image(np.zeros((4, 4, 3), np.uint8), fmt="png"))
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


IMAGE_CASES = {
    "notes.png": (b"patient notes, not a picture\n" * 10, "cannot decode image"),
    "broken.jpg": (b"\xff\xd8\xff\xe0 truncated jpeg", "cannot decode image"),
    "half.png": (png_bytes(1, h=64, w=64)[:300], "cannot decode image"),
    "wide.png": (png_with_size(12000, 12000), "12000x12000 pixels, over the limit"),
    "bomb.png": (png_with_size(100000, 100000), "could be decompression bomb"),
    "empty.png": (b"", "empty file"),
}


@pytest.mark.parametrize("name", list(IMAGE_CASES))
def test_broken_images_are_rejected(con, settings, tmp_path, library, name):
    data, says = IMAGE_CASES[name]
    (tmp_path / name).write_bytes(data)
    rejects(con, settings, [tmp_path / name], f"{name}: ", says)
    folder = tmp_path / "series"                    # the same file in a folder rejects the folder
    write_png(folder / "0.png", seed=31)
    (folder / name).write_bytes(data)
    rejects(con, settings, [folder], "series", name, says)
    library()


def test_images_with_the_wrong_extension_are_read_by_content(con, settings, tmp_path, library):
    png_as_jpg = tmp_path / "really a png.jpg"
    png_as_jpg.write_bytes(png_bytes(3))
    tif_as_jpg = tmp_path / "really a tiff.jpg"
    from PIL import Image
    Image.fromarray(rgb(16, 20, 4)).save(tif_as_jpg, format="TIFF")
    results = run(con, settings, [png_as_jpg, tif_as_jpg])
    assert [r.status for r in results] == [IMPORTED, IMPORTED]
    png_frame, tif_frame = (store.get_frame(con, r.frame_ids[0]) for r in results)
    assert png_frame.path == png_frame.original_path                # a browser shows PNG as is
    assert tif_frame.path.endswith(f"frame_{tif_frame.id}.png")     # TIFF gets a PNG view
    assert settings.absolute(tif_frame.original_path).read_bytes() == tif_as_jpg.read_bytes()
    assert np.array_equal(read_image(settings.absolute(tif_frame.path)), rgb(16, 20, 4))


# --- zips -------------------------------------------------------------------------------------

def zip_of(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


ZIP_CASES = {
    "slip.zip": (lambda p: zip_of(p, {"img00000001.png": png_bytes(1), "../../evil.png": b"x"}),
                 "member '../../evil.png' points outside the archive folder"),
    "abs.zip": (lambda p: zip_of(p, {"/etc/cron.d/evil.png": png_bytes(1)}),
                "points outside the archive folder"),
    "win.zip": (lambda p: zip_of(p, {"..\\..\\win.png": png_bytes(1)}),
                "points outside the archive folder"),
    "drive.zip": (lambda p: zip_of(p, {"C:/evil.png": png_bytes(1)}),
                  "points outside the archive folder"),
    "bomb.zip": (lambda p: bomb(p, 30), "refusing a possible zip bomb"),
    "liar.zip": (lying_bomb, "liar.zip: "),
    "link.zip": (symlink_zip, "member 'img00000002.png' is a symbolic link"),
    "fake.zip": (lambda p: p.write_bytes(b"PK\x03\x04 not really a zip"), "not a readable zip"),
    "noimages.zip": (lambda p: zip_of(p, {"readme.txt": b"hi", "inner.zip": b"PK"}),
                     "no images"),
    "wrongcsv.zip": (lambda p: lp_zip(p, [1, 2, 3], folder="", csv_text="a,b,c\n1,2,3\n"),
                     "selected_frames.csv lists '3', which is not an image in the zip"),
    "binarycsv.zip": (lambda p: lp_zip(p, [1, 2], folder="", csv_text="x\n\x00\x01\x02garbage\n"),
                      "selected_frames.csv lists"),
}


@pytest.mark.parametrize("name", list(ZIP_CASES))
def test_hostile_zips_are_rejected(con, settings, tmp_path, library, name):
    make, says = ZIP_CASES[name]
    make(tmp_path / name)
    rejects(con, settings, [tmp_path / name], f"{name}: ", says,
            zip_limits=ZipLimits(ratio_floor_bytes=10 << 20))
    assert not (tmp_path.parent / "evil.png").exists() and not Path("/evil.png").exists()
    library()


def test_lightning_pose_header_and_stray_image(con, settings, tmp_path, library):
    header = pd.Series(["img00000003.png"]).to_csv(index=False)          # "0\nimg00000003.png\n"
    path = lp_zip(tmp_path / "lp.zip", [0, 1, 2, 3, 4], folder="", csv_text=header,
                  extra={"cover.png": png_bytes(90)})
    group, stray = run(con, settings, [path])
    assert group.status == IMPORTED and stray.status == REJECTED
    frames = store.frames_of(con, group_id=group.id)
    assert [f.frame_number for f in frames] == [0, 1, 2, 3, 4]          # not renumbered
    assert [f.frame_number for f in frames if not f.is_context] == [3]    # "0" is no frame
    assert stray.reason.startswith("lp.zip: cover.png has no frame number in its name")


# --- manifests --------------------------------------------------------------------------------

MANIFEST_CASES = {
    "missing": ({"images": [{"objectUrl": "gone.png"}]}, "images[0]: no such file gone.png"),
    "not an image": ({"images": [{"objectUrl": "../../../../../../../../../../etc/passwd"}]},
                     "cannot decode image"),
    "not a list": ({"videos": {"objectUrl": "a.mp4"}}, "'videos' must be a list"),
    "entry a string": ({"videos": ["a.mp4"]}, "videos[0]: an entry must be a JSON object"),
    "url a number": ({"images": [{"objectUrl": 5}]}, "images[0]: no objectUrl"),
    "metadata a list": ({"videos": [{"objectUrl": "a.mp4", "clientMetadata": [1]}]},
                        "clientMetadata must be a JSON object"),
    "bad key frames": ({"videos": [{"objectUrl": "a.mp4",
                                    "clientMetadata": {"$encord": {"frames": ["x"]}}}]},
                       "$encord.frames: 'x' is not a frame number"),
    "group without urls": ({"image_groups": [{"title": 5}]}, "no objectUrl_0"),
    "remote url": ({"videos": [{"objectUrl": "http://169.254.169.254/latest/meta-data"}]},
                   "nothing is downloaded"),
    "top-level list": ([1, 2, 3], "unknown type"),
    "empty lists": ({"videos": [], "images": []}, "the manifest lists nothing"),
}


@pytest.mark.parametrize("case", list(MANIFEST_CASES))
def test_hostile_manifests_are_rejected(con, settings, tmp_path, library, case):
    body, says = MANIFEST_CASES[case]
    path = tmp_path / "m.json"
    path.write_text(json.dumps(body))
    rejects(con, settings, [path], "m.json", says)
    library()


@pytest.mark.parametrize("text, says", [("{ not json", "not readable JSON"),
                                        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
                                        ("\udcff", "not readable JSON")])
def test_unreadable_manifests_are_rejected(con, settings, tmp_path, library, text, says):
    path = tmp_path / "m.json"
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    rejects(con, settings, [path], "m.json: ", says)
    library()


def test_traversal_from_the_inbox_is_refused(con, settings, tmp_path, library):
    [inbox] = ingest.default_import_roots(settings)
    path = inbox / "m.json"
    path.write_text(json.dumps({"images": [{"objectUrl": "../../etc/passwd"},
                                           {"objectUrl": "file:///etc/passwd"}],
                                "videos": [{"objectUrl": "/etc/passwd"}]}))
    results = rejects(con, settings, [path, "../../etc/passwd", inbox / ".." / "endolite.duckdb"],
                      "outside the allowed import folders", roots=[inbox])
    assert [r.path for r in results] == ["/etc/passwd", "../../etc/passwd", "file:///etc/passwd",
                                         "../../etc/passwd", str(inbox / ".." / "endolite.duckdb")]
    library()


def test_a_csv_on_its_own_is_an_unknown_type(con, settings, tmp_path, library):
    path = tmp_path / "labels.csv"
    path.write_text("name,colour\npolyp,#ff0000\n")
    rejects(con, settings, [path], "labels.csv: unknown type")
    library()


def test_hostile_upload_names_stay_in_staging(con, settings, library):
    for name in ["../../evil.png", "/etc/passwd", "..\\..\\win.png", "\x00.png", "." * 300]:
        staged = ingest.stage_upload(settings, name, io.BytesIO(b"not an image"))
        assert staged.resolve().is_relative_to(settings.tmp_dir.resolve())
        [result] = run(con, settings, [staged], display_names={str(staged): name})
        assert result.status == REJECTED and result.reason.startswith(f"{staged.name}: ")
        assert "cannot decode image" in result.reason or "unknown type" in result.reason
        assert str(settings.data_dir) not in result.reason
        ingest.discard_staging(staged)
    library()


# --- hostile text in labels and user names ----------------------------------------------------

@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_label_names_are_stored_exactly(con, settings, library, name):
    label = labels.add(con, name, created_by=name)
    assert labels.get(con, label.id).name == name == labels.get_by_name(con, name).name
    assert [lb.name for lb in labels.list_all(con)] == [name]
    with pytest.raises(InvalidInput, match="already exists"):
        labels.add(con, name)
    assert con.execute("SELECT count(*) FROM users").fetchone()[0] == 0   # no SQL ran from it
    library()


def test_hostile_user_names_are_stored_exactly_or_refused(con, settings, library):
    from endolite.services.access import Actor, Ctx
    from endolite.services.users import add_user

    ctx = Ctx(con, settings, Actor.server_shell())
    add_user(ctx, "admin", Role.ADMIN, "a long admin password")
    for name in HOSTILE_NAMES:
        before = user_store.count(con)
        if " " in name:                                 # user names take no spaces
            with pytest.raises(InvalidInput, match="user name: must be non-empty without spaces"):
                add_user(ctx, name, Role.ANNOTATOR, "a long enough password")
            assert user_store.count(con) == before
        else:
            user = add_user(ctx, name, Role.ANNOTATOR, "a long enough password")
            assert user_store.get(con, user.id).name == name
            assert user_store.get_by_name(con, name).name == name
    assert user_store.count(con) == 3
    library()


# --- the same image, three ways ---------------------------------------------------------------

def test_the_same_image_alone_in_a_folder_and_in_a_zip_is_stored_once(con, settings, tmp_path,
                                                                      library):
    image = png_bytes(77)
    (tmp_path / "alone.png").write_bytes(image)
    [first] = run(con, settings, [tmp_path / "alone.png"])
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "copy.png").write_bytes(image)
    write_png(tmp_path / "folder" / "new.png", seed=78)
    zip_of(tmp_path / "frames.zip", {"img00000001.png": image})
    group, *results = run(con, settings, [tmp_path / "folder", tmp_path / "frames.zip"])
    assert (group.kind, group.status, len(group.frame_ids)) == (ItemKind.IMAGE_GROUP, IMPORTED, 1)
    expected = f"duplicate of frame {first.frame_ids[0]} in group {first.id}"
    assert [(r.kind, r.status, r.reason) for r in results] == [(ItemKind.IMAGE, DUPLICATE, expected)] * 2
    assert [r.path for r in results] == ["folder/copy.png", "frames.zip: img00000001.png"]
    assert con.execute("SELECT count(*) FROM frames WHERE sha256 = ?",
                       [sha256_file(tmp_path / "alone.png")]).fetchone()[0] == 1
