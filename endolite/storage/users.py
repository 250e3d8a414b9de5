"""Users: name, role, active flag and a salted password hash (never the password)."""

from __future__ import annotations

import duckdb

from endolite.errors import InvalidInput, NotFound
from endolite.records import Role, User
from endolite.storage.rows import fetch_dicts

_COLUMNS = "id, name, role, active, created_at, created_by"


def _record(row: dict) -> User:
    return User(id=row["id"], name=row["name"], role=Role(row["role"]), active=bool(row["active"]),
                created_at=row["created_at"], created_by=row["created_by"])


def count(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT count(*) FROM users").fetchone()[0]


def count_admins(con: duckdb.DuckDBPyConnection) -> int:
    """Active administrators."""
    return con.execute("SELECT count(*) FROM users WHERE role = 'admin' AND active").fetchone()[0]


def add(con: duckdb.DuckDBPyConnection, name: str, role: Role, password_hash: str,
        *, created_by: str | None = None) -> User:
    if get_by_name(con, name, missing_ok=True) is not None:
        raise InvalidInput(f"user {name!r} already exists")
    row = con.execute(
        "INSERT INTO users (name, role, password_hash, created_by, password_changed_at) "
        "VALUES (?, ?, ?, ?, current_localtimestamp()) RETURNING id",
        [name, str(role), password_hash, created_by],
    ).fetchone()
    return get(con, row[0])


def get(con: duckdb.DuckDBPyConnection, user_id: int) -> User:
    rows = fetch_dicts(con, f"SELECT {_COLUMNS} FROM users WHERE id = ?", [user_id])
    if not rows:
        raise NotFound(f"no user with id {user_id}")
    return _record(rows[0])


def get_by_name(con: duckdb.DuckDBPyConnection, name: str, *, missing_ok: bool = False) -> User | None:
    rows = fetch_dicts(con, f"SELECT {_COLUMNS} FROM users WHERE name = ?", [name])
    if not rows:
        if missing_ok:
            return None
        raise NotFound(f"no user named {name!r}")
    return _record(rows[0])


def password_hash(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    """The active user's stored hash (None for an unknown or deactivated user)."""
    row = con.execute("SELECT password_hash FROM users WHERE name = ? AND active", [name]).fetchone()
    return row[0] if row else None


def set_password_hash(con: duckdb.DuckDBPyConnection, name: str, password_hash: str, *,
                      changed: bool = True) -> None:
    """Store a new hash; ``changed`` (a real password change, not a rehash) stamps the time."""
    get_by_name(con, name)
    stamp = ", password_changed_at = current_localtimestamp()" if changed else ""
    con.execute(f"UPDATE users SET password_hash = ?{stamp} WHERE name = ?", [password_hash, name])


def set_role(con: duckdb.DuckDBPyConnection, name: str, role: Role) -> User:
    user = get_by_name(con, name)
    con.execute("UPDATE users SET role = ? WHERE id = ?", [str(role), user.id])
    return get(con, user.id)


def set_active(con: duckdb.DuckDBPyConnection, name: str, active: bool) -> User:
    user = get_by_name(con, name)
    con.execute("UPDATE users SET active = ?, deactivated_at = CASE WHEN ? THEN NULL "
                "ELSE current_localtimestamp() END WHERE id = ?", [active, active, user.id])
    return get(con, user.id)


def list_all(con: duckdb.DuckDBPyConnection) -> list[User]:
    return [_record(r) for r in fetch_dicts(con, f"SELECT {_COLUMNS} FROM users ORDER BY id")]


# --- login attempts ---------------------------------------------------------------------------

def record_attempt(con: duckdb.DuckDBPyConnection, *, username: str, client: str, ok: bool) -> None:
    con.execute("INSERT INTO login_attempts (username, client, ok) VALUES (?, ?, ?)",
                [username, client, ok])


def recent_failures(con: duckdb.DuckDBPyConnection, *, username: str | None = None,
                    client: str | None = None, since) -> tuple[int, object]:
    """(failed attempts since ``since``, time of the last one) for one user name (counted since
    that user's last successful login) or for one client (a success does not reset it, so
    logging into one's own account does not buy more guesses at another)."""
    if (username is None) == (client is None):
        raise ValueError("name exactly one of username / client")
    if username is not None:
        sql = ("SELECT count(*), max(created_at) FROM login_attempts WHERE username = ? AND NOT ok "
               "AND created_at >= ? AND id > coalesce((SELECT max(id) FROM login_attempts "
               "WHERE username = ? AND ok), 0)")
        params = [username, since, username]
    else:
        sql = ("SELECT count(*), max(created_at) FROM login_attempts WHERE client = ? AND NOT ok "
               "AND created_at >= ?")
        params = [client, since]
    row = con.execute(sql, params).fetchone()
    return int(row[0]), row[1]
