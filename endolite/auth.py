"""Users, roles, password hashing and the one-time setup code of a fresh data directory.

Passwords are stored only as ``scrypt$n$r$p$salt_hex$hash_hex`` (hashlib.scrypt, 16-byte salt).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

import duckdb

from endolite.config import Settings
from endolite.errors import AuthError, InvalidInput
from endolite.records import Role, User
from endolite.storage import audit, users

_N, _R, _P = 2**14, 8, 1
MIN_PASSWORD = 8


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_hex, hash_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt_hex), n=int(n),
                            r=int(r), p=int(p), dklen=len(hash_hex) // 2)
    return hmac.compare_digest(digest.hex(), hash_hex)


def _check_name_password(name: str, password: str) -> None:
    if not name or not name.strip() or any(c.isspace() for c in name):
        raise InvalidInput("user name: must be non-empty without spaces")
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password: at least {MIN_PASSWORD} characters")


def add_user(con: duckdb.DuckDBPyConnection, name: str, role: Role | str, password: str, *,
             created_by: str | None = None) -> User:
    """Create a user (role admin / lead / annotator); raises InvalidInput for a taken name."""
    _check_name_password(name, password)
    try:
        role = Role(role)
    except ValueError:
        raise InvalidInput(f"role {role!r}: use admin, lead or annotator") from None
    user = users.add(con, name, role, hash_password(password), created_by=created_by)
    audit.record(con, username=created_by, action="create", entity="user", entity_id=user.id,
                 details={"name": name, "role": str(role)})
    return user


def authenticate(con: duckdb.DuckDBPyConnection, name: str, password: str) -> User:
    stored = users.password_hash(con, name)
    if stored is None or not verify_password(password, stored):
        raise AuthError("unknown user or wrong password")
    user = users.get_by_name(con, name)
    audit.record(con, username=name, action="login", entity="user", entity_id=user.id)
    return user


def needs_setup(con: duckdb.DuckDBPyConnection) -> bool:
    """A fresh data directory: no user exists yet."""
    return users.count(con) == 0


def ensure_setup_code(settings: Settings) -> str:
    """The one-time setup code of a fresh data directory (made once, kept in setup_code.txt, mode 600).

    The dashboard prints it to its console, as Jenkins does; the first browser visit asks for it.
    """
    path = settings.setup_code_path
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    code = secrets.token_hex(8)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(code + "\n")
    return code


def create_first_admin(con: duckdb.DuckDBPyConnection, settings: Settings, *, code: str, name: str,
                       password: str) -> User:
    """Check the setup code, create the admin account and retire the code."""
    if not needs_setup(con):
        raise AuthError("setup is already done: log in instead")
    path = settings.setup_code_path
    expected = path.read_text(encoding="utf-8").strip() if path.exists() else None
    if not expected or not hmac.compare_digest(code.strip(), expected):
        raise AuthError("wrong setup code: use the code the server printed to its console "
                        f"(also in {path})")
    user = add_user(con, name, Role.ADMIN, password, created_by=name)
    path.unlink(missing_ok=True)
    return user


def require_role(user: User, *roles: Role) -> None:
    if user.role not in roles:
        raise AuthError(f"{user.name} ({user.role}) may not do this: needs {' or '.join(roles)}")
