"""Settings and the data-directory layout.

The data directory (``--data DIR``, else ``ENDOLITE_DATA``, else ``./data``) holds::

    endolite.duckdb                                  the one database file
    videos/<sha256>.<ext>                            uploaded videos, stored once by content hash
    frames/video_<video_id>/frame_<frame_id>.<ext>   frames extracted from videos
    frames/group_<group_id>/<original name>          still images, byte-for-byte
    frames/group_<group_id>/frame_<frame_id>.png     browser-viewable copy where the format needs one
    masks/frame_<frame_id>/mask_<mask_id>.png        masks mirrored to disk
    cache/sam/<model>/<frame_sha256>.npy             image embeddings (float16)
    models/                                          checkpoints (models/sam/*.pth) and training runs
    anonymized/video_<id>/video.mp4                  anonymized copy of a video (exports read only these)
    anonymized/video_<id>/frame_<frame_id>.<ext>     blanked copies of its extracted frames
    anonymized/group_<id>/frame_<frame_id>.<ext>     blanked copies of an image group's frames
    exports/                                         export zips
    tmp/                                             staging area; files move into place with os.replace
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = "data"
ENV_DATA = "ENDOLITE_DATA"


@dataclass(frozen=True)
class Settings:
    """Where everything lives.  All paths derive from ``data_dir``."""

    data_dir: Path

    @classmethod
    def resolve(cls, data: str | os.PathLike[str] | None = None) -> "Settings":
        """``data`` if given, else $ENDOLITE_DATA, else ./data (made absolute)."""
        raw = data if data is not None else os.environ.get(ENV_DATA) or DEFAULT_DATA_DIR
        return cls(Path(raw).expanduser().resolve())

    @property
    def db_path(self) -> Path:
        return self.data_dir / "endolite.duckdb"

    @property
    def videos_dir(self) -> Path:
        return self.data_dir / "videos"

    @property
    def frames_dir(self) -> Path:
        return self.data_dir / "frames"

    @property
    def masks_dir(self) -> Path:
        return self.data_dir / "masks"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"

    @property
    def anonymized_dir(self) -> Path:
        return self.data_dir / "anonymized"

    def anonymized_media_dir(self, *, video_id: int | None = None, group_id: int | None = None) -> Path:
        """Where the anonymized copy of one video or image group lives."""
        if (video_id is None) == (group_id is None):
            raise ValueError("name exactly one of video_id / group_id")
        name = f"video_{video_id}" if video_id is not None else f"group_{group_id}"
        return self.anonymized_dir / name

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def setup_code_path(self) -> Path:
        """One-time admin setup code of a fresh data directory (deleted once used)."""
        return self.data_dir / "setup_code.txt"

    def video_frames_dir(self, video_id: int) -> Path:
        return self.frames_dir / f"video_{video_id}"

    def group_frames_dir(self, group_id: int) -> Path:
        return self.frames_dir / f"group_{group_id}"

    def relative(self, path: Path) -> str:
        """``path`` relative to the data dir, with forward slashes (what the database stores)."""
        return Path(path).resolve().relative_to(self.data_dir).as_posix()

    def absolute(self, relative_path: str) -> Path:
        return self.data_dir / relative_path

    def ensure_dirs(self) -> None:
        for d in (self.data_dir, self.videos_dir, self.frames_dir, self.masks_dir,
                  self.cache_dir, self.models_dir, self.anonymized_dir, self.exports_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
