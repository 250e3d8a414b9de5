"""Server-side import roots: the folders a browser user may import server files from.

A path typed into the dashboard names a file on the server, so it is hostile: with roots set,
every path handed in, every file a manifest references and every file inside a given folder
must resolve (``os.path.realpath``: symlinks followed, ``..`` collapsed) to a place inside one
of the roots.  The resolved path is what ingest reads afterwards, so a name cannot point one
way when checked and another when read through a symlink further up.  The command line
(the server's own shell user) imports without roots.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from endolite.config import Settings
from endolite.errors import InvalidInput

INBOX = "inbox"


def default_import_roots(settings: Settings) -> list[Path]:
    """``[data/inbox]`` (created if missing): where files to import from the server are put."""
    inbox = settings.data_dir / INBOX
    inbox.mkdir(parents=True, exist_ok=True)
    return [inbox]


@dataclass(frozen=True)
class ImportRoots:
    """The allowed folders, resolved once (``realpath``)."""

    folders: tuple[str, ...]

    @classmethod
    def of(cls, roots: Sequence[str | os.PathLike[str]] | None) -> ImportRoots | None:
        """None (no restriction) for ``roots`` None; an empty sequence allows nothing."""
        if roots is None:
            return None
        if isinstance(roots, (str, os.PathLike)):
            raise InvalidInput("roots: give a list of folders, not one path")
        return cls(tuple(os.path.realpath(os.fspath(r)) for r in roots))

    def resolve(self, path: str | os.PathLike[str], *, label: str | None = None,
                shown: str | None = None) -> Path:
        """The real path of ``path`` when it lies inside a root; else InvalidInput naming
        ``shown`` (default: ``path``), prefixed by ``label``."""
        real = os.path.realpath(os.fspath(path))
        for folder in self.folders:
            if real == folder or real.startswith(folder.rstrip(os.sep) + os.sep):
                return Path(real)
        where = ", ".join(self.folders) or "none are set"
        prefix = f"{label}: " if label else ""
        raise InvalidInput(f"{prefix}{shown or os.fspath(path)} is outside the allowed import folders "
                           f"({where})")


def admitted(roots: ImportRoots | None, path: Path, *, label: str | None = None,
             shown: str | None = None) -> Path:
    """``path`` unchanged without roots, else its real path inside a root (or InvalidInput)."""
    return path if roots is None else roots.resolve(path, label=label, shown=shown)
