"""The ``endolite`` command, run as a real subprocess (``python -m endolite.cli``) on a data
directory in tmp: exit codes, ``--json`` documents, plain lines, and one-line errors on stderr.

Without ``--user`` the commands act as the server's shell user (admin rights); tests that act as
a named user create that user first with ``endolite user add``.
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from endolite.config import Settings
from endolite.errors import AuthError
from endolite.media import encode_image, sha256_file, write_image_atomic
from endolite.services import users as users_service
from endolite.storage import connect
from endolite.storage import media as media_store
from endolite.synthetic import disc_mask, moving_disc_frames

ROOT = Path(__file__).resolve().parents[1]
H, W = 90, 120


def cli(data: Path, *args, as_json: bool = False, user: str | None = None,
        stdin: str = "") -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "endolite.cli", "--data", str(data)]
    if as_json:
        argv.append("--json")
    if user:
        argv += ["--user", user]
    env = dict(os.environ)
    env.pop("ENDOLITE_DATA", None)
    env.pop("ENDOLITE_USER", None)
    return subprocess.run([*argv, *map(str, args)], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


def ok(data: Path, *args, **kw):
    """Run a command that must succeed; returns its parsed JSON output."""
    r = cli(data, *args, as_json=True, **kw)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def failed(r: subprocess.CompletedProcess, *, code: int = 2) -> str:
    """Assert a clean failure (exit code, ``error:`` line, no traceback); returns stderr."""
    assert r.returncode == code, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    assert r.stderr.startswith("error: ")
    return r.stderr


def add_users(data: Path, *users: tuple[str, str]) -> None:
    """Create ``(name, role)`` users as the shell user; the first must be an admin."""
    for name, role in users:
        ok(data, "user", "add", name, "--role", role, stdin=f"{name}-password\n")


def audit_rows(data: Path, action: str) -> list[tuple]:
    """(username, entity_id, details) of the audit entries with this action, oldest first."""
    with db(data) as con:
        return con.execute("SELECT username, entity_id, details FROM audit_log WHERE action = ? "
                           "ORDER BY id", [action]).fetchall()


@contextmanager
def db(data: Path):
    con = connect(Settings.resolve(data))
    try:
        yield con
    finally:
        con.close()


def count(data: Path, table: str) -> int:
    with db(data) as con:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def png_folder(folder: Path, n: int = 2, seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        (folder / f"img_{i}.png").write_bytes(
            encode_image(rng.integers(0, 255, size=(H, W, 3), dtype=np.uint8), fmt="png"))
    return folder


def mask_png(path: Path, mask: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_image((mask * 255).astype(np.uint8), fmt="png"))
    return path


def l_shape() -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[10:40, 70:115] = True
    mask[60, 5] = True
    return mask


def rle_array(entry: dict) -> np.ndarray:
    rle = entry["rle"]
    return coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)


def ingest_group(data: Path, folder: Path) -> tuple[int, list[dict]]:
    [res] = ok(data, "ingest", folder)
    return res["id"], ok(data, "frames", "--group", res["id"])


def ingest_video(data: Path, video: Path) -> int:
    [res] = ok(data, "ingest", video)
    return res["id"]


def store_video_frames(data: Path, video_id: int, numbers: list[int]) -> dict[int, int]:
    """Frame rows + files for frame numbers of the synthetic disc video (as an extraction would
    store them); returns frame number -> frame id."""
    settings = Settings.resolve(data)
    with db(data) as con:
        video = media_store.get_video(con, video_id)
        pictures = [f for f, _ in moving_disc_frames(max(numbers) + 1, height=video.height, width=video.width)]
        ids = media_store.reserve_frame_ids(con, len(numbers))
        rows = []
        for fid, n in zip(ids, numbers):
            target = settings.video_frames_dir(video_id) / f"frame_{fid}.png"
            write_image_atomic(target, pictures[n], fmt="png")
            rows.append({"id": fid, "video_id": video_id, "group_id": None, "frame_number": n,
                         "timestamp": n / video.fps, "path": settings.relative(target),
                         "original_name": None, "original_path": None, "width": video.width,
                         "height": video.height, "sha256": sha256_file(target), "is_context": False,
                         "parent_id": None, "extraction_id": None, "created_by": "tester"})
        media_store.insert_frames(con, rows)
    return dict(zip(numbers, ids))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


# --- ingest / frames / extract ----------------------------------------------------------------

def test_ingest_reports_every_input_and_exits_1_on_a_rejection(data, tmp_path, disc_video):
    folder = png_folder(tmp_path / "shots")
    bad = tmp_path / "notes.txt"
    bad.write_text("not media at all\n")

    r = cli(data, "ingest", disc_video, folder, bad, as_json=True)
    assert r.returncode == 1, r.stderr
    video, group, rejected = json.loads(r.stdout)
    assert [video["path"], group["path"], rejected["path"]] == [str(disc_video), str(folder), str(bad)]
    assert (video["kind"], video["status"], video["reason"]) == ("video", "imported", None)
    assert isinstance(video["id"], int)
    assert (group["kind"], group["status"], len(group["frame_ids"])) == ("image_group", "imported", 2)
    assert (rejected["status"], rejected["id"]) == ("rejected", None)
    assert "notes.txt" in rejected["reason"] and "unknown type" in rejected["reason"]

    again = cli(data, "ingest", disc_video, folder, as_json=True)
    assert again.returncode == 0, again.stderr
    dup_video, dup_group = json.loads(again.stdout)
    assert (dup_video["status"], dup_video["id"]) == ("duplicate", video["id"])
    assert dup_video["reason"] == f"duplicate of video {video['id']}"
    assert (dup_group["status"], dup_group["id"]) == ("duplicate", group["id"])

    plain = cli(data, "ingest", disc_video, bad)
    assert plain.returncode == 1
    lines = plain.stdout.splitlines()
    assert lines[0].startswith("duplicate") and str(disc_video) in lines[0]
    assert lines[1].startswith("rejected") and "notes.txt: unknown type" in lines[1]
    assert ok(data, "videos")[0]["id"] == video["id"] and len(ok(data, "videos")) == 1


def test_frames_of_a_group_show_original_names(data, tmp_path):
    group_id, frames = ingest_group(data, png_folder(tmp_path / "shots"))
    assert [f["original_name"] for f in frames] == ["img_0.png", "img_1.png"]
    assert [f["frame_number"] for f in frames] == [0, 1]
    assert all(f["timestamp"] is None and f["is_context"] is False for f in frames)
    assert all((data / f["path"]).is_file() for f in frames)
    lines = cli(data, "frames", "--group", group_id).stdout.splitlines()
    assert len(lines) == 2 and lines[0].endswith("(img_0.png)") and lines[1].endswith("(img_1.png)")
    [group] = ok(data, "groups")
    assert (group["id"], group["frame_count"]) == (group_id, 2)


def test_extract_picks_frames_with_context_and_frames_lists_them(data, disc_video):
    pytest.importorskip("endolite.extract")
    video_id = ingest_video(data, disc_video)
    result = ok(data, "extract", video_id, "--method", "uniform", "--count", "5", "--context", "1")
    picked = {f["id"]: f["frame_number"] for f in result["picked"]}
    context = {f["id"]: f for f in result["context"]}
    assert result["video_id"] == video_id and len(picked) == 5
    assert 0 < len(context) <= 10 and not set(picked) & set(context)
    for f in context.values():
        assert f["parent_id"] in picked and abs(f["frame_number"] - picked[f["parent_id"]]) == 1

    frames = ok(data, "frames", "--video", video_id)
    assert {f["id"] for f in frames} == set(picked) | set(context)
    for f in frames:
        assert f["is_context"] == (f["id"] in context)
        assert f["timestamp"] == pytest.approx(f["frame_number"] / 25, abs=1e-3)
        assert (data / f["path"]).is_file()
    assert [f["frame_number"] for f in frames] == sorted(f["frame_number"] for f in frames)


# --- users and labels -------------------------------------------------------------------------

def test_user_add_reads_password_from_stdin_and_refuses_a_taken_name(data):
    code = cli(data, "setup-code")
    assert code.returncode == 0 and len(code.stdout.strip()) == 16
    setup_code = Settings.resolve(data).setup_code_path
    assert setup_code.is_file()

    err = failed(cli(data, "user", "add", "bob", "--role", "annotator", stdin="long enough pw\n"))
    assert "the first user of a data directory must be an admin" in err
    assert setup_code.is_file() and ok(data, "user", "list") == []

    root = ok(data, "user", "add", "root", "--role", "admin", stdin="admin password\n")
    assert (root["name"], root["role"]) == ("root", "admin")
    assert not setup_code.exists(), "the first admin retires the setup code"
    user = ok(data, "user", "add", "bob", "--role", "annotator", stdin="long enough pw\n")
    assert (user["name"], user["role"]) == ("bob", "annotator")
    with db(data) as con:
        assert users_service.login(con, "bob", "long enough pw").name == "bob"

    err = failed(cli(data, "user", "add", "bob", "--role", "lead", stdin="another password\n"))
    assert err.strip() == "error: user 'bob' already exists"
    err = failed(cli(data, "user", "add", "carl", "--role", "lead", stdin="short\n"))
    assert "at least 8 characters" in err
    assert [(u["name"], u["role"]) for u in ok(data, "user", "list")] == [("root", "admin"), ("bob", "annotator")]
    assert failed(cli(data, "setup-code")).startswith("error: setup is done already")
    shell = f"shell:{getpass.getuser()}"
    assert [(who, d["name"], d["role"]) for who, _, d in
            [(u, i, json.loads(x)) for u, i, x in audit_rows(data, "user.add")]] == [
        (shell, "root", "admin"), (shell, "bob", "annotator")]


def test_user_passwd_role_deactivate_activate(data):
    add_users(data, ("root", "admin"), ("bob", "annotator"))

    ok(data, "user", "passwd", "bob", stdin="reset by admin\n")          # the shell user resets
    with db(data) as con:
        assert users_service.login(con, "bob", "reset by admin").name == "bob"
        with pytest.raises(AuthError):
            users_service.login(con, "bob", "bob-password")
    # one's own: the current password first, then the new one
    ok(data, "user", "passwd", "bob", user="bob", stdin="reset by admin\nchosen by bob\n")
    err = failed(cli(data, "user", "passwd", "bob", user="bob", stdin="not the password\nwhatever pw\n"))
    assert "the current password is wrong" in err
    err = failed(cli(data, "user", "passwd", "root", user="bob", stdin="taken over\n"))
    assert "bob (annotator) may not user.reset_password" in err
    with db(data) as con:
        assert users_service.login(con, "bob", "chosen by bob").name == "bob"
        assert users_service.login(con, "root", "root-password").name == "root"

    assert ok(data, "user", "role", "bob", "lead")["role"] == "lead"
    assert ok(data, "label", "add", "polyp", user="bob")["name"] == "polyp"   # a lead may
    assert ok(data, "user", "deactivate", "bob", user="root")["active"] is False
    err = failed(cli(data, "label", "add", "cecum", user="bob"))
    assert "--user bob: no active user of that name" in err
    assert cli(data, "user", "list").stdout.splitlines()[1].endswith("bob (lead) deactivated")
    assert ok(data, "user", "activate", "bob")["active"] is True
    assert ok(data, "label", "add", "cecum", user="bob")["name"] == "cecum"

    assert "only active admin" in failed(cli(data, "user", "deactivate", "root"))
    assert "only active admin" in failed(cli(data, "user", "role", "root", "lead"))
    assert [(u["name"], u["role"], u["active"]) for u in ok(data, "user", "list")] == [
        ("root", "admin", True), ("bob", "lead", True)]
    shell = f"shell:{getpass.getuser()}"
    assert [(who, json.loads(d)) for who, _, d in audit_rows(data, "user.role")] == [
        (shell, {"before": "annotator", "after": "lead", "via": "server shell"})]
    assert [(who, json.loads(d)["active"]) for who, _, d in audit_rows(data, "user.active")] == [
        ("root", False), (shell, True)]
    assert [who for who, _, _ in audit_rows(data, "user.password_change")] == ["bob"]
    assert [who for who, _, _ in audit_rows(data, "user.reset_password")] == [shell]


def test_label_add_list_rename_recolor(data):
    made = ok(data, "label", "add", "polyp", "--kind", "pathology", "--color", "#FF0000")
    assert (made["name"], made["kind"], made["color"]) == ("polyp", "pathology", "#ff0000")
    assert made["allowed"] == ["mask", "box", "frame_label", "segment"]
    plain = cli(data, "label", "add", "cecum", "--kind", "landmark")
    assert plain.returncode == 0 and plain.stdout.startswith("label cecum (landmark, #")

    renamed = ok(data, "label", "rename", "polyp", "adenoma")
    assert (renamed["id"], renamed["name"]) == (made["id"], "adenoma")
    recolored = ok(data, "label", "recolor", "adenoma", "#00aa00")
    assert (recolored["id"], recolored["color"]) == (made["id"], "#00aa00")
    listed = {lb["name"]: (lb["id"], lb["kind"], lb["color"]) for lb in ok(data, "label", "list")}
    assert listed["adenoma"] == (made["id"], "pathology", "#00aa00") and "polyp" not in listed
    assert set(listed) == {"adenoma", "cecum"}

    assert "already exists" in failed(cli(data, "label", "add", "cecum"))
    assert "already exists" in failed(cli(data, "label", "rename", "cecum", "adenoma"))
    assert "no label named 'polyp'" in failed(cli(data, "label", "recolor", "polyp", "#000000"))
    assert "use #RRGGBB" in failed(cli(data, "label", "recolor", "cecum", "red"))


# --- masks ------------------------------------------------------------------------------------

def test_mask_import_and_masks_listing_by_frame_group_video_annotator(data, tmp_path, disc_video):
    group_id, frames = ingest_group(data, png_folder(tmp_path / "shots"))
    ok(data, "label", "add", "polyp")
    disc = disc_mask(H, W, 30, 60, 12)
    files = [mask_png(tmp_path / "m" / "img_0.png", l_shape()), mask_png(tmp_path / "m" / "img_1.png", disc),
             mask_png(tmp_path / "m" / "stray.png", disc)]

    r = cli(data, "mask", "import", *files, "--label", "polyp", "--annotator", "ann", as_json=True)
    assert r.returncode == 1, r.stderr
    results = json.loads(r.stdout)
    assert [x["status"] for x in results] == ["imported", "imported", "rejected"]
    assert [x["frame_id"] for x in results[:2]] == [f["id"] for f in frames]
    assert "no frame named stray" in results[2]["reason"]

    [m] = ok(data, "masks", "--frame", frames[0]["id"])
    assert (m["frame_id"], m["label"], m["annotator"], m["source"]) == (frames[0]["id"], "polyp", "ann", "import")
    assert m["rle"]["size"] == [H, W] and isinstance(m["rle"]["counts"], str)
    assert np.array_equal(rle_array(m), l_shape())
    assert m["area"] == int(l_shape().sum()) and m["bbox"] == [5, 10, 110, 51]
    in_group = ok(data, "masks", "--group", group_id)
    assert [x["frame_id"] for x in in_group] == [f["id"] for f in frames]
    assert np.array_equal(rle_array(in_group[1]), disc)
    assert len(ok(data, "masks", "--group", group_id, "--annotator", "ann")) == 2
    assert ok(data, "masks", "--group", group_id, "--annotator", "zed") == []
    plain = cli(data, "masks", "--group", group_id).stdout.splitlines()
    assert len(plain) == 2 and "polyp" in plain[0] and f"area={int(disc.sum())}" in plain[1]

    video_id = ingest_video(data, disc_video)
    ids = store_video_frames(data, video_id, [3, 8])
    truth = disc_mask(144, 192, 100, 70, 20)
    named = mask_png(tmp_path / "vm" / f"frame_{ids[8]}.png", truth)
    assert ok(data, "mask", "import", named, "--label", "polyp", "--annotator", "gold")[0]["status"] == "imported"
    [vm] = ok(data, "masks", "--video", video_id)
    assert (vm["frame_id"], vm["annotator"], vm["rle"]["size"]) == (ids[8], "gold", [144, 192])
    assert np.array_equal(rle_array(vm), truth)
    assert ok(data, "masks", "--video", video_id, "--annotator", "ann") == []
    assert len(ok(data, "masks", "--video", video_id, "--annotator", "gold")) == 1


# --- frame labels and segments ----------------------------------------------------------------

def test_frame_label_set_overwrite_and_errors(data, tmp_path):
    _, frames = ingest_group(data, png_folder(tmp_path / "shots"))
    fid = frames[0]["id"]
    ok(data, "label", "add", "polyp")
    ok(data, "label", "add", "bbps", "--kind", "quality")

    rows = ok(data, "frame-label", fid, "--set", "polyp=1", "--set", "bbps=unknown:2.5", "--annotator", "ann")
    assert [(x["frame_id"], x["label"], x["value"], x["float_value"], x["annotator"]) for x in rows] == [
        (fid, "polyp", "present", None, "ann"), (fid, "bbps", "unknown", 2.5, "ann")]
    again = cli(data, "frame-label", fid, "--set", "polyp=0", "--annotator", "ann")
    assert again.returncode == 0 and again.stdout.strip() == f"frame {fid}: polyp=absent"
    add_users(data, ("root", "admin"), ("carol", "annotator"))
    [carol] = ok(data, "frame-label", fid, "--set", "polyp=yes", user="carol")
    assert carol["annotator"] == "carol"
    err = failed(cli(data, "frame-label", fid, "--set", "polyp=1", "--annotator", "ann", user="carol"))
    assert "carol (annotator) may not frame_label.set on records of ann" in err
    with db(data) as con:
        got = con.execute("SELECT annotator, value FROM frame_labels f JOIN labels l ON l.id = f.label_id "
                          "WHERE l.name = 'polyp' ORDER BY annotator").fetchall()
    assert got == [("ann", "absent"), ("carol", "present")]

    # several values after one --set
    rows = ok(data, "frame-label", fid, "--set", "polyp=1", "bbps=0", "--annotator", "ann")
    assert [(x["label"], x["value"], x["annotator"]) for x in rows] == [
        ("polyp", "present", "ann"), ("bbps", "absent", "ann")]
    [(who, details)] = [(w, json.loads(d)) for w, _, d in audit_rows(data, "frame_label.set")
                        if json.loads(d)["annotator"] == "carol"]
    assert who == "carol" and details["values"] == {"polyp": "present"}

    assert "use 1, 0 or unknown" in failed(cli(data, "frame-label", fid, "--set", "polyp=maybe"))
    assert "use LABEL=1" in failed(cli(data, "frame-label", fid, "--set", "polyp"))
    assert "no label named 'nope'" in failed(cli(data, "frame-label", fid, "--set", "nope=1"))
    assert "no frame with id 999" in failed(cli(data, "frame-label", 999, "--set", "polyp=1"))
    assert count(data, "frame_labels") == 3


def test_segment_add_and_materialize_dry_run_then_real_then_nothing(data, disc_video):
    video_id = ingest_video(data, disc_video)
    ok(data, "label", "add", "polyp")
    store_video_frames(data, video_id, list(range(5, 50)))   # frames 5..49 extracted
    seg = ok(data, "segment", "add", video_id, "--label", "polyp", "--start", 10, "--end", 20, "--annotator", "ann")
    assert (seg["video_id"], seg["start_frame"], seg["end_frame"], seg["for_export"]) == (video_id, 10, 20, True)
    plain = cli(data, "segment", "add", video_id, "--label", "polyp", "--start", 15, "--end", 25,
                "--annotator", "ann")
    assert plain.returncode == 0 and plain.stdout.strip().endswith("polyp frames [15, 25)")
    err = failed(cli(data, "segment", "add", video_id, "--label", "polyp", "--start", 95, "--end", 101))
    assert "past the video's end: at most 100" in err
    assert "0 <= start < end" in failed(cli(data, "segment", "add", video_id, "--label", "polyp",
                                            "--start", 5, "--end", 5))
    assert "no video with id 999" in failed(cli(data, "segment", "add", 999, "--label", "polyp",
                                                "--start", 0, "--end", 1))
    assert [(s["start_frame"], s["end_frame"]) for s in ok(data, "segment", "list", video_id)] == [(10, 20), (15, 25)]

    # [10, 20) and [15, 25) of one annotator: frames 10..24, end exclusive
    dry = cli(data, "segment", "materialize", video_id, "--dry-run")
    assert dry.returncode == 0 and dry.stdout.strip() == "would create 15 frame-label rows"
    assert count(data, "frame_labels") == 0
    real = cli(data, "segment", "materialize", video_id)
    assert real.returncode == 0 and real.stdout.strip() == "created 15 frame-label rows"
    assert count(data, "frame_labels") == 15
    assert ok(data, "segment", "materialize", video_id) == {"video_id": video_id, "dry_run": False, "rows": 0}
    assert ok(data, "segment", "materialize", video_id, "--dry-run")["rows"] == 0
    assert count(data, "frame_labels") == 15

    # a segment marked not for export is skipped until it is marked again
    late = ok(data, "segment", "add", video_id, "--label", "polyp", "--start", 40, "--end", 45)
    off = ok(data, "segment", "export", late["id"], "off")
    assert (off["id"], off["for_export"]) == (late["id"], False)
    assert cli(data, "segment", "list", video_id).stdout.splitlines()[2].endswith("(not exported)")
    assert ok(data, "segment", "materialize", video_id)["rows"] == 0
    on = cli(data, "segment", "export", late["id"], "on")
    assert on.returncode == 0 and on.stdout.strip() == f"segment {late['id']}: exported"
    assert ok(data, "segment", "materialize", video_id)["rows"] == 5
    assert count(data, "frame_labels") == 20
    flips = [(json.loads(d)["before"], json.loads(d)["after"]) for _, i, d in
             audit_rows(data, "segment.export_flag") if i == late["id"]]
    assert flips == [(True, False), (False, True)]
    assert "no segment with id 999" in failed(cli(data, "segment", "export", 999, "on"))


# --- a database held by another process -------------------------------------------------------

def test_command_while_another_process_holds_the_database_fails_cleanly(data):
    with db(data):
        r = cli(data, "label", "list")
        err = failed(r)
        assert f"in use by process {os.getpid()}" in err and r.stdout == ""
        as_json = cli(data, "label", "list", as_json=True)
        assert as_json.returncode == 2
        assert json.loads(as_json.stdout)["type"] == "DatabaseBusy"
    assert cli(data, "label", "list").returncode == 0
