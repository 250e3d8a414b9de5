"""Ingest: videos, still images, Lightning Pose zips and Encord-style manifests."""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import stat
import struct
import zipfile
from contextlib import contextmanager
from pathlib import Path

import duckdb

import numpy as np
import pandas as pd
import pytest

from endolite.storage import audit
from PIL import Image

from endolite import ingest
from endolite.ingest import ZipLimits, ingest_paths
from endolite.media import encode_image, sha256_file
from endolite.records import IngestStatus, ItemKind
from endolite.storage import media as store
from endolite.synthetic import write_disc_video

IMPORTED, DUPLICATE, REJECTED = IngestStatus.IMPORTED, IngestStatus.DUPLICATE, IngestStatus.REJECTED


def data_files(settings) -> list[str]:
    """Every file under the data dir except the database itself and the import inbox."""
    return sorted(p.relative_to(settings.data_dir).as_posix()
                  for p in settings.data_dir.rglob("*")
                  if p.is_file() and not p.name.startswith("endolite.duckdb")
                  and p.relative_to(settings.data_dir).parts[0] != "inbox")


def count(con, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, size=(h, w, 3), dtype=np.uint8)


def write_png(path: Path, h: int = 24, w: int = 32, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_image(rgb(h, w, seed), fmt="png"))
    return path


def png_bytes(seed: int, h: int = 16, w: int = 20) -> bytes:
    return encode_image(rgb(h, w, seed), fmt="png")


def run(con, settings, paths, **kw):
    kw.setdefault("user", "alice")
    return ingest_paths(con, settings, [str(p) for p in paths], **kw)


# --- videos -----------------------------------------------------------------------------------

def test_video_import_probes_and_stores_once_by_hash(con, settings, disc_video):
    seen = []
    [result] = run(con, settings, [disc_video], progress=lambda f, m: seen.append(f))
    assert (result.status, result.kind, result.title) == (IMPORTED, ItemKind.VIDEO, "disc")
    video = store.get_video(con, result.id)
    assert (video.fps, video.frame_count, video.width, video.height) == (25.0, 100, 192, 144)
    assert video.codec == "h264" and video.duration == pytest.approx(4.0, abs=0.1)
    assert video.original_name == "disc.mp4" and video.created_by == "alice"
    sha = sha256_file(disc_video)
    assert video.sha256 == sha and video.path == f"videos/{sha}.mp4"
    assert settings.absolute(video.path).read_bytes() == disc_video.read_bytes()
    assert video.size_bytes == disc_video.stat().st_size
    assert seen == sorted(seen) and seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen)


def test_real_colonoscopy_video_imports(con, settings, real):
    source = real / "videos" / "video_coloscopy.mp4"
    [result] = run(con, settings, [source])
    video = store.get_video(con, result.id)
    assert (video.width, video.height, video.fps, video.frame_count) == (470, 410, 30.0, 884)
    assert video.duration == pytest.approx(29.47, abs=0.05) and video.codec == "h264"
    assert settings.absolute(video.path).read_bytes() == source.read_bytes()


def test_same_video_again_is_a_duplicate(con, settings, disc_video, tmp_path):
    copy = shutil.copy(disc_video, tmp_path / "same bytes other name.mp4")
    first, second = run(con, settings, [disc_video, copy])
    assert first.status == IMPORTED
    assert (second.status, second.id, second.reason) == (DUPLICATE, first.id, f"duplicate of video {first.id}")
    assert count(con, "videos") == 1 and len(list(settings.videos_dir.iterdir())) == 1


@pytest.mark.parametrize("name, codec", [("clip.avi", "mpeg4"), ("clip.mkv", "mpeg4"),
                                         ("clip.webm", "libvpx-vp9"), ("clip.mov", "mpeg4")])
def test_videos_in_other_containers(con, settings, tmp_path, name, codec):
    path = write_disc_video(tmp_path / name, 12, height=64, width=96, fps=10, codec=codec)
    [result] = run(con, settings, [path])
    assert result.status == IMPORTED, result.reason
    video = store.get_video(con, result.id)
    assert (video.width, video.height, video.frame_count, video.fps) == (96, 64, 12, 10.0)
    assert video.codec == {"libvpx-vp9": "vp9"}.get(codec, codec)
    assert video.path.endswith(Path(name).suffix) and video.title == "clip"


def test_display_name_gives_title_and_original_name(con, settings, disc_video, tmp_path):
    upload = shutil.copy(disc_video, tmp_path / "upload-3f9a.bin")
    [result] = run(con, settings, [upload], display_names={str(upload): "Patient 7 colonoscopy.mp4"})
    video = store.get_video(con, result.id)
    assert (video.title, video.original_name) == ("Patient 7 colonoscopy", "Patient 7 colonoscopy.mp4")
    assert video.path.endswith(".mp4")


def test_same_video_committed_meanwhile_is_a_duplicate(con, settings, disc_video, monkeypatch):
    [first] = run(con, settings, [disc_video])
    real_find, calls = store.find_video_by_sha, []

    def late_find(con_, sha):           # the pre-check misses a row another session just committed
        calls.append(sha)
        return None if len(calls) == 1 else real_find(con_, sha)
    monkeypatch.setattr(ingest.store, "find_video_by_sha", late_find)
    [second] = run(con, settings, [disc_video])
    assert (second.status, second.id) == (DUPLICATE, first.id)
    assert settings.absolute(store.get_video(con, first.id).path).is_file()   # not undone
    assert count(con, "videos") == 1


def test_bad_videos_are_rejected_and_leave_nothing(con, settings, disc_video, tmp_path):
    data = disc_video.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.mkv"
    noise.write_bytes(os.urandom(20_000))
    missing = tmp_path / "gone.mp4"
    results = run(con, settings, [truncated, empty, noise, missing])
    assert [r.status for r in results] == [REJECTED] * 4
    for result, name in zip(results, ["truncated.mp4", "empty.mp4", "noise.mkv", "gone.mp4"]):
        assert name in result.reason
    assert "empty file" in results[1].reason and "no such file" in results[3].reason
    assert count(con, "videos") == 0 and data_files(settings) == []


def test_unknown_types_are_rejected(con, settings, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("patient notes, not a video\n" * 20)
    blob = tmp_path / "blob.xyz"
    blob.write_bytes(os.urandom(5000))
    results = run(con, settings, [text, blob])
    assert [r.status for r in results] == [REJECTED, REJECTED]
    assert "notes.txt: unknown type" in results[0].reason
    assert "blob.xyz: unknown type" in results[1].reason
    assert data_files(settings) == []


# --- still images -----------------------------------------------------------------------------

def test_image_folder_is_one_group_in_natural_order(con, settings, tmp_path):
    folder = tmp_path / "polyp series"
    write_png(folder / "10.png", seed=10)
    write_png(folder / "2.png", seed=2)
    Image.fromarray(rgb(24, 32, 1)).save(folder / "1.bmp")
    (folder / "readme.txt").write_text("ignored")
    [result] = run(con, settings, [folder])
    assert (result.status, result.kind, result.title) == (IMPORTED, ItemKind.IMAGE_GROUP, "polyp series")
    group = store.get_group(con, result.id)
    assert (group.source, group.frame_count, group.created_by) == ("folder", 3, "alice")
    frames = store.frames_of(con, group_id=group.id)
    assert [f.original_name for f in frames] == ["1.bmp", "2.png", "10.png"]
    assert [f.frame_number for f in frames] == [0, 1, 2] and list(result.frame_ids) == [f.id for f in frames]
    for frame in frames:
        assert frame.timestamp is None and not frame.is_context and (frame.width, frame.height) == (32, 24)
        original = settings.absolute(frame.original_path)
        assert original == settings.group_frames_dir(group.id) / frame.original_name
        assert original.read_bytes() == (folder / frame.original_name).read_bytes()
        assert frame.sha256 == sha256_file(folder / frame.original_name)
    bmp, png = frames[0], frames[1]
    assert bmp.path == f"frames/group_{group.id}/frame_{bmp.id}.png"
    with Image.open(settings.absolute(bmp.path)) as im:
        assert im.format == "PNG" and np.array_equal(np.asarray(im.convert("RGB")), rgb(24, 32, 1))
    assert png.path == png.original_path


def test_real_cvc_tiffs_and_kvasir_jpegs_import(con, settings, real):
    tiffs = sorted((real / "images").glob("*.tif"))
    jpegs = sorted((real / "images").glob("cju*.jpg"))[:5]
    assert len(tiffs) == 10 and len(jpegs) == 5
    results = run(con, settings, tiffs + jpegs)
    assert all(r.status == IMPORTED and r.kind == ItemKind.IMAGE for r in results), results
    assert len({r.id for r in results}) == 1 and results[0].title == "15 images"
    frames = store.frames_of(con, group_id=results[0].id)
    assert [f.id for f in frames] == [r.frame_ids[0] for r in results]
    for source, frame in zip(tiffs + jpegs, frames):
        assert frame.original_name == source.name
        assert settings.absolute(frame.original_path).read_bytes() == source.read_bytes()
        with Image.open(settings.absolute(frame.path)) as im:
            assert im.size == (frame.width, frame.height)
            im.load()
    assert all((f.width, f.height) == (384, 288) for f in frames[:10])
    assert all(f.path.endswith(f"frame_{f.id}.png") for f in frames[:10])
    assert all(f.path == f.original_path for f in frames[10:])


def test_loose_images_dedup_and_single_image_title(con, settings, tmp_path):
    a, b = write_png(tmp_path / "a.png", seed=1), write_png(tmp_path / "b.png", seed=2)
    first = run(con, settings, [a, b])
    assert [r.status for r in first] == [IMPORTED, IMPORTED] and first[0].title == "2 images"
    again = run(con, settings, [b, a])                      # same images, other order
    assert [r.status for r in again] == [DUPLICATE, DUPLICATE]
    assert again[0].reason == f"duplicate of frame {first[1].frame_ids[0]} in group {first[0].id}"
    assert again[0].frame_ids == first[1].frame_ids          # b's frame
    upload = write_png(tmp_path / "tmp-upload-1.png", seed=3)
    [single] = run(con, settings, [upload], display_names={str(upload): "cecum view.png"})
    assert single.title == "cecum view"
    frame = store.get_frame(con, single.frame_ids[0])
    assert frame.original_name == "cecum view.png" and frame.original_path.endswith("/cecum view.png")
    assert count(con, "image_groups") == 2


def test_bad_loose_image_is_rejected_alone(con, settings, tmp_path):
    good = write_png(tmp_path / "good.png")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    results = run(con, settings, [good, broken])
    assert [r.status for r in results] == [IMPORTED, REJECTED]
    assert "broken.jpg" in results[1].reason and results[0].title == "good"
    assert store.get_group(con, results[0].id).frame_count == 1


def test_the_same_image_is_stored_once_across_the_library(con, settings, tmp_path):
    image = png_bytes(7)
    alone = tmp_path / "alone.png"
    alone.write_bytes(image)
    [first] = run(con, settings, [alone])
    fid, gid = first.frame_ids[0], first.id
    expected = f"duplicate of frame {fid} in group {gid}"

    folder = tmp_path / "series"                             # in a folder beside a new image
    folder.mkdir()
    (folder / "1.png").write_bytes(image)
    write_png(folder / "2.png", seed=99)
    group, dup = run(con, settings, [folder])
    assert (group.kind, group.status, len(group.frame_ids)) == (ItemKind.IMAGE_GROUP, IMPORTED, 1)
    assert (dup.path, dup.kind, dup.status, dup.reason) == ("series/1.png", ItemKind.IMAGE, DUPLICATE, expected)
    assert (dup.id, dup.frame_ids) == (gid, (fid,))
    assert store.get_group(con, group.id).frame_count == 1

    path = tmp_path / "lp.zip"                               # the listed frame of a zip
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("img00000001.png", image)
        zf.writestr("img00000002.png", png_bytes(8))
        zf.writestr("img00000003.png", png_bytes(8))         # twice in the zip itself
        zf.writestr("selected_frames.csv", "img00000001.png\n")
    zgroup, zdup, zdup2 = run(con, settings, [path])
    assert zgroup.status == IMPORTED and (zdup.path, zdup.reason) == ("lp.zip: img00000001.png", expected)
    [context] = store.frames_of(con, group_id=zgroup.id)
    assert (context.frame_number, context.is_context, context.parent_id) == (2, True, fid)
    assert zdup2.reason == f"duplicate of frame {context.id} in group {zgroup.id}"
    assert zdup2.title == "lp" and zgroup.frame_ids == (context.id,)

    again = tmp_path / "again.png"                           # a loose batch, and twice in it
    again.write_bytes(image)
    y, z = write_png(tmp_path / "y.png", seed=50), tmp_path / "z.png"
    shutil.copy(y, z)
    r_again, r_y, r_z = run(con, settings, [again, y, z])
    assert (r_again.status, r_again.reason, r_again.frame_ids) == (DUPLICATE, expected, (fid,))
    assert r_y.status == IMPORTED and r_y.title == "y"
    assert (r_z.status, r_z.reason) == (DUPLICATE, f"duplicate of frame {r_y.frame_ids[0]} in group {r_y.id}")

    only_known = tmp_path / "known.zip"                      # nothing new: no group at all
    with zipfile.ZipFile(only_known, "w") as zf:
        zf.writestr("img00000005.png", image)
        zf.writestr("img00000006.png", png_bytes(8))
    results = run(con, settings, [only_known])
    assert [(r.kind, r.status) for r in results] == [(ItemKind.IMAGE, DUPLICATE)] * 2
    assert results[0].reason == expected and results[1].frame_ids == (context.id,)

    shas = [row[0] for row in con.execute("SELECT sha256 FROM frames").fetchall()]
    assert len(shas) == len(set(shas)) == 4 and count(con, "image_groups") == 4
    stored = [p for p in data_files(settings) if p.startswith("frames/")]
    assert len(stored) == 4


# --- zips of frames ---------------------------------------------------------------------------

def lp_zip(path: Path, frames: list[int], *, folder: str = "subject023_session0/",
           csv_text: str | None = None, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for n in frames:
            zf.writestr(f"{folder}img{n:08d}.png", png_bytes(n))
        if csv_text is not None:
            zf.writestr(f"{folder}selected_frames.csv", csv_text)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def test_lightning_pose_zip_with_context_frames(con, settings, tmp_path):
    frames = [141, 142, 143, 144, 145, 1154, 1155, 1156, 1157, 1158]
    path = lp_zip(tmp_path / "subject023_session0.zip", frames,
                  csv_text="frames\nimg00000143.png\nsubject023_session0/img00001156.png\n",
                  extra={"__MACOSX/._img00000143.png": b"junk", "notes.txt": b"ignored"})
    [result] = run(con, settings, [path])
    assert (result.status, result.kind, result.title) == (IMPORTED, ItemKind.IMAGE_GROUP, "subject023_session0")
    group = store.get_group(con, result.id)
    assert (group.source, group.sha256, group.frame_count) == ("zip", sha256_file(path), 10)
    stored = store.frames_of(con, group_id=group.id)
    assert [f.frame_number for f in stored] == frames
    by_number = {f.frame_number: f for f in stored}
    labeling = [f.frame_number for f in store.frames_of(con, group_id=group.id, include_context=False)]
    assert labeling == [143, 1156]
    for f in stored:
        parent = None if f.frame_number in (143, 1156) else by_number[143 if f.frame_number < 600 else 1156].id
        assert (f.is_context, f.parent_id) == (parent is not None, parent)
        assert f.original_name == f"img{f.frame_number:08d}.png"
        assert settings.absolute(f.path).read_bytes() == png_bytes(f.frame_number)
    [again] = run(con, settings, [path])
    assert (again.status, again.reason) == (DUPLICATE, f"duplicate of image group {group.id}")


def test_zip_without_csv_and_with_clashing_names(con, settings, tmp_path):
    path = tmp_path / "two cams.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("left/img00000001.png", png_bytes(1))
        zf.writestr("right/img00000001.png", png_bytes(2))     # numbers repeat per camera
        zf.writestr("right/img00000002.png", png_bytes(3))
        zf.writestr("left/frame.png", png_bytes(4))
        zf.writestr("right/frame.png", png_bytes(5))
    [result] = run(con, settings, [path])
    assert result.status == IMPORTED, result.reason
    frames = store.frames_of(con, group_id=result.id)
    assert not any(f.is_context for f in frames)
    assert [f.frame_number for f in frames] == [0, 1, 2, 3, 4]    # natural name order
    names = [Path(f.original_path).name for f in frames]
    assert sorted(f.original_name for f in frames).count("frame.png") == 2
    assert len(set(names)) == 5 and "frame_2.png" in names and "img00000001_2.png" in names


def labeling_numbers(con, group_id: int) -> list[int]:
    return [f.frame_number for f in store.frames_of(con, group_id=group_id, include_context=False)]


@pytest.mark.parametrize("csv_text, expected", [
    (pd.Series(["img00000003.png", "img00000005.png"]).to_csv(index=False), [3, 5]),   # "0" header
    (pd.Series(["img00000003.png"]).to_csv(), [3]),                     # ",0" header + index
    (pd.Series([2, 4]).to_csv(index=False), [2, 4]),                    # "0" header, numbers
    ("7\nimg00000003.png\n", [3]),                                     # a number over names
    ("5\n1\n", [1, 5]),                                                # no header: numbers
    ("frames\n0\n3\n", [0, 3]),                                        # frame 0 under a header
])
def test_selected_frames_numeric_header_is_no_frame(con, settings, tmp_path, csv_text, expected):
    path = lp_zip(tmp_path / "lp.zip", list(range(8)), folder="", csv_text=csv_text)
    [result] = run(con, settings, [path])
    assert result.status == IMPORTED, result.reason
    assert labeling_numbers(con, result.id) == expected


def test_stray_unnumbered_image_is_skipped_not_renumbering(con, settings, tmp_path):
    path = lp_zip(tmp_path / "lp.zip", [10, 11, 12, 13], csv_text="img00000012.png\n",
                  extra={"subject023_session0/cover.png": png_bytes(99)})
    group, stray = run(con, settings, [path])
    assert group.status == IMPORTED
    assert [f.frame_number for f in store.frames_of(con, group_id=group.id)] == [10, 11, 12, 13]
    assert labeling_numbers(con, group.id) == [12]
    assert (stray.status, stray.kind, stray.path) == (REJECTED, ItemKind.IMAGE, "lp.zip: subject023_session0/cover.png")
    assert stray.reason.startswith("lp.zip: subject023_session0/cover.png has no frame number")
    assert "skipped" in stray.reason

    listed = lp_zip(tmp_path / "listed.zip", [1, 2, 3], folder="", csv_text="cover.png\n",
                    extra={"cover.png": png_bytes(98)})
    [result] = run(con, settings, [listed])
    assert result.status == REJECTED
    assert result.reason == "listed.zip: selected_frames.csv lists 'cover.png', which has no frame number in its name"

    mostly_unnumbered = tmp_path / "stills.zip"                 # no LP layout: natural order
    with zipfile.ZipFile(mostly_unnumbered, "w") as zf:
        for name, seed in [("polyp b.png", 60), ("polyp a.png", 61), ("scan 12.png", 62)]:
            zf.writestr(name, png_bytes(seed))
    [result] = run(con, settings, [mostly_unnumbered])
    frames = store.frames_of(con, group_id=result.id)
    assert [(f.frame_number, f.original_name) for f in frames] == [
        (0, "polyp a.png"), (1, "polyp b.png"), (2, "scan 12.png")]


def symlink_zip(path: Path) -> Path:
    """A zip whose second member is a symbolic link to /etc/passwd."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("img00000001.png", png_bytes(1))
        info = zipfile.ZipInfo("img00000002.png")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    return path


def test_zip_with_symlink_encrypted_or_too_many_members_is_rejected(con, settings, tmp_path):
    link = symlink_zip(tmp_path / "link.zip")
    locked = tmp_path / "locked.zip"
    with zipfile.ZipFile(locked, "w") as zf:
        zf.writestr("img00000001.png", png_bytes(1))
    raw = bytearray(locked.read_bytes())                     # set the "encrypted" flag bit
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = raw.find(signature) + offset
        raw[at] |= 0x1
    locked.write_bytes(bytes(raw))
    many = lp_zip(tmp_path / "many.zip", list(range(5)))
    results = run(con, settings, [link, locked]) + run(con, settings, [many],
                                                       zip_limits=ZipLimits(max_members=3))
    assert [r.status for r in results] == [REJECTED] * 3
    assert results[0].reason == ("link.zip: member 'img00000002.png' is a symbolic link; "
                                 "zips with links are refused")
    assert results[1].reason == "locked.zip: member 'img00000001.png' is encrypted"
    assert results[2].reason.startswith("many.zip: 5 members, over the 3 limit")
    assert data_files(settings) == [] and count(con, "frames") == 0


@pytest.mark.parametrize("member", ["../escape.png", "/abs/escape.png", "a/../../escape.png"])
def test_zip_slip_is_rejected(con, settings, tmp_path, member):
    path = tmp_path / "slip.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("img00000001.png", png_bytes(1))
        zf.writestr(member, png_bytes(2))
    [result] = run(con, settings, [path])
    assert result.status == REJECTED and "slip.zip" in result.reason and member in result.reason
    assert data_files(settings) == [] and count(con, "frames") == 0
    assert not (tmp_path / "escape.png").exists()


def bomb(path: Path, megabytes: int) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("img00000001.png", png_bytes(1))
        zf.writestr("img00000002.png", bytes(megabytes << 20))
    return path


def test_zip_bomb_is_rejected(con, settings, tmp_path):
    path = bomb(tmp_path / "bomb.zip", 30)                  # 30 MB of zeros in ~30 KB
    assert path.stat().st_size < 200_000
    [by_ratio] = run(con, settings, [path], zip_limits=ZipLimits(ratio_floor_bytes=10 << 20))
    assert by_ratio.status == REJECTED and "bomb.zip" in by_ratio.reason and "zip bomb" in by_ratio.reason
    [by_total] = run(con, settings, [path], zip_limits=ZipLimits(max_total_bytes=20 << 20))
    assert by_total.status == REJECTED and "limit" in by_total.reason
    [fine] = run(con, settings, [path])                     # default limits: 30 MB is allowed
    assert fine.status == REJECTED and "cannot decode" in fine.reason   # ...but it is no image
    assert data_files(settings) == [] and count(con, "image_groups") == 0


def lying_bomb(path: Path) -> Path:
    """``bomb`` whose central directory declares 1000 bytes for the 30 MB member."""
    bomb(path, 30)
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, raw.rfind(b"PK\x01\x02") + 24, 1000)
    path.write_bytes(bytes(raw))
    return path


def test_zip_whose_header_lies_about_size_is_rejected(con, settings, tmp_path):
    path = lying_bomb(tmp_path / "liar.zip")
    [result] = run(con, settings, [path], zip_limits=ZipLimits(ratio_floor_bytes=10 << 20))
    assert result.status == REJECTED and "liar.zip" in result.reason
    assert data_files(settings) == [] and count(con, "frames") == 0


# --- manifests --------------------------------------------------------------------------------

def test_manifest_registers_videos_images_and_groups(con, settings, disc_video, tmp_path):
    media_dir = tmp_path / "bucket"
    media_dir.mkdir()
    shutil.copy(disc_video, media_dir / "case1.mp4")
    second = write_disc_video(media_dir / "case2.mkv", 10, height=64, width=96, codec="mpeg4", seed=3)
    for k in range(4):
        write_png(media_dir / f"still{k}.png", seed=20 + k)
    manifest = {
        "videos": [
            {"objectUrl": "bucket/case1.mp4", "title": "Case 1",
             "clientMetadata": {"site": "A", "$encord": {"frames": {"40": {"note": "polyp"}, "5": {}}}}},
            {"objectUrl": second.as_uri(), "clientMetadata": {"$encord": {"frames": [9, 2, 2]}}},
            {"objectUrl": "bucket/nothere.mp4", "title": "missing"},
            {"objectUrl": "bucket/still3.png", "title": "a picture is no video"},
        ],
        "images": [
            {"objectUrl": "bucket/still0.png", "title": "first", "clientMetadata": {"view": "cecum"}},
            {"objectUrl": str(media_dir / "still1.png")},
            {"objectUrl": "bucket/lost.png"},
        ],
        "image_groups": [
            {"title": "pair", "objectUrl_1": "bucket/still3.png", "objectUrl_0": "bucket/still2.png",
             "clientMetadata": {"batch": 7}},
        ],
        "skip_duplicate_urls": True,
    }
    path = tmp_path / "registration.json"
    path.write_text(json.dumps(manifest))
    results = run(con, settings, [path])
    assert [(r.path, r.kind, r.status) for r in results] == [
        ("bucket/case1.mp4", ItemKind.VIDEO, IMPORTED),
        (second.as_uri(), ItemKind.VIDEO, IMPORTED),
        ("bucket/nothere.mp4", ItemKind.VIDEO, REJECTED),
        ("bucket/still3.png", ItemKind.VIDEO, REJECTED),
        ("bucket/still0.png", ItemKind.IMAGE, IMPORTED),
        (str(media_dir / "still1.png"), ItemKind.IMAGE, IMPORTED),
        ("bucket/lost.png", ItemKind.IMAGE, REJECTED),
        ("bucket/still2.png", ItemKind.IMAGE_GROUP, IMPORTED),
    ]
    assert "nothere.mp4" in results[2].reason and "no such file" in results[2].reason
    assert "still3.png: not a video" in results[3].reason
    assert "lost.png" in results[6].reason
    case1 = store.get_video(con, results[0].id)
    assert case1.title == "Case 1" and case1.client_metadata["site"] == "A"
    assert case1.client_metadata["$encord"] == {"frames": {"40": {"note": "polyp"}, "5": {}}}
    assert case1.client_metadata["key_frames"] == [5, 40]
    case2 = store.get_video(con, results[1].id)
    assert case2.title == "case2" and case2.client_metadata["key_frames"] == [2, 9]
    assert con.execute("SELECT source_url FROM videos ORDER BY id").fetchall() == [
        ("bucket/case1.mp4",), (second.as_uri(),)]
    images = store.get_group(con, results[4].id)
    assert (images.title, images.source, images.frame_count) == ("registration", "manifest", 2)
    assert images.client_metadata["images"][0]["clientMetadata"] == {"view": "cecum"}
    pair = store.get_group(con, results[7].id)
    assert (pair.title, pair.frame_count, pair.client_metadata["batch"]) == ("pair", 2, 7)
    assert [f.original_name for f in store.frames_of(con, group_id=pair.id)] == ["still2.png", "still3.png"]

    # registered URLs are duplicates without re-reading the files (even once they are gone)
    for name in ("case1.mp4", "still0.png", "still2.png"):
        (media_dir / name).unlink()
    files_before = data_files(settings)
    again = run(con, settings, [path])
    assert [r.status for r in again] == [DUPLICATE, DUPLICATE, REJECTED, REJECTED, DUPLICATE,
                                         DUPLICATE, REJECTED, DUPLICATE]
    assert again[0].id == results[0].id and again[4].frame_ids == results[4].frame_ids
    assert again[7].id == results[7].id
    assert data_files(settings) == files_before and count(con, "videos") == 2


def test_json_that_is_not_a_manifest(con, settings, tmp_path):
    other = tmp_path / "coco.json"
    other.write_text(json.dumps({"annotations": [], "categories": []}))
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    results = run(con, settings, [other, broken])
    assert [r.status for r in results] == [REJECTED, REJECTED]
    assert "coco.json: unknown type" in results[0].reason and "broken.json" in results[1].reason


# --- batches and all-or-nothing ---------------------------------------------------------------

def test_one_bad_file_does_not_stop_the_batch(con, settings, disc_video, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 4096)
    image = write_png(tmp_path / "view.png")
    results = run(con, settings, [bad, disc_video, tmp_path / "nope.avi", image])
    assert [r.status for r in results] == [REJECTED, IMPORTED, REJECTED, IMPORTED]
    assert [r.kind for r in results[1::2]] == [ItemKind.VIDEO, ItemKind.IMAGE]
    assert count(con, "videos") == 1 and count(con, "image_groups") == 1


def test_a_failing_item_leaves_nothing_half_written(con, settings, tmp_path, monkeypatch):
    folder = tmp_path / "series"
    for k in range(3):
        write_png(folder / f"{k}.png", seed=k)
    Image.fromarray(rgb(24, 32, 9)).save(folder / "3.tif")
    (folder / "4.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    [result] = run(con, settings, [folder])
    assert result.status == REJECTED and "4.png" in result.reason and "series" in result.reason
    assert data_files(settings) == [] and count(con, "image_groups") == 0

    # a failure inside the transaction: rows rolled back, files deleted
    (folder / "4.png").unlink()
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")
    monkeypatch.setattr(ingest.store, "insert_frames", boom)
    [result] = run(con, settings, [folder])
    assert result.status == REJECTED and "disk full" in result.reason
    assert data_files(settings) == []
    assert count(con, "image_groups") == 0 and count(con, "frames") == 0
    monkeypatch.undo()
    [result] = run(con, settings, [folder])
    assert result.status == IMPORTED and store.get_group(con, result.id).frame_count == 4


# --- server-side import roots -----------------------------------------------------------------

OUTSIDE = "outside the allowed import folders"


def test_default_import_root_is_the_inbox(settings):
    assert not (settings.data_dir / "inbox").exists()
    assert ingest.default_import_roots(settings) == [settings.data_dir / "inbox"]
    assert (settings.data_dir / "inbox").is_dir()


def test_paths_outside_the_roots_are_rejected_unread(con, settings, tmp_path):
    [inbox] = ingest.default_import_roots(settings)
    inside = write_png(inbox / "inside.png", seed=1)
    outside = write_png(tmp_path / "secret" / "outside.png", seed=2)
    (inbox / "link.png").symlink_to(outside)                     # a symlink out of the inbox
    (inbox / "dirlink").symlink_to(outside.parent, target_is_directory=True)
    sneaky = f"{inbox}/../../secret/outside.png"                  # .. out of the inbox
    paths = [inside, outside, inbox / "link.png", inbox / "dirlink", sneaky,
             tmp_path / "does-not-exist.mp4", inbox / "gone.mp4"]
    results = run(con, settings, paths, roots=[inbox])
    assert [r.status for r in results] == [IMPORTED] + [REJECTED] * 6
    for result, path in zip(results[1:6], paths[1:6]):
        assert result.reason.startswith(f"{path} is {OUTSIDE}") and str(inbox) in result.reason
    assert "no such file" in results[6].reason                    # inside the inbox: says so
    assert count(con, "frames") == 1 and store.frames_of(con, group_id=results[0].id)[0].original_name == "inside.png"
    assert run(con, settings, [outside])[0].status == IMPORTED     # roots=None: the CLI's way


def test_no_roots_allow_nothing(con, settings):
    [inbox] = ingest.default_import_roots(settings)
    [result] = run(con, settings, [write_png(inbox / "a.png")], roots=[])
    assert result.status == REJECTED and OUTSIDE in result.reason


def test_folder_with_a_symlink_out_of_the_roots_is_rejected(con, settings, tmp_path):
    [inbox] = ingest.default_import_roots(settings)
    folder = inbox / "series"
    write_png(folder / "1.png", seed=1)
    (folder / "2.png").symlink_to(write_png(tmp_path / "private.png", seed=2))
    [result] = run(con, settings, [folder], roots=[inbox])
    assert result.status == REJECTED
    assert result.reason == (f"series: {folder / '2.png'} is {OUTSIDE} ({inbox})")
    assert data_files(settings) == [] and count(con, "image_groups") == 0
    (folder / "2.png").unlink()
    write_png(folder / "2.png", seed=2)
    [result] = run(con, settings, [folder], roots=[inbox])
    assert result.status == IMPORTED and store.get_group(con, result.id).frame_count == 2


def test_manifest_references_must_stay_in_the_roots(con, settings, tmp_path, disc_video):
    [inbox] = ingest.default_import_roots(settings)
    write_png(inbox / "batch" / "ok.png", seed=1)
    elsewhere = write_png(tmp_path / "elsewhere" / "x.png", seed=2)
    manifest = inbox / "batch" / "m.json"
    manifest.write_text(json.dumps({
        "videos": [{"objectUrl": str(disc_video)}, {"objectUrl": "https://example.org/v.mp4"}],
        "images": [{"objectUrl": "ok.png"}, {"objectUrl": str(elsewhere)},
                   {"objectUrl": elsewhere.as_uri()}, {"objectUrl": "../../../../../etc/passwd"},
                   {"objectUrl": "../../../elsewhere/x.png"}],
    }))
    results = run(con, settings, [manifest], roots=[inbox])
    assert [r.status for r in results] == [REJECTED, REJECTED, IMPORTED] + [REJECTED] * 4
    assert results[0].reason.startswith(f"m.json: videos[0]: {disc_video} is {OUTSIDE}")
    assert "nothing is downloaded" in results[1].reason                  # as without roots
    for result, url in zip(results[3:], [str(elsewhere), elsewhere.as_uri(),
                                         "../../../../../etc/passwd", "../../../elsewhere/x.png"]):
        assert result.reason.startswith(f"m.json: images[") and f"{url} is {OUTSIDE}" in result.reason
    assert count(con, "videos") == 0 and count(con, "frames") == 1


# --- disk full / read-only --------------------------------------------------------------------

@contextmanager
def file_size_limit(limit: int):
    """RLIMIT_FSIZE: writes past ``limit`` bytes fail with EFBIG (Python ignores SIGXFSZ)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def snapshot(con, settings) -> tuple:
    return (data_files(settings), count(con, "videos"), count(con, "frames"),
            count(con, "image_groups"))


@pytest.fixture
def stored(con, settings, tmp_path):
    """One image stored before the failing imports; returns its frame."""
    [result] = run(con, settings, [write_png(tmp_path / "kept.png", seed=500)])
    return store.get_frame(con, result.frame_ids[0])


def still_readable(settings, frame) -> None:
    assert settings.absolute(frame.path).read_bytes() == encode_image(rgb(24, 32, 500), fmt="png")


def test_file_size_limit_rejects_each_kind_and_leaves_nothing(con, settings, tmp_path, stored,
                                                               disc_video):
    folder = tmp_path / "series"
    write_png(folder / "1.png", h=8, w=8, seed=1)               # small: fits
    write_png(folder / "2.png", h=8, w=8, seed=2)
    write_png(folder / "3.png", h=96, w=96, seed=3)             # ~27 KB: over the limit
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w") as zf:
        zf.writestr("img00000001.png", png_bytes(1, h=96, w=96))
    loose = write_png(tmp_path / "loose.png", h=96, w=96, seed=9)
    before = snapshot(con, settings)
    with file_size_limit(16 << 10):
        results = run(con, settings, [disc_video, folder, big, loose])
    assert [r.status for r in results] == [REJECTED] * 4
    for result, name in zip(results, ["disc.mp4", "series", "big.zip", "loose.png"]):
        assert result.reason.startswith(f"{name}: "), result.reason     # the file or the WAL
        assert "a file size limit was reached" in result.reason, result.reason
        assert result.reason.endswith("nothing already stored was changed")
    assert snapshot(con, settings) == before
    assert list(settings.tmp_dir.iterdir()) == [] and not any(settings.videos_dir.iterdir())
    still_readable(settings, stored)
    assert [r.status for r in run(con, settings, [disc_video, folder, big, loose])] == [IMPORTED] * 4


@pytest.mark.parametrize("number, cause", [
    (errno.ENOSPC, "the disk is full"),
    (errno.EROFS, "the data directory is on a read-only file system"),
    (errno.EACCES, "permission denied: the data directory is not writable by this process"),
])
def test_failing_writes_name_their_cause(con, settings, tmp_path, stored, monkeypatch, number, cause):
    folder = tmp_path / "series"
    for k in range(3):
        write_png(folder / f"{k}.png", seed=k)
    real_copy, copies = shutil.copyfile, []

    def half_then_fail(src, dst, **kw):                         # the third file fails half-way
        copies.append(dst)
        if len(copies) < 3:
            return real_copy(src, dst, **kw)
        Path(dst).write_bytes(Path(src).read_bytes()[:100])
        raise OSError(number, os.strerror(number), str(dst))
    before = snapshot(con, settings)
    monkeypatch.setattr(shutil, "copyfile", half_then_fail)
    [result] = run(con, settings, [folder])
    monkeypatch.undo()
    assert result.status == REJECTED and result.reason.startswith(f"series: {cause}")
    assert f"(frames/group_{stored.group_id + 1}/.tmp-" in result.reason      # relative to data/
    assert str(settings.data_dir) not in result.reason
    assert snapshot(con, settings) == before and list(settings.tmp_dir.iterdir()) == []
    still_readable(settings, stored)


def test_unreadable_source_is_a_read_error_not_a_storage_error(con, settings, tmp_path, monkeypatch):
    video = tmp_path / "locked.mp4"
    video.write_bytes(b"x" * 100)

    def denied(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))
    monkeypatch.setattr(ingest.videos.media, "sha256_file", denied)
    [result] = run(con, settings, [video])
    assert result.reason == f"locked.mp4: cannot read {video} (permission denied)"


def test_database_disk_full_and_read_only_data_dir(con, settings, tmp_path, stored, monkeypatch):
    folder = tmp_path / "series"
    write_png(folder / "0.png", seed=70)
    before = snapshot(con, settings)

    def full(*args, **kwargs):
        raise duckdb.IOException('IO Error: Could not write file "endolite.duckdb.wal": '
                                 'No space left on device')
    monkeypatch.setattr(ingest.store, "insert_frames", full)
    [result] = run(con, settings, [folder])
    assert result.reason.startswith("series: writing the database: the disk is full")
    assert snapshot(con, settings) == before
    monkeypatch.undo()

    def read_only(self):
        raise OSError(errno.EROFS, "Read-only file system", str(self.videos_dir))
    monkeypatch.setattr(type(settings), "ensure_dirs", read_only)
    results = run(con, settings, [folder, tmp_path / "other.mp4"])
    assert [r.reason for r in results] == [
        f"{name}: the data directory is on a read-only file system (videos); nothing already "
        "stored was changed" for name in ("series", "other.mp4")]
    assert snapshot(con, settings) == before
    still_readable(settings, stored)


def test_an_import_through_the_service_is_audited_once_with_what_came_in(con, settings, disc_video,
                                                                          tmp_path):
    """The service layer writes one audit entry per import: who, the ids that came in, the
    duplicates and the rejections with their reasons (ingest itself writes none)."""
    from endolite.services import Actor, Ctx
    from endolite.services import media as media_service

    ctx = Ctx(con=con, settings=settings, actor=Actor.server_shell())
    missing = tmp_path / "gone.mp4"
    results = media_service.import_server(ctx, [disc_video, disc_video, missing])
    assert [r.status for r in results] == [IMPORTED, DUPLICATE, REJECTED]
    [entry] = audit.recent(con)
    assert entry.action == "media.import_server" and entry.username.startswith("shell:")
    assert entry.details["via"] == "server shell"
    assert [(i["kind"], i["id"]) for i in entry.details["imported"]] == [("video", results[0].id)]
    assert entry.details["duplicates"] == [f"duplicate of video {results[0].id}"]
    assert "no such file" in entry.details["rejected"][0]
