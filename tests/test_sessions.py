"""Browser sessions that survive a reload (services.users start_session / resume_session /
session_user, storage.sessions) and the cookie routes (endolite.session_cookie): only the
token's sha256 is stored; logout, deactivation and password changes revoke; idle, expired,
tampered or unknown tokens sign nobody in; the cookie is HttpOnly, SameSite=Strict, Secure
behind https, and a one-time code sets it once."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from endolite import auth, session_cookie
from endolite.records import Role
from endolite.services import Actor, Ctx
from endolite.services import settings as settings_service
from endolite.services import users as service
from endolite.storage import sessions
from tests.support import make_user


@pytest.fixture
def people(con, settings):
    admin = make_user(con, "root", Role.ADMIN, "admin-pass-1")
    ann = make_user(con, "ann", Role.ANNOTATOR, "ann-password")
    return Ctx(con=con, settings=settings, actor=Actor.of(admin)), ann


def actions(con) -> list[tuple[str, str | None, str]]:
    return [(a, u, d) for a, u, d in con.execute(
        "SELECT action, username, details FROM audit_log ORDER BY id").fetchall()]


def test_issue_stores_only_the_digest_and_resume_signs_in(con, people):
    _, ann = people
    sid, token = service.start_session(con, ann, client="10.0.0.7")
    stored = con.execute("SELECT * FROM sessions").fetchall()
    assert len(stored) == 1 and not any(token in str(v) for v in stored[0])
    assert sessions.get(con, sid).client == "10.0.0.7"
    user, resumed = service.resume_session(con, token, client="10.0.0.7")
    assert (user.id, resumed) == (ann.id, sid)
    action, who, details = actions(con)[-1]
    assert (action, who) == ("session.resume", "ann") and f'"session": {sid}' in details
    assert service.session_user(con, ann.id, last_seen=None, session_id=sid) == ann


def test_logout_revokes_so_a_copied_cookie_stops_working(con, people):
    _, ann = people
    sid, token = service.start_session(con, ann)
    other_sid, other = service.start_session(con, ann)            # a second browser
    service.logout(con, ann, session_id=sid)
    assert service.resume_session(con, token) is None
    assert service.session_user(con, ann.id, last_seen=None, session_id=sid) is None
    assert actions(con)[-1][0] == "session.rejected" and "revoked (logout)" in actions(con)[-1][2]
    assert service.resume_session(con, other)[1] == other_sid, "logout ends this session only"


def test_idle_and_absolute_expiry(con, people):
    ctx, ann = people
    settings_service.set_idle_minutes(ctx, 5)
    sid, token = service.start_session(con, ann)
    con.execute("UPDATE sessions SET last_seen = last_seen - INTERVAL 6 MINUTE WHERE id = ?", [sid])
    assert service.session_user(con, ann.id, last_seen=None, session_id=sid) is None
    assert service.resume_session(con, token) is None
    assert "idle" in actions(con)[-1][2]

    settings_service.set_idle_minutes(ctx, 0)                       # never idle: still alive
    assert service.resume_session(con, token)[1] == sid

    con.execute("UPDATE sessions SET expires_at = current_localtimestamp() - INTERVAL 1 SECOND "
                "WHERE id = ?", [sid])
    assert service.resume_session(con, token) is None and "expired" in actions(con)[-1][2]
    assert auth.SESSION_LIFETIME.total_seconds() > 0


def test_session_user_touches_last_seen_at_most_every_so_often(con, people):
    _, ann = people
    sid, _token = service.start_session(con, ann)
    con.execute("UPDATE sessions SET last_seen = last_seen - INTERVAL 1 MINUTE WHERE id = ?", [sid])
    before = sessions.get(con, sid).last_seen
    assert service.session_user(con, ann.id, last_seen=None, session_id=sid) == ann
    touched = sessions.get(con, sid).last_seen
    assert touched > before
    service.session_user(con, ann.id, last_seen=None, session_id=sid)
    assert sessions.get(con, sid).last_seen == touched, "within SESSION_TOUCH: no write"


def test_deactivating_a_user_ends_their_sessions_for_good(con, people):
    ctx, ann = people
    sid, token = service.start_session(con, ann)
    service.set_active(ctx, "ann", False)
    assert service.resume_session(con, token) is None
    assert service.session_user(con, ann.id, last_seen=None, session_id=sid) is None
    service.set_active(ctx, "ann", True)
    assert service.resume_session(con, token) is None, "reactivation does not revive old cookies"
    assert sessions.get(con, sid).revoked_why == "deactivated"


def test_password_change_ends_other_sessions_and_reset_ends_all(con, people, settings):
    ctx, ann = people
    here, here_token = service.start_session(con, ann)
    _, elsewhere = service.start_session(con, ann)
    own = Ctx(con=con, settings=settings, actor=Actor.of(ann))
    service.change_password(own, "ann-password", "new-ann-password", keep_session=here)
    assert service.resume_session(con, elsewhere) is None
    assert service.resume_session(con, here_token)[1] == here, "the tab that changed it stays"
    service.reset_password(ctx, "ann", "reset-ann-password")
    assert service.resume_session(con, here_token) is None
    assert '"sessions_ended": 1' in [d for a, _u, d in actions(con)
                                     if a == "user.reset_password"][-1]


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),      # one character changed
    lambda t: t[:-1],                                        # truncated
    lambda t: t + "x",                                       # extended
    lambda t: t.replace(t[5], "%"),                          # not base64url
    lambda t: "",
])
def test_tampered_tokens_are_refused(con, people, mangle):
    _, ann = people
    service.start_session(con, ann)
    _, token = service.start_session(con, ann)
    assert service.resume_session(con, mangle(token)) is None
    assert actions(con)[-1][:2] == ("session.rejected", None)


def test_token_digest_shape():
    token = auth.new_session_token()
    assert len(token) == 43 and len(auth.token_digest(token)) == 64
    assert auth.token_digest("a" * 42) is None and auth.token_digest(None) is None


# --- the cookie routes ------------------------------------------------------------------------

@pytest.fixture
def client():
    return TestClient(Starlette(routes=session_cookie.routes()))


def test_a_code_sets_an_httponly_strict_cookie_once(client):
    code = session_cookie.issue_code("T" * 43)
    reply = client.post(f"/session/start?code={code}")
    assert reply.status_code == 204
    cookie = reply.headers["set-cookie"]
    assert cookie.startswith(f"{auth.SESSION_COOKIE}={'T' * 43};")
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=strict" in lowered and "path=/" in lowered
    assert "secure" not in lowered, "plain http on localhost: no Secure flag"
    assert f"max-age={int(auth.SESSION_LIFETIME.total_seconds())}" in lowered
    assert client.post(f"/session/start?code={code}").status_code == 404, "single use"
    assert client.get(f"/session/start?code={code}").status_code == 405, "POST only"


def test_secure_behind_https_proxy_and_unknown_or_expired_codes(client):
    code = session_cookie.issue_code("U" * 43)
    reply = client.post(f"/session/start?code={code}", headers={"X-Forwarded-Proto": "https"})
    assert "secure" in reply.headers["set-cookie"].lower()
    assert client.post("/session/start?code=nope").status_code == 404
    stale = session_cookie.issue_code("V" * 43, ttl_s=-1)
    assert client.post(f"/session/start?code={stale}").status_code == 404


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_requests_from_other_sites_are_refused(client, site):
    code = session_cookie.issue_code("W" * 43)
    reply = client.post(f"/session/start?code={code}", headers={"Sec-Fetch-Site": site})
    assert reply.status_code == 403 and "set-cookie" not in reply.headers
    assert client.post("/session/end", headers={"Sec-Fetch-Site": site}).status_code == 403
    ok = client.post(f"/session/start?code={code}", headers={"Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 204, "a refused request does not use the code up"


def test_end_clears_the_cookie(client):
    reply = client.post("/session/end")
    cookie = reply.headers["set-cookie"].lower()
    assert reply.status_code == 204 and cookie.startswith(f"{auth.SESSION_COOKIE}=")
    assert "max-age=0" in cookie and "httponly" in cookie


# --- the login page (AppTest: no cookies, no routes; the session row still comes and goes) ------

def test_app_login_starts_a_session_and_logout_revokes_it(app_env):
    from streamlit.testing.v1 import AppTest

    from endolite.storage import connect
    from tests.support import ROOT

    con = connect(app_env)
    make_user(con, "bob", Role.ANNOTATOR, "pw-of-bob-123")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.text_input(key="login_name").input("bob")
    at.text_input(key="login_password").input("pw-of-bob-123")
    at.button[0].click().run()
    sid = at.session_state["session_id"]
    row = sessions.get(con, sid)
    assert row.revoked_at is None and row.user_id == at.session_state["user_id"]
    scripts = [e.proto.body for e in at.get("html")]
    assert any(session_cookie.START_PATH in s for s in scripts), "the cookie script is rendered"
    assert not any("pw-of-bob-123" in s for s in scripts)
    at.button(key="logout").click().run()
    assert sessions.get(con, sid).revoked_why == "logout" and "user_id" not in at.session_state
    assert any(session_cookie.END_PATH in e.proto.body for e in at.get("html"))
