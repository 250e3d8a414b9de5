"""CLI commands (being written)."""

from __future__ import annotations


def add_import_commands(sub) -> None:
    """Register this module's commands on the top-level subparsers."""
