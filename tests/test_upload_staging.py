"""Browser uploads: hostile file names and the staging file they are written to."""

from __future__ import annotations

import errno
import io
import os

import pytest

from endolite.errors import InvalidInput, StorageError
from endolite.ingest import discard_staging, safe_name, stage_upload
from endolite.ingest.upload import MAX_NAME_BYTES
from tests.test_ingest import file_size_limit


@pytest.mark.parametrize("name, expected", [
    ("../../x", "x"),
    ("/etc/passwd", "passwd"),
    ("..\\..\\win.ini", "win.ini"),
    ("a/b/../c.png", "c.png"),
    ("C:\\Users\\me\\polyp 1.png", "polyp 1.png"),
    ("", "upload"),
    (".", "upload"),
    ("..", "upload"),
    ("...", "upload"),
    ("folder/", "upload"),
    ("\x00.png", "upload.png"),
    (".png", "upload.png"),
    (".bashrc", "upload.bashrc"),
    ("ok\x00name\x1b[31m.jpg", "okname[31m.jpg"),
    ("evil\u202egnp.exe", "evilgnp.exe"),            # right-to-left override dropped
    ("  spaced\tout .mp4 ", "spaced out.mp4"),
    ("trailing dots.png...", "trailing dots.png"),
    ("Koloskopie Ü 7.mp4", "Koloskopie Ü 7.mp4"),
])
def test_safe_name_reduces_hostile_names(name, expected):
    assert safe_name(name) == expected


def test_safe_name_fallback_and_bytes_limit():
    assert safe_name("..", fallback="image") == "image"
    long = "a" * 300 + ".png"
    assert safe_name(long) == "a" * (MAX_NAME_BYTES - 4) + ".png"
    wide = "ü" * 300 + ".jpeg"                          # 2 bytes each: never cut inside one
    out = safe_name(wide)
    assert out.endswith(".jpeg") and len(out.encode()) <= MAX_NAME_BYTES
    assert set(out[:-5]) == {"ü"}
    odd = "x" * 50 + "." + "y" * 290                    # an "extension" too long to keep
    assert len(safe_name(odd).encode()) == MAX_NAME_BYTES and safe_name(odd).startswith("x" * 50)


@pytest.mark.parametrize("name", ["../../x", "/etc/passwd", "..\\..\\win.ini", "a/b/../c.png", "",
                                  ".", "..", "\x00.png", "n" * 300 + ".mp4"])
def test_stage_upload_stays_in_its_own_staging_folder(settings, name):
    settings.ensure_dirs()
    data = os.urandom(3000)
    path = stage_upload(settings, name, io.BytesIO(data), chunk=1024)
    folder = path.parent
    assert folder.parent == settings.tmp_dir and folder.name.startswith("upload-")
    assert path.resolve().is_relative_to(settings.tmp_dir.resolve())
    assert path.name == safe_name(name) and path.read_bytes() == data
    assert [p.name for p in folder.iterdir()] == [path.name]          # no .part left
    discard_staging(path)
    assert not folder.exists() and list(settings.tmp_dir.iterdir()) == []
    discard_staging(path)                                             # already gone: fine


def test_stage_upload_reads_from_the_start_and_makes_tmp(settings):
    source = io.BytesIO(b"abcdef")
    source.read(3)                                      # a page already peeked at it
    path = stage_upload(settings, "clip.mp4", source)   # tmp/ does not exist yet
    assert path.read_bytes() == b"abcdef"
    other = stage_upload(settings, "clip.mp4", io.BytesIO(b"x"))
    assert other.parent != path.parent                  # every upload gets its own folder


def test_stage_upload_size_limit_and_bad_source_leave_nothing(settings):
    with pytest.raises(InvalidInput, match=r"big\.mp4: larger than the 10 byte limit"):
        stage_upload(settings, "big.mp4", io.BytesIO(b"x" * 11), max_bytes=10)

    class Text:
        def read(self, n=-1):
            return "not bytes"
    with pytest.raises(InvalidInput, match="did not yield bytes"):
        stage_upload(settings, "t.png", Text())
    assert list(settings.tmp_dir.iterdir()) == []


def test_stage_upload_disk_full_is_a_storage_error_and_leaves_nothing(settings, monkeypatch):
    settings.ensure_dirs()
    with file_size_limit(4096), pytest.raises(StorageError, match="clip.mp4: a file size limit"):
        stage_upload(settings, "clip.mp4", io.BytesIO(os.urandom(10_000)), chunk=1024)
    assert list(settings.tmp_dir.iterdir()) == []

    real_replace = os.replace

    def read_only(src, dst):
        raise OSError(errno.EROFS, "Read-only file system", str(dst))
    monkeypatch.setattr(os, "replace", read_only)
    with pytest.raises(StorageError, match="read-only file system"):
        stage_upload(settings, "clip.mp4", io.BytesIO(b"data"))
    monkeypatch.setattr(os, "replace", real_replace)
    assert list(settings.tmp_dir.iterdir()) == []


def test_discard_staging_refuses_other_folders(settings, tmp_path):
    victim = tmp_path / "important"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    for path in (victim / "keep.txt", victim, settings.data_dir):
        with pytest.raises(InvalidInput, match="not an upload staging folder"):
            discard_staging(path)
    assert (victim / "keep.txt").read_text() == "keep"
