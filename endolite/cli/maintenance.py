"""``endolite check`` / ``backup`` / ``restore`` (being written)."""

from __future__ import annotations


def add_maintenance_commands(sub) -> None:
    """Register the maintenance sub-commands on the main parser."""
