"""Helpers the page tests share: users made fast, and a page opened as a signed-in user."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from endolite import auth
from endolite.records import Role, User
from endolite.storage import users

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60


def make_user(con, name: str, role: Role | str, password: str = "password-123", *,
              weak: bool = True) -> User:
    """A user stored directly (``weak``: a cheap N=2^10 scrypt hash, upgraded at first login —
    the tests about hashing use the real cost)."""
    digest = auth.hash_password(password, n=2**10) if weak else auth.hash_password(password)
    return users.add(con, name, Role(role), digest, created_by="test")


def page(path: str, user: User | None) -> AppTest:
    """``views/<path>`` (or app.py) in AppTest, signed in as ``user``."""
    at = AppTest.from_file(str(ROOT / path), default_timeout=TIMEOUT)
    if user is not None:
        at.session_state["user_id"] = user.id
    return at
