"""Accounts and sessions: first administrator, login with throttling, logout, the per-rerun
session check, and the administrator's user management.

Login throttling: every failed login is recorded (``login_attempts``) and audited; after
``auth.FREE_FAILURES`` (5) failures for a user name since its last success, or
``auth.FREE_FAILURES_CLIENT`` (20) from one client address within ``auth.WINDOW`` (one address
may be a whole ward behind NAT), each further try must wait 2, 4, 8 ... up to 300 seconds after
the last failure and is refused unchecked until then.
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
from endolite.storage import audit, users


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


def logout(con: duckdb.DuckDBPyConnection, user: User, *, reason: str = "logout") -> None:
    audit.record(con, username=user.name, action=reason, entity="user", entity_id=user.id)


def session_user(con: duckdb.DuckDBPyConnection, user_id: int, *, last_seen: datetime | None) -> User | None:
    """Re-read on every rerun: the signed-in user as the database has them now, or None when the
    account is gone, deactivated, or the session has been idle past the timeout."""
    try:
        user = users.get(con, user_id)
    except NotFound:
        return None
    if not user.active:
        return None
    if auth.session_expired(last_seen, _now(con), idle_minutes(con)):
        return None
    return user


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
    ctx.record(Action.USER_ACTIVE, entity="user", entity_id=user.id, active=bool(active))
    return user


def reset_password(ctx: Ctx, name: str, new_password: str) -> None:
    ctx.check(Action.USER_RESET_PASSWORD)
    target = users.get_by_name(ctx.con, name)
    users.set_password_hash(ctx.con, name, auth.hash_password(auth.check_password(new_password)))
    ctx.record(Action.USER_RESET_PASSWORD, entity="user", entity_id=target.id)


def change_password(ctx: Ctx, old_password: str, new_password: str) -> None:
    """The actor's own password; the old one must be right."""
    ctx.check(Action.PASSWORD_CHANGE, owners=[ctx.actor.name])
    if ctx.actor.shell:
        raise InvalidInput("the server's shell user has no password here; use --user NAME")
    if auth.verify_credentials(ctx.con, ctx.actor.name, old_password) is None:
        audit.record(ctx.con, username=ctx.actor.name, action="password_change.failed", entity="user")
        raise AuthError("the current password is wrong")
    users.set_password_hash(ctx.con, ctx.actor.name, auth.hash_password(auth.check_password(new_password)))
    ctx.record(Action.PASSWORD_CHANGE, entity="user",
               entity_id=users.get_by_name(ctx.con, ctx.actor.name).id)


def actor_named(con: duckdb.DuckDBPyConnection, name: str) -> Actor:
    """The CLI's ``--user NAME``: that active user's role (raises AuthError otherwise)."""
    user = users.get_by_name(con, name, missing_ok=True)
    if user is None or not user.active:
        raise AuthError(f"--user {name}: no active user of that name in this data directory")
    return Actor.of(user)
