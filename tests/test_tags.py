"""Frame tags: the repository (idempotent add, remove, reads), the service (own tags for
annotators, anyone's for leads, audit entries, name rules), the ``endolite tag`` CLI, and the
tag control of the annotation page and the library's tag / near-duplicate filters (AppTest)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from endolite.errors import InvalidInput, NotFound, PermissionDenied
from endolite.ingest import ingest_paths
from endolite.media import write_image_atomic
from endolite.records import LabelKind, Role
from endolite.services import Actor, Ctx
from endolite.services import tags as tag_service
from endolite.storage import audit, connect, labels, media
from endolite.storage import tags as store
from tests.support import make_user, page


def _group(con, settings, folder: Path, pictures: list[np.ndarray]) -> list:
    """Ingest ``pictures`` ((H, W, 3) uint8) as an image group; returns its frames in order."""
    folder.mkdir(parents=True)
    for i, picture in enumerate(pictures):
        write_image_atomic(folder / f"img{i}.png", picture, fmt="png")
    [group] = ingest_paths(con, settings, [folder], user="t")
    return media.frames_of(con, group_id=group.id)


def _noise(seed: int, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.kron(small, np.ones((size // 8, size // 8, 1), dtype=np.uint8))


@pytest.fixture
def frames(con, settings, tmp_path):
    return _group(con, settings, tmp_path / "g", [_noise(i) for i in range(3)])


def _ctx(con, settings, name: str, role: Role = Role.ANNOTATOR) -> Ctx:
    return Ctx(con=con, settings=settings, actor=Actor(name=name, role=role))


def _rows(con) -> list[tuple]:
    return con.execute("SELECT frame_id, tag, username FROM frame_tags ORDER BY id").fetchall()


# --- repository -------------------------------------------------------------------------------

def test_repository_add_is_idempotent_and_reads_by_frame_sequence_and_name(con, settings, tmp_path,
                                                                           frames):
    a, b, c = (f.id for f in frames)
    assert store.add(con, a, "reviewed", username="ann") is True
    assert store.add(con, a, "reviewed", username="ann") is False          # same user: no new row
    assert store.add(con, a, "reviewed", username="bob") is True           # another user's own
    assert store.add(con, b, "accepted", username="ann") is True
    assert len(_rows(con)) == 3

    got = store.tags_of(con, [a, b, c])
    assert set(got) == {a, b}, "frames without tags are absent"
    assert [(t.tag, t.username) for t in got[a]] == [("reviewed", "ann"), ("reviewed", "bob")]
    assert [(t.tag, t.username) for t in got[b]] == [("accepted", "ann")]
    assert store.tags_of(con, []) == {}

    group_id = frames[0].group_id
    other = _group(con, settings, tmp_path / "other", [_noise(9)])
    store.add(con, other[0].id, "reviewed", username="ann")
    assert store.frames_with_tag(con, "reviewed") == [a, other[0].id]
    assert store.frames_with_tag(con, "reviewed", group_id=group_id) == [a]
    assert store.frames_with_tag(con, "reviewed", group_id=group_id, username="bob") == [a]
    assert store.frames_with_tag(con, None, group_id=group_id) == [a, b]
    assert store.frames_with_tag(con, "nope") == []
    with pytest.raises(InvalidInput, match="not both"):
        store.frames_with_tag(con, "reviewed", video_id=1, group_id=group_id)
    assert store.tag_names(con) == ["accepted", "reviewed"]
    assert store.tag_counts(con, group_id=group_id) == {"accepted": 1, "reviewed": 1}

    assert store.remove(con, a, "reviewed", username="ann") is True
    assert store.remove(con, a, "reviewed", username="ann") is False
    assert [(t.tag, t.username) for t in store.tags_of(con, [a])[a]] == [("reviewed", "bob")]


# --- service ----------------------------------------------------------------------------------

def test_add_is_idempotent_and_audited_once(con, settings, frames):
    fid = frames[0].id
    ann = _ctx(con, settings, "ann")
    assert tag_service.add_tag(ann, fid, "  needs-second-look ") is True     # stored stripped
    assert tag_service.add_tag(ann, fid, "needs-second-look") is False
    assert _rows(con) == [(fid, "needs-second-look", "ann")]
    [entry] = audit.recent(con, action="frame.tag")
    assert (entry.username, entry.entity, entry.entity_id) == ("ann", "frame", fid)
    assert entry.details == {"op": "add", "tag": "needs-second-look", "username": "ann"}
    with pytest.raises(NotFound, match="no frame with id 4242"):
        tag_service.add_tag(ann, 4242, "reviewed")


def test_annotator_may_not_remove_anothers_tag_a_lead_may(con, settings, frames):
    fid = frames[0].id
    tag_service.add_tag(_ctx(con, settings, "bob"), fid, "accepted")
    before = _rows(con)
    with pytest.raises(PermissionDenied, match="ann .annotator. may not frame.tag on records of bob"):
        tag_service.remove_tag(_ctx(con, settings, "ann"), fid, "accepted", username="bob")
    assert _rows(con) == before, "a refused removal changes nothing"
    [denied] = audit.recent(con, action="denied")
    assert (denied.username, denied.entity) == ("ann", "frame.tag")

    # ann's own tag is hers to remove; removing a tag nobody set is NotFound
    tag_service.add_tag(_ctx(con, settings, "ann"), fid, "reviewed")
    tag_service.remove_tag(_ctx(con, settings, "ann"), fid, "reviewed")
    with pytest.raises(NotFound, match="no tag 'reviewed' set by ann"):
        tag_service.remove_tag(_ctx(con, settings, "ann"), fid, "reviewed")

    lena = _ctx(con, settings, "lena", Role.LEAD)
    tag_service.remove_tag(lena, fid, "accepted", username="bob")
    assert _rows(con) == []
    removal = audit.recent(con, action="frame.tag")[0]
    assert removal.username == "lena"
    assert removal.details == {"op": "remove", "tag": "accepted", "username": "bob"}


@pytest.mark.parametrize("bad, message", [
    ("", "tag '': empty"),
    ("   ", "tag '   ': empty"),
    ("x" * 41, f"tag '{'x' * 41}': 41 characters; at most 40"),
    ("a/b", "tag 'a/b': '/' not allowed"),
    ("<b>x</b>", "tag '<b>x</b>': '/<>' not allowed"),
    ("drop;", "tag 'drop;': ';' not allowed"),
])
def test_bad_tag_names_are_refused_naming_the_tag(con, settings, frames, bad, message):
    with pytest.raises(InvalidInput) as err:
        tag_service.add_tag(_ctx(con, settings, "ann"), frames[0].id, bad)
    assert message in str(err.value)
    assert _rows(con) == []


def test_good_names_and_the_defaults():
    assert tag_service.clean_tag(" Ünïcode_ok-1 2 ") == "Ünïcode_ok-1 2"
    assert tag_service.clean_tag("x" * 40) == "x" * 40
    assert tag_service.DEFAULT_TAGS == ("reviewed", "accepted", "needs-second-look")
    assert all(tag_service.clean_tag(t) == t for t in tag_service.DEFAULT_TAGS)


def test_set_own_tags_changes_only_the_actors_tags(con, settings, frames):
    fid = frames[0].id
    tag_service.add_tag(_ctx(con, settings, "bob"), fid, "reviewed")
    ann = _ctx(con, settings, "ann")
    assert tag_service.set_own_tags(ann, fid, ["reviewed", "accepted"]) == (["reviewed", "accepted"], [])
    assert tag_service.set_own_tags(ann, fid, ["accepted", " accepted"]) == ([], ["reviewed"])
    assert sorted(_rows(con)) == [(fid, "accepted", "ann"), (fid, "reviewed", "bob")]
    with pytest.raises(InvalidInput, match="'a/b'"):
        tag_service.set_own_tags(ann, fid, ["a/b"])
    assert sorted(_rows(con)) == [(fid, "accepted", "ann"), (fid, "reviewed", "bob")]


# --- CLI --------------------------------------------------------------------------------------

def test_cli_round_trip(settings, tmp_path, capsys):
    from endolite.cli import main

    con = connect(settings)
    make_user(con, "ann", Role.ANNOTATOR)
    make_user(con, "bob", Role.ANNOTATOR)
    make_user(con, "lena", Role.LEAD)
    fa, fb = (f.id for f in _group(con, settings, tmp_path / "g", [_noise(0), _noise(1)]))
    group_id = media.get_frame(con, fa).group_id
    con.close()                                          # the CLI opens the database itself

    def run(*argv, user=None):
        code = main(["--data", str(settings.data_dir), "--json",
                     *(["--user", user] if user else []), *map(str, argv)])
        out, err = capsys.readouterr()
        return code, (json.loads(out) if out.strip() else None), err

    code, doc, _ = run("tag", "add", fa, "reviewed", user="ann")
    assert code == 0 and doc == {"frame_id": fa, "tag": "reviewed", "username": "ann", "added": True}
    assert run("tag", "add", fa, "reviewed", user="ann")[1]["added"] is False
    run("tag", "add", fb, "needs-second-look", user="bob")
    code, rows, _ = run("tag", "list", "--group", group_id)
    assert code == 0
    assert [(r["frame_id"], r["tag"], r["username"]) for r in rows] == [
        (fa, "reviewed", "ann"), (fb, "needs-second-look", "bob")]
    assert [r["frame_id"] for r in run("tag", "list", "--tag", "reviewed")[1]] == [fa]
    assert run("tag", "list", "--video", 999)[1] == []

    code, doc, err = run("tag", "remove", fb, "needs-second-look", "--of", "bob", user="ann")
    assert code == 2 and "ann (annotator) may not frame.tag on records of bob" in err
    code, doc, err = run("tag", "add", fa, "bad/name", user="ann")
    assert code == 2 and "tag 'bad/name'" in err
    code, doc, _ = run("tag", "remove", fb, "needs-second-look", "--of", "bob", user="lena")
    assert code == 0 and doc == {"frame_id": fb, "tag": "needs-second-look", "username": "bob",
                                 "removed": True}
    code, doc, err = run("tag", "remove", fb, "needs-second-look", "--of", "bob", user="lena")
    assert code == 2 and "no tag 'needs-second-look' set by bob" in err
    assert [(r["frame_id"], r["tag"]) for r in run("tag", "list")[1]] == [(fa, "reviewed")]

    con = connect(settings)
    entries = [(e.username, e.details["op"], e.details["username"])
               for e in audit.recent(con, action="frame.tag")][::-1]
    assert entries == [("ann", "add", "ann"), ("bob", "add", "bob"), ("lena", "remove", "bob")]
    con.close()


# --- pages ------------------------------------------------------------------------------------

def _annotate_setup(app_env, tmp_path):
    con = connect(app_env)
    ann = make_user(con, "ann", Role.ANNOTATOR)
    labels.add(con, "polyp", kind=LabelKind.PATHOLOGY, color="#ff0000")
    frames = _group(con, app_env, tmp_path / "seq", [_noise(i) for i in range(3)])
    return con, ann, frames


def test_annotate_page_tag_control(app_env, tmp_path):
    con, ann, frames = _annotate_setup(app_env, tmp_path)
    fid = frames[0].id
    store.add(con, fid, "<b>bob's</b>", username="bob")    # a stored name with HTML: escaped
    at = page("views/annotate.py", ann).run()
    assert not at.exception, at.exception
    assert any(e.label == "Tags (1)" for e in at.expander)
    assert any("bob" in c.value and "\\<b\\>" in c.value for c in at.caption), "who set it, escaped"
    tags = at.multiselect(key=f"ann_tags_{fid}")
    assert tags.value == [] and set(tag_service.DEFAULT_TAGS) <= set(tags.options)
    assert not [s for s in at.selectbox if s.key == f"ann_tag_other_{fid}"], "annotators: own tags only"

    tags.set_value(["reviewed", "my own tag"]).run()
    assert not at.exception, at.exception
    assert sorted(_rows(con)) == [(fid, "<b>bob's</b>", "bob"), (fid, "my own tag", "ann"),
                                  (fid, "reviewed", "ann")]
    at.multiselect(key=f"ann_tags_{fid}").set_value(["my own tag"]).run()
    assert sorted(r for r in _rows(con) if r[2] == "ann") == [(fid, "my own tag", "ann")]

    at.multiselect(key=f"ann_tags_{fid}").set_value(["my own tag", "bad/name"]).run()
    assert any("bad/name" in e.value for e in at.error), "the refused name is named"
    assert at.multiselect(key=f"ann_tags_{fid}").value == ["my own tag"]
    assert sorted(r for r in _rows(con) if r[2] == "ann") == [(fid, "my own tag", "ann")]

    # a lead removes ann's tag elsewhere: ann's open page does not put it back
    lead = make_user(con, "lena", Role.LEAD)
    tag_service.remove_tag(_ctx(con, app_env, "lena", Role.LEAD), fid, "my own tag", username="ann")
    at.run()
    assert not at.exception
    assert at.multiselect(key=f"ann_tags_{fid}").value == []
    assert [r for r in _rows(con) if r[2] == "ann"] == []

    # the lead sees others' tags and may remove one
    at = page("views/annotate.py", lead).run()
    assert at.selectbox(key=f"ann_tag_other_{fid}").value.username == "bob"
    at.button(key=f"ann_tag_rm_{fid}").click().run()
    assert not at.exception, at.exception
    assert _rows(con) == []
    assert audit.recent(con, action="frame.tag")[0].username == "lena"


def _shown_ids(at) -> list[int]:
    return [int(img.proto.imgs[0].caption.split(":", 1)[0]) for img in at.get("image")]


def test_library_filters_by_tag_and_near_duplicates(app_env, tmp_path):
    con = connect(app_env)
    lead = make_user(con, "lena", Role.LEAD)
    base, other = _noise(1), _noise(2)
    brighter = np.clip(base.astype(int) + 6, 0, 255).astype(np.uint8)    # a near-duplicate
    frames = _group(con, app_env, tmp_path / "g", [base, other, brighter, _noise(3)])
    ids = [f.id for f in frames]
    tag_service.add_tag(_ctx(con, app_env, "ann"), ids[1], "reviewed")
    tag_service.add_tag(_ctx(con, app_env, "bob"), ids[1], "reviewed")
    tag_service.add_tag(_ctx(con, app_env, "ann"), ids[2], "accepted")

    at = page("views/library.py", lead).run()
    assert not at.exception, at.exception
    assert _shown_ids(at) == ids
    tag_box = at.selectbox(key="lib_group_tag")
    assert tag_box.options == ["any or none", "accepted (1)", "reviewed (1)"]
    tag_box.select("reviewed").run()
    assert not at.exception, at.exception
    assert _shown_ids(at) == [ids[1]]

    at.selectbox(key="lib_group_tag").select(None)
    at.toggle(key="lib_group_near").set_value(True).run()
    assert not at.exception, at.exception
    assert _shown_ids(at) == [ids[0], ids[2]]
    assert any("2 frames in 1 near-duplicate groups" in c.value for c in at.caption)
    at.selectbox(key="lib_group_tag").select("accepted").run()
    assert _shown_ids(at) == [], "the tag filter leaves one of the pair: no near-duplicate left"
    at.selectbox(key="lib_group_tag").select(None)
    at.slider(key="lib_group_bits").set_value(0).run()       # a brightness shift: equal hashes
    assert not at.exception
    assert _shown_ids(at) == [ids[0], ids[2]]


def test_library_shows_one_visual_cluster_at_a_time(app_env, tmp_path):
    con = connect(app_env)
    lead = make_user(con, "lena", Role.LEAD)
    dark = [np.full((48, 64, 3), v, np.uint8) for v in (10, 14)]
    light = [np.full((48, 64, 3), v, np.uint8) for v in (240, 236, 232)]
    frames = _group(con, app_env, tmp_path / "c", [dark[0], light[0], dark[1], light[1], light[2]])
    ids = [f.id for f in frames]
    at = page("views/library.py", lead).run()
    at.number_input(key="lib_group_k").set_value(2).run()
    assert not at.exception, at.exception
    box = at.selectbox(key="lib_group_cluster")
    assert box.options == ["cluster 0 (2 frames)", "cluster 1 (3 frames)"]
    assert _shown_ids(at) == [ids[0], ids[2]]                 # the first frame's cluster: dark
    box.select(1).run()
    assert _shown_ids(at) == [ids[1], ids[3], ids[4]]


def test_library_tags_frames_of_the_page_shown(app_env, tmp_path):
    con = connect(app_env)
    ann = make_user(con, "ann", Role.ANNOTATOR)
    frames = _group(con, app_env, tmp_path / "t", [_noise(5), _noise(6), _noise(7)])
    ids = [f.id for f in frames]
    at = page("views/library.py", ann).run()
    key = f"lib_group_{frames[0].group_id}"
    at.multiselect(key=f"{key}_tag_ids").select(ids[0]).select(ids[2])
    at.text_input(key=f"{key}_tag_new").input("needs polyp review")
    next(b for b in at.button if b.label == "Tag them").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Tagged 2 frame" in s.value for s in at.success)
    assert sorted(r for r in _rows(con)) == [(ids[0], "needs polyp review", "ann"),
                                             (ids[2], "needs polyp review", "ann")]
    at.selectbox(key="lib_group_tag").select("needs polyp review").run()
    assert _shown_ids(at) == [ids[0], ids[2]]
