"""Users' credentials: password hashing, login throttling policy, sessions, the setup code.

Passwords are stored only as ``scrypt$n$r$p$salt_hex$hash_hex`` (hashlib.scrypt, 16-byte salt,
N = 2^17, r = 8, p = 1 as OWASP asks; older hashes with a smaller N are upgraded at the next
successful login).  An unknown user name costs the same scrypt work as a wrong password, so
the answer's timing does not tell which names exist.

Who may do what lives in ``endolite.services`` (the permission matrix); this module only
answers "is this the person" and "is this session still alive".

Browser sessions: a session token is 32 random bytes (``secrets.token_urlsafe``, 43 characters);
the browser keeps it in an HttpOnly cookie (``SESSION_COOKIE``) and the database only its
sha256 (``token_digest``), so neither a copy of the database nor the audit log can sign in.
A token that is not of that shape (tampered, truncated) is refused before any lookup.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
from datetime import datetime, timedelta

import duckdb

from endolite.config import Settings
from endolite.errors import AuthError, InvalidInput
from endolite.records import Role, User
from endolite.storage import users

_N, _R, _P = 2**17, 8, 1
_MAXMEM = 256 * 1024 * 1024          # scrypt needs 128 * r * N bytes = 128 MiB at N = 2^17
MIN_PASSWORD = 8
MAX_NAME = 64

# throttling: after FREE_FAILURES failed logins within WINDOW (per user name, and per client),
# each further try waits 2^(k) seconds after the last failure, up to MAX_DELAY
FREE_FAILURES = 5
FREE_FAILURES_CLIENT = 20        # one address may be a whole ward behind NAT or the proxy
MAX_DELAY = 300.0
WINDOW = timedelta(minutes=30)
DEFAULT_IDLE_MINUTES = 60

SESSION_COOKIE = "endolite_session"
SESSION_LIFETIME = timedelta(hours=12)      # a session ends then even when in use (one shift)
SESSION_TOUCH = timedelta(seconds=30)       # last_seen is written at most this often
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def hash_password(password: str, *, n: int = _N) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=_R, p=_P, dklen=32,
                            maxmem=_MAXMEM)
    return f"scrypt${n}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_hex, hash_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt_hex), n=int(n),
                                r=int(r), p=int(p), dklen=len(hash_hex) // 2, maxmem=_MAXMEM)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest.hex(), hash_hex)


def needs_rehash(stored: str) -> bool:
    """True when ``stored`` was made with weaker parameters than today's."""
    try:
        scheme, n, r, p, *_ = stored.split("$")
        return scheme != "scrypt" or int(n) < _N or int(r) < _R
    except ValueError:
        return True


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password(secrets.token_hex(16))


def check_name(name: str) -> str:
    """A user name as stored: no spaces or control characters, 1..64 characters."""
    if not name or not name.strip() or any(c.isspace() or ord(c) < 32 for c in name):
        raise InvalidInput("user name: must be non-empty without spaces or control characters")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"user name: at most {MAX_NAME} characters")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password: at least {MIN_PASSWORD} characters")
    return password


def verify_credentials(con: duckdb.DuckDBPyConnection, name: str, password: str) -> User | None:
    """The active user ``name`` if ``password`` is right, else None.  An unknown or inactive user
    costs the same scrypt work as a wrong password.  Upgrades a weak hash on success."""
    stored = users.password_hash(con, name)
    ok = verify_password(password, stored if stored is not None else _dummy_hash())
    if stored is None or not ok:
        return None
    if needs_rehash(stored):
        users.set_password_hash(con, name, hash_password(password), changed=False)
    return users.get_by_name(con, name)


def throttle_delay(failures: int, *, free: int = FREE_FAILURES) -> float:
    """Seconds to wait after the last failure, given the failures in the window (pure)."""
    if failures < free:
        return 0.0
    return min(2.0 ** (failures - free + 1), MAX_DELAY)


def retry_after(failures: int, last_failure: datetime | None, now: datetime, *,
                free: int = FREE_FAILURES) -> float:
    """Seconds left before another try is accepted (0 when one may try now)."""
    if last_failure is None:
        return 0.0
    wait = throttle_delay(failures, free=free) - (now - last_failure).total_seconds()
    return max(0.0, wait)


def session_expired(last_seen: datetime | None, now: datetime, idle_minutes: float) -> bool:
    """A session idle for longer than ``idle_minutes`` (<= 0: never expires) has ended."""
    if last_seen is None or idle_minutes <= 0:
        return False
    return now - last_seen > timedelta(minutes=idle_minutes)


def new_session_token() -> str:
    """A fresh session token (256 random bits, URL-safe base64 without padding)."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str | None:
    """The stored form of a session token (sha256 hex), or None when ``token`` cannot be one
    (wrong length or characters: tampered, truncated, or not ours)."""
    if not isinstance(token, str) or len(token) != 43 or not set(token) <= _TOKEN_CHARS:
        return None
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def needs_setup(con: duckdb.DuckDBPyConnection) -> bool:
    """A fresh data directory: no user exists yet."""
    return users.count(con) == 0


def ensure_setup_code(settings: Settings) -> str:
    """The one-time setup code of a fresh data directory (made once, kept in setup_code.txt, mode 600).

    ``endolite serve`` prints it to the console when the server starts; the first browser
    visit asks for it.  Only creating the first administrator consumes it.
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


def check_setup_code(settings: Settings, code: str) -> None:
    path = settings.setup_code_path
    expected = path.read_text(encoding="utf-8").strip() if path.exists() else None
    if not expected or not hmac.compare_digest(code.strip().encode(), expected.encode()):
        raise AuthError("wrong setup code: use the code the server printed to its console "
                        f"(also in {path})")


def retire_setup_code(settings: Settings) -> None:
    settings.setup_code_path.unlink(missing_ok=True)


def rank(role: Role | str) -> int:
    """annotator 0 < lead 1 < admin 2."""
    return {Role.ANNOTATOR: 0, Role.LEAD: 1, Role.ADMIN: 2}[Role(role)]
