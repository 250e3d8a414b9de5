"""The login gate, first-admin setup, and the label / user / library pages (AppTest)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from endolite import auth
from endolite.services import users as user_service
from tests.support import make_user, page
from endolite.records import Role
from endolite.storage import connect, labels, users

TIMEOUT = 60
ROOT = Path(__file__).resolve().parents[1]


def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)


def test_fresh_data_dir_asks_for_setup_code_and_creates_admin(app_env):
    at = _app().run()
    assert "Welcome to endolite" in at.title[0].value
    code_file = app_env.setup_code_path
    assert code_file.exists(), "the server must write the one-time code beside the database"
    code = code_file.read_text().strip()

    at.text_input(key="setup_code").input("not-the-code")
    at.text_input(key="setup_name").input("ada")
    at.text_input(key="setup_password").input("correct horse")
    at.button[0].click().run()
    assert any("wrong setup code" in e.value for e in at.error)

    at.text_input(key="setup_code").input(code)
    at.button[0].click().run()
    assert not at.exception
    admin = users.get_by_name(connect(app_env), "ada")
    assert at.session_state["user_id"] == admin.id and admin.role == Role.ADMIN
    assert not code_file.exists(), "the setup code is single-use"
    assert "Library" in [t.value for t in at.title]


def test_login_rejects_wrong_password_and_accepts_right_one(app_env):
    con = connect(app_env)
    bob = make_user(con, "bob", Role.ANNOTATOR, "pw-of-bob-123")
    at = _app().run()
    assert "log in" in at.title[0].value
    at.text_input(key="login_name").input("bob")
    at.text_input(key="login_password").input("wrong-password")
    at.button[0].click().run()
    assert any("wrong password" in e.value for e in at.error)
    at.text_input(key="login_password").input("pw-of-bob-123")
    at.button[0].click().run()
    assert at.session_state["user_id"] == bob.id
    assert "Library" in [t.value for t in at.title]


def test_password_is_stored_only_as_salted_hash(settings):
    con = connect(settings)
    make_user(con, "carol", Role.LEAD, "s3cret-pass", weak=False)
    make_user(con, "dave", Role.LEAD, "s3cret-pass", weak=False)
    stored = [r[0] for r in con.execute("SELECT password_hash FROM users ORDER BY id").fetchall()]
    assert all("s3cret-pass" not in s and s.startswith("scrypt$131072$") for s in stored)
    assert stored[0] != stored[1], "same password, different salt"
    assert user_service.login(con, "carol", "s3cret-pass").role == Role.LEAD


def _page(path: str, user) -> AppTest:
    return page(path, user)


def test_labels_page_adds_and_renames_labels(app_env):
    con = connect(app_env)
    lead = make_user(con, "lena", Role.LEAD, "lead-pass-1")
    at = _page("views/labels.py", lead).run()
    at.text_input(key="label_name").input("polyp")
    at.selectbox(key="label_kind").select("pathology")
    at.button[0].click().run()
    assert not at.exception
    label = labels.get_by_name(con, "polyp")
    assert label.kind == "pathology" and label.created_by == "lena"

    at.selectbox(key="label_target").select("polyp")
    at.text_input(key="label_new_name").input("adenoma")
    at.button[1].click().run()
    assert labels.get(con, label.id).name == "adenoma"


def test_users_page_is_admin_only_and_creates_users(app_env):
    con = connect(app_env)
    admin = make_user(con, "root", Role.ADMIN, "admin-pass-1")
    annotator = make_user(con, "ann", Role.ANNOTATOR, "ann-pass-12")

    at = _page("views/users.py", annotator).run()
    assert any("for admin" in e.value for e in at.error)

    at = _page("views/users.py", admin).run()
    at.text_input(key="user_name").input("newbie")
    at.selectbox(key="user_role").select("annotator")
    at.text_input(key="user_password").input("short")
    at.button[0].click().run()
    assert any("at least" in e.value for e in at.error)
    assert users.get_by_name(con, "newbie", missing_ok=True) is None
    at.text_input(key="user_name").input("newbie")
    at.text_input(key="user_password").input("long-enough-pw")
    at.button[0].click().run()
    assert users.get_by_name(con, "newbie").created_by == "root"


def test_library_lists_groups_and_videos_with_their_frames(app_env, tmp_path, disc_video):
    import numpy as np

    from endolite.ingest import ingest_paths
    from endolite.media import write_image_atomic

    con = connect(app_env)
    lead = make_user(con, "lena", Role.LEAD, "lead-pass-1")
    at = _page("views/library.py", lead).run()
    assert not at.exception
    assert "No videos yet." in [i.value for i in at.info]
    assert "No image groups yet." in [i.value for i in at.info]

    folder = tmp_path / "polyps"
    folder.mkdir()
    for n in range(3):
        write_image_atomic(folder / f"img{n}.png", np.full((32, 48, 3), 60 * n, np.uint8), fmt="png")
    [group] = ingest_paths(con, app_env, [folder], user="lena")
    [video] = ingest_paths(con, app_env, [disc_video], user="lena")
    at = _page("views/library.py", lead).run()
    assert not at.exception
    assert [m.value for m in at.metric] == ["1", "1"]
    group_table = next(d.value for d in at.dataframe if "source" in d.value.columns)
    assert list(group_table["frame_count"]) == [3]
    assert at.selectbox(key="lib_group").options == ["polyps"]
    assert at.selectbox(key="lib_group").value == group.id
    assert at.selectbox(key="lib_video").value == video.id
    images = at.get("image")
    assert len(images) == 3, "the chosen group's three frames as thumbnails"
    captions = sorted(img.proto.imgs[0].caption.split(": ", 1)[1] for img in images)
    assert captions == ["img0.png", "img1.png", "img2.png"]


HOSTILE = ["<b>html</b>", "<img src=x onerror=alert(1)>", "**bold** _it_ :red[x]",
           "'; DROP TABLE labels; --"]


def test_user_text_shows_as_typed_never_as_html_or_markdown(app_env):
    """Label names with HTML, markdown or SQL in them are stored and shown exactly as typed."""
    con = connect(app_env)
    lead = make_user(con, "lena", Role.LEAD, "lead-pass-1")
    at = _page("views/labels.py", lead).run()
    for name in HOSTILE:
        at.text_input(key="label_name").input(name)
        at.button[0].click().run()
        assert not at.exception
    assert sorted(lb.name for lb in labels.list_all(con)) == sorted(HOSTILE)
    at.text_input(key="label_name").input(HOSTILE[0])
    at.button[0].click().run()
    [error] = at.error
    assert "\\<b\\>html\\</b\\>" in error.value, "the name in the message is escaped markdown"


def test_session_ends_when_deactivated_demoted_or_idle(app_env):
    from endolite.services import Actor, Ctx
    from endolite.services import settings as app_settings

    con = connect(app_env)
    admin = make_user(con, "root", Role.ADMIN, "admin-pass-1")
    lead = make_user(con, "lena", Role.LEAD, "lead-pass-1")
    ctx = Ctx(con=con, settings=app_env, actor=Actor.of(admin))
    at = page("views/benchmark.py", lead).run()
    assert "Benchmark" in [t.value for t in at.title]
    user_service.set_role(ctx, "lena", Role.ANNOTATOR)
    at.run()
    assert "Benchmark" not in [t.value for t in at.title], "the demotion counts at the next rerun"
    assert any("for admin / lead" in e.value for e in at.error)

    user_service.set_role(ctx, "lena", Role.LEAD)
    at = page("app.py", lead).run()
    assert "Library" in [t.value for t in at.title]
    user_service.set_active(ctx, "lena", False)
    at.run()
    assert "Library" not in [t.value for t in at.title] and "user_id" not in at.session_state
    assert audit_actions(con)[-1] == "session_ended"

    user_service.set_active(ctx, "lena", True)
    app_settings.set_idle_minutes(ctx, 1)
    at = page("app.py", lead).run()
    assert "Library" in [t.value for t in at.title]
    at.session_state["user_seen"] = user_service.now(con).replace(year=2000)
    at.run()
    assert "Library" not in [t.value for t in at.title] and "user_id" not in at.session_state, \
        "idle past the timeout: logged out"


def audit_actions(con) -> list[str]:
    return [r[0] for r in con.execute("SELECT action FROM audit_log ORDER BY id").fetchall()]
