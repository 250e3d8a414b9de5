"""Credentials and sessions against a real database: scrypt hashes (N >= 2^17, weaker ones
upgraded at login), one answer for every failed login, throttling per user name and per client,
sessions re-read on every rerun (deactivation, idle timeout, role changes), the one-time setup
code, and the last active admin.

Users that the test does not log in as are stored with a cheap hash (N = 2^10): each real
scrypt costs about half a second.  The CLI's side of the setup code (``endolite user add`` on a
fresh data directory) is in tests/test_cli.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from endolite import auth
from endolite.errors import AuthError, InvalidInput
from endolite.records import Role
from endolite.services import Actor, Ctx
from endolite.services import settings as settings_service
from endolite.services import users as service
from endolite.storage import users

SAME_ANSWER = "unknown user or wrong password"


def scrypt_n(stored: str) -> int:
    scheme, n, *_ = stored.split("$")
    assert scheme == "scrypt"
    return int(n)


def stored_hash(con, name: str) -> str:
    return con.execute("SELECT password_hash FROM users WHERE name = ?", [name]).fetchone()[0]


def add(con, name: str, role: Role = Role.ANNOTATOR, password: str | None = None, *, n: int = 2**10):
    return users.add(con, name, role, auth.hash_password(password or f"{name}-password", n=n))


def admin_ctx(con, settings, name: str = "root") -> Ctx:
    return Ctx(con=con, settings=settings, actor=Actor(name=name, role=Role.ADMIN))


def audit_actions(con, username: str) -> list[str]:
    return [r[0] for r in con.execute("SELECT action FROM audit_log WHERE username = ? ORDER BY id",
                                      [username]).fetchall()]


# --- hashes -------------------------------------------------------------------------------------

def test_new_hashes_are_salted_scrypt_with_n_of_at_least_2_17(con, settings):
    add(con, "root", Role.ADMIN)
    made = service.add_user(admin_ctx(con, settings), "ann", Role.ANNOTATOR, "ann's password")
    stored = stored_hash(con, "ann")
    assert scrypt_n(stored) >= 2**17 and not auth.needs_rehash(stored)
    assert "ann's password" not in stored
    cheap = [auth.hash_password("ann's password", n=2**10) for _ in range(2)]
    assert cheap[0] != cheap[1], "a fresh salt each time"
    assert service.login(con, "ann", "ann's password").id == made.id
    assert stored_hash(con, "ann") == stored, "a current hash is not rewritten at login"


def test_an_old_weaker_hash_is_upgraded_at_the_next_successful_login(con):
    add(con, "ann", password="old enough pw", n=2**14)
    old = stored_hash(con, "ann")
    assert scrypt_n(old) == 2**14 and auth.needs_rehash(old)

    with pytest.raises(AuthError):
        service.login(con, "ann", "wrong password")
    assert stored_hash(con, "ann") == old, "a failed login upgrades nothing"
    assert service.login(con, "ann", "old enough pw").name == "ann"
    new = stored_hash(con, "ann")
    assert new != old and scrypt_n(new) >= 2**17
    assert service.login(con, "ann", "old enough pw").name == "ann"


# --- logins -------------------------------------------------------------------------------------

def test_unknown_user_wrong_password_and_deactivated_user_get_the_same_answer(con, settings):
    add(con, "root", Role.ADMIN)
    add(con, "ann", password="ann-password")
    add(con, "gone", password="gone-password")
    service.set_active(admin_ctx(con, settings), "gone", False)

    answers = []
    for name, password, client in (("ghost", "whatever-pw", "c1"), ("ann", "not her password", "c2"),
                                   ("gone", "gone-password", "c3")):
        with pytest.raises(AuthError) as failed:
            service.login(con, name, password, client=client)
        answers.append(str(failed.value))
    assert answers == [SAME_ANSWER] * 3
    assert [audit_actions(con, n) for n in ("ghost", "ann", "gone")] == [["login.failed"]] * 3


def test_five_failures_throttle_the_user_name_even_for_the_right_password(con):
    add(con, "ann", password="ann-password")
    add(con, "bob", password="bob-password")
    for i in range(auth.FREE_FAILURES):
        with pytest.raises(AuthError, match=SAME_ANSWER):
            service.login(con, "ann", f"guess {i}", client=f"laptop{i}")
    before = stored_hash(con, "ann")
    attempts = con.execute("SELECT count(*) FROM login_attempts").fetchone()[0]

    with pytest.raises(AuthError, match="too many failed logins"):
        service.login(con, "ann", "ann-password", client="elsewhere")     # right, from a new client
    # the password was not checked: no attempt recorded, and the weak hash was not upgraded
    assert con.execute("SELECT count(*) FROM login_attempts").fetchone()[0] == attempts
    assert stored_hash(con, "ann") == before
    [throttled] = con.execute("SELECT details FROM audit_log WHERE action = 'login.throttled' "
                              "AND username = 'ann'").fetchall()
    assert '"client": "elsewhere"' in throttled[0]
    # another user name is not throttled: its password is checked
    with pytest.raises(AuthError, match=SAME_ANSWER):
        service.login(con, "bob", "not bob's", client="elsewhere")


def test_repeated_failures_throttle_the_client_across_user_names(con):
    for i in range(auth.FREE_FAILURES_CLIENT):
        add(con, f"user{i}")
    add(con, "dora", password="dora-password")
    for i in range(auth.FREE_FAILURES_CLIENT):
        with pytest.raises(AuthError, match=SAME_ANSWER):
            service.login(con, f"user{i}", "a guess", client="10.0.0.66")

    with pytest.raises(AuthError, match="too many failed logins"):
        service.login(con, "dora", "dora-password", client="10.0.0.66")
    assert audit_actions(con, "dora") == ["login.throttled"]
    # the same user from another client is not held back
    assert service.login(con, "dora", "dora-password", client="10.0.0.7").name == "dora"
    assert audit_actions(con, "dora") == ["login.throttled", "login"]


# --- sessions -----------------------------------------------------------------------------------

def test_a_deactivated_user_loses_the_session_and_cannot_log_in(con, settings):
    add(con, "root", Role.ADMIN)
    ann = add(con, "ann", password="ann-password")
    now = service.now(con)
    assert service.session_user(con, ann.id, last_seen=now).name == "ann"

    service.set_active(admin_ctx(con, settings), "ann", False)
    assert service.session_user(con, ann.id, last_seen=now) is None
    with pytest.raises(AuthError, match=SAME_ANSWER):
        service.login(con, "ann", "ann-password")
    service.set_active(admin_ctx(con, settings), "ann", True)
    assert service.session_user(con, ann.id, last_seen=now).active
    assert service.session_user(con, 4242, last_seen=now) is None, "a user that is gone"


def test_a_session_idle_past_the_timeout_ends(con, settings):
    add(con, "root", Role.ADMIN)
    ann = add(con, "ann")
    settings_service.set_idle_minutes(admin_ctx(con, settings), 10)
    now = service.now(con)
    assert service.session_user(con, ann.id, last_seen=now - timedelta(minutes=9)).name == "ann"
    assert service.session_user(con, ann.id, last_seen=now - timedelta(minutes=11)) is None
    settings_service.set_idle_minutes(admin_ctx(con, settings), 0)           # 0: never
    assert service.session_user(con, ann.id, last_seen=now - timedelta(days=3)).name == "ann"
    with pytest.raises(InvalidInput):
        settings_service.set_idle_minutes(admin_ctx(con, settings), -1)


def test_a_role_change_shows_at_the_next_rerun(con, settings):
    add(con, "root", Role.ADMIN)
    lena = add(con, "lena", Role.LEAD)
    now = service.now(con)
    assert service.session_user(con, lena.id, last_seen=now).role == Role.LEAD
    service.set_role(admin_ctx(con, settings), "lena", Role.ANNOTATOR)
    assert service.session_user(con, lena.id, last_seen=now).role == Role.ANNOTATOR


# --- setup code and admins ----------------------------------------------------------------------

def test_only_creating_the_first_admin_consumes_the_setup_code(con, settings):
    code = auth.ensure_setup_code(settings)
    assert auth.ensure_setup_code(settings) == code, "one code until it is used"
    shell = Ctx(con=con, settings=settings, actor=Actor.server_shell())
    with pytest.raises(InvalidInput, match="must be an admin"):
        service.add_user(shell, "bob", Role.ANNOTATOR, "bob-password")
    with pytest.raises(AuthError, match="wrong setup code"):
        service.create_first_admin(con, settings, code="0" * 16, name="mallory", password="mallory-pw")
    assert settings.setup_code_path.is_file() and users.count(con) == 0

    admin = service.create_first_admin(con, settings, code=f" {code}\n", name="root",
                                       password="root-password")
    assert admin.role == Role.ADMIN and not settings.setup_code_path.exists()
    with pytest.raises(AuthError, match="setup is already done"):
        service.create_first_admin(con, settings, code=code, name="eve", password="eve-password")
    assert [u.name for u in users.list_all(con)] == ["root"]
    assert audit_actions(con, "root") == ["user.add"]


def test_the_last_active_admin_cannot_be_deactivated_or_demoted(con, settings):
    add(con, "root", Role.ADMIN)
    add(con, "ada", Role.ADMIN)
    root = admin_ctx(con, settings)
    service.set_active(root, "ada", False)             # another admin, but deactivated
    for change in (lambda: service.set_active(root, "root", False),
                   lambda: service.set_role(root, "root", Role.LEAD)):
        with pytest.raises(InvalidInput, match="root is the only active admin"):
            change()
    assert (users.get_by_name(con, "root").role, users.get_by_name(con, "root").active) == (Role.ADMIN, True)

    service.set_active(root, "ada", True)              # with a second active admin it works
    assert service.set_role(root, "root", Role.LEAD).role == Role.LEAD
    with pytest.raises(InvalidInput, match="ada is the only active admin"):
        service.set_active(admin_ctx(con, settings, "ada"), "ada", False)
    assert users.count_admins(con) == 1
