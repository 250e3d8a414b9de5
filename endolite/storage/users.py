"""Users: name, role and a salted password hash (never the password)."""

from __future__ import annotations

import duckdb

from endolite.errors import InvalidInput, NotFound
from endolite.records import Role, User
from endolite.storage.rows import fetch_dicts

_COLUMNS = "id, name, role, created_at, created_by"


def _record(row: dict) -> User:
    return User(id=row["id"], name=row["name"], role=Role(row["role"]),
                created_at=row["created_at"], created_by=row["created_by"])


def count(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT count(*) FROM users").fetchone()[0]


def add(con: duckdb.DuckDBPyConnection, name: str, role: Role, password_hash: str,
        *, created_by: str | None = None) -> User:
    if get_by_name(con, name, missing_ok=True) is not None:
        raise InvalidInput(f"user {name!r} already exists")
    row = con.execute(
        "INSERT INTO users (name, role, password_hash, created_by) VALUES (?, ?, ?, ?) RETURNING id",
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
    row = con.execute("SELECT password_hash FROM users WHERE name = ? AND active", [name]).fetchone()
    return row[0] if row else None


def set_password_hash(con: duckdb.DuckDBPyConnection, name: str, password_hash: str) -> None:
    get_by_name(con, name)
    con.execute("UPDATE users SET password_hash = ? WHERE name = ?", [password_hash, name])


def list_all(con: duckdb.DuckDBPyConnection) -> list[User]:
    return [_record(r) for r in fetch_dicts(con, f"SELECT {_COLUMNS} FROM users ORDER BY id")]
