"""Accounts and sessions: first administrator, login with throttling, logout, the per-rerun
session check, and the administrator's user management.

Login throttling: every failed login is recorded (``login_attempts``) and audited; after
``auth.FREE_FAILURES`` (5) failures for a user name since its last success, or
``auth.FREE_FAILURES_CLIENT`` (20) from one client address within ``auth.WINDOW`` (one address
may be a whole ward behind NAT), each further try must wait 2, 4, 8 ... up to 300 seconds after
the last failure and is refused unchecked until then.

Browser sessions (``sessions`` table): ``start_session`` after a login gives the page a token
for the HttpOnly cookie (``endolite.session_cookie`` sets it); ``resume_session`` signs a new
Streamlit session (a reload, a second tab) in from that cookie, audited as ``session.resume``,
when the session is not revoked, not idle past ``idle_minutes``, not past ``expires_at`` and the
user is active.  Logout revokes the session (a copied cookie stops working); deactivating a user
or changing / resetting their password revokes all their sessions.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from endolite import auth
from endolite.config import Settings
from endolite.errors import AuthError, InvalidInput, NotFound
from endolite.records import Role, User
from endolite.services.access import Action, Actor, Ctx
from endolite.services.settings import idle_minutes
from endolite.storage import audit, sessions, users
from endolite.storage.sessions import SessionRow


def _now(con: duckdb.DuckDBPyConnection) -> datetime:
    return con.execute("SELECT current_localtimestamp()").fetchone()[0]


def create_first_admin(con: duckdb.DuckDBPyConnection, settings: Settings, *, code: str, name: str,
                       password: str) -> User:
    """Check the setup code, create the administrator account, and only then retire the code."""
    if not auth.needs_setup(con):
        raise AuthError("setup is already done: log in instead")
    auth.check_setup_code(settings, code)
    user = users.add(con, auth.check_name(name), Role.ADMIN,
                     auth.hash_password(auth.check_password(password)), created_by=name)
    auth.retire_setup_code(settings)
    audit.record(con, username=name, action=str(Action.USER_ADD), entity="user", entity_id=user.id,
                 details={"name": name, "role": "admin", "first_admin": True})
    return user


def login(con: duckdb.DuckDBPyConnection, name: str, password: str, *, client: str = "unknown") -> User:
    """The user, when name and password are right and no throttle applies; raises AuthError.

    The same message answers an unknown name, a deactivated account and a wrong password."""
    now = _now(con)
    since = now - auth.WINDOW
    by_user = users.recent_failures(con, username=name, since=since)
    by_client = users.recent_failures(con, client=client, since=since)
    wait = max(auth.retry_after(by_user[0], by_user[1], now),
               auth.retry_after(by_client[0], by_client[1], now, free=auth.FREE_FAILURES_CLIENT))
    if wait > 0:
        audit.record(con, username=name, action="login.throttled", entity="user",
                     details={"client": client, "retry_after_s": round(wait, 1)})
        raise AuthError(f"too many failed logins: try again in {int(wait) + 1} s")
    user = auth.verify_credentials(con, name, password)
    users.record_attempt(con, username=name, client=client, ok=user is not None)
    if user is None:
        audit.record(con, username=name, action="login.failed", entity="user",
                     details={"client": client, "failures": by_user[0] + 1})
        raise AuthError("unknown user or wrong password")
    audit.record(con, username=name, action="login", entity="user", entity_id=user.id,
                 details={"client": client})
    return user


def logout(con: duckdb.DuckDBPyConnection, user: User, *, reason: str = "logout",
           session_id: int | None = None) -> None:
    """End a browser session: revoke it (its cookie no longer signs in) and audit ``reason``."""
    details = None
    if session_id is not None:
        sessions.revoke(con, session_id, why=reason)
        details = {"session": session_id}
    audit.record(con, username=user.name, action=reason, entity="user", entity_id=user.id,
                 details=details)


def _session_problem(con: duckdb.DuckDBPyConnection, row: SessionRow, now: datetime) -> str | None:
    """Why the session ``row`` may not be used (None: it may)."""
    if row.revoked_at is not None:
        return f"revoked ({row.revoked_why})"
    if now >= row.expires_at:
        return "expired"
    if auth.session_expired(row.last_seen, now, idle_minutes(con)):
        return "idle"
    return None


def session_user(con: duckdb.DuckDBPyConnection, user_id: int, *, last_seen: datetime | None,
                 session_id: int | None = None) -> User | None:
    """Re-read on every rerun: the signed-in user as the database has them now, or None when the
    account is gone, deactivated, or the session has been idle past the timeout.  With
    ``session_id`` (a browser session, ``start_session``) that session must also be live (not
    revoked, idle or expired); its ``last_seen`` moves on (at most every ``auth.SESSION_TOUCH``)."""
    try:
        user = users.get(con, user_id)
    except NotFound:
        return None
    if not user.active:
        return None
    now = _now(con)
    if auth.session_expired(last_seen, now, idle_minutes(con)):
        return None
    if session_id is not None:
        row = sessions.get(con, session_id)
        if row is None or row.user_id != user.id or _session_problem(con, row, now) is not None:
            return None
        if now - row.last_seen >= auth.SESSION_TOUCH:
            try:
                sessions.touch(con, session_id)
            except duckdb.TransactionException:    # another tab touched it at the same moment
                pass
    return user


def start_session(con: duckdb.DuckDBPyConnection, user: User, *, client: str = "unknown") -> tuple[int, str]:
    """A new browser session for ``user`` (just logged in): ``(session id, token)``.  The token
    goes into the cookie only; the database keeps its sha256."""
    token = auth.new_session_token()
    session_id = sessions.add(con, token_sha256=auth.token_digest(token), user_id=user.id,
                              client=client, expires_at=_now(con) + auth.SESSION_LIFETIME)
    return session_id, token


def resume_session(con: duckdb.DuckDBPyConnection, token: str, *,
                   client: str = "unknown") -> tuple[User, int] | None:
    """``(user, session id)`` for the cookie ``token`` of a live session of an active user, else
    None (unknown, tampered, revoked, idle, expired; audited as ``session.rejected``).  A
    resumed session is audited as ``session.resume`` and its ``last_seen`` moves on."""
    digest = auth.token_digest(token)
    row = sessions.by_digest(con, digest) if digest is not None else None
    if row is None:
        audit.record(con, username=None, action="session.rejected", entity="session",
                     details={"client": client, "reason": "unknown token"})
        return None
    try:
        user = users.get(con, row.user_id)
    except NotFound:
        user = None
    problem = _session_problem(con, row, _now(con))
    if problem is None and (user is None or not user.active):
        problem = "user deactivated"
    if problem is not None:
        audit.record(con, username=user.name if user else None, action="session.rejected",
                     entity="session", entity_id=row.id, details={"client": client, "reason": problem})
        return None
    sessions.touch(con, row.id)
    audit.record(con, username=user.name, action="session.resume", entity="user", entity_id=user.id,
                 details={"client": client, "session": row.id})
    return user, row.id


def now(con: duckdb.DuckDBPyConnection) -> datetime:
    """The database's clock (sessions compare against it)."""
    return _now(con)


# --- administration -----------------------------------------------------------------------------

def add_user(ctx: Ctx, name: str, role: Role | str, password: str) -> User:
    ctx.check(Action.USER_ADD)
    try:
        role = Role(role)
    except ValueError:
        raise InvalidInput(f"role {role!r}: use admin, lead or annotator") from None
    if auth.needs_setup(ctx.con) and role != Role.ADMIN:
        raise InvalidInput("the first user of a data directory must be an admin "
                           "(--role admin); otherwise nobody could manage users")
    user = users.add(ctx.con, auth.check_name(name), role,
                     auth.hash_password(auth.check_password(password)), created_by=ctx.actor.name)
    if users.count(ctx.con) == 1:
        auth.retire_setup_code(ctx.settings)        # the first admin is made: the code is spent
    ctx.record(Action.USER_ADD, entity="user", entity_id=user.id, name=user.name, role=str(role))
    return user


def _not_last_admin(ctx: Ctx, target: User, *, doing: str) -> None:
    if target.role == Role.ADMIN and target.active and users.count_admins(ctx.con) <= 1:
        raise InvalidInput(f"{target.name} is the only active admin: {doing} would leave nobody "
                           "to manage users; make another admin first")


def set_role(ctx: Ctx, name: str, role: Role | str) -> User:
    ctx.check(Action.USER_ROLE)
    target = users.get_by_name(ctx.con, name)
    try:
        role = Role(role)
    except ValueError:
        raise InvalidInput(f"role {role!r}: use admin, lead or annotator") from None
    if role != Role.ADMIN:
        _not_last_admin(ctx, target, doing="demoting them")
    user = users.set_role(ctx.con, name, role)
    ctx.record(Action.USER_ROLE, entity="user", entity_id=user.id, before=str(target.role),
               after=str(role))
    return user


def set_active(ctx: Ctx, name: str, active: bool) -> User:
    ctx.check(Action.USER_ACTIVE)
    target = users.get_by_name(ctx.con, name)
    if not active:
        _not_last_admin(ctx, target, doing="deactivating them")
    user = users.set_active(ctx.con, name, bool(active))
    ended = 0 if active else sessions.revoke_user(ctx.con, user.id, why="deactivated")
    ctx.record(Action.USER_ACTIVE, entity="user", entity_id=user.id, active=bool(active),
               sessions_ended=ended)
    return user


def reset_password(ctx: Ctx, name: str, new_password: str) -> None:
    ctx.check(Action.USER_RESET_PASSWORD)
    target = users.get_by_name(ctx.con, name)
    users.set_password_hash(ctx.con, name, auth.hash_password(auth.check_password(new_password)))
    ended = sessions.revoke_user(ctx.con, target.id, why="password reset")
    ctx.record(Action.USER_RESET_PASSWORD, entity="user", entity_id=target.id, sessions_ended=ended)


def change_password(ctx: Ctx, old_password: str, new_password: str, *,
                    keep_session: int | None = None) -> None:
    """The actor's own password; the old one must be right.  Ends the actor's other browser
    sessions (all but ``keep_session``, the one they changed it in)."""
    ctx.check(Action.PASSWORD_CHANGE, owners=[ctx.actor.name])
    if ctx.actor.shell:
        raise InvalidInput("the server's shell user has no password here; use --user NAME")
    if auth.verify_credentials(ctx.con, ctx.actor.name, old_password) is None:
        audit.record(ctx.con, username=ctx.actor.name, action="password_change.failed", entity="user")
        raise AuthError("the current password is wrong")
    users.set_password_hash(ctx.con, ctx.actor.name, auth.hash_password(auth.check_password(new_password)))
    user_id = users.get_by_name(ctx.con, ctx.actor.name).id
    ended = sessions.revoke_user(ctx.con, user_id, why="password changed", keep=keep_session)
    ctx.record(Action.PASSWORD_CHANGE, entity="user", entity_id=user_id, sessions_ended=ended)


def actor_named(con: duckdb.DuckDBPyConnection, name: str) -> Actor:
    """The CLI's ``--user NAME``: that active user's role (raises AuthError otherwise)."""
    user = users.get_by_name(con, name, missing_ok=True)
    if user is None or not user.active:
        raise AuthError(f"--user {name}: no active user of that name in this data directory")
    return Actor.of(user)
