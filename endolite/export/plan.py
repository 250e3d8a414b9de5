"""What an export may contain: the media the gate approved and their blanked frames.

``endolite.export.gate.approve`` builds an ``ExportPlan`` (it refuses media that are not
validated or whose anonymized file changed); the format writers (``lx_table``, ``coco``,
``ai_dataset``, ``yolo``, ``visual_layer``) and the zip writer (``bundle``) read only the plan,
so nothing outside it, and no raw file, can reach an export.

Frames in a zip live at ``frames/video_<video_id>/frame_<frame_id><ext>`` or
``frames/group_<group_id>/frame_<frame_id><ext>`` (``ExportFrame.arcname``): file names are
frame ids, never an uploaded file's name (which may carry a patient's name).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class ExportFrame:
    """One frame an export may carry.

    ``source``: the blanked (anonymized) copy on disk, absolute; ``sha256``: its hash as recorded
    when it was written; ``width`` / ``height``: pixels (the mask and box coordinate frame:
    x right, y down, origin top left); ``timestamp``: seconds from the video's start (None for
    image groups); ``is_context``: a context frame of an extraction.
    """

    frame_id: int
    video_id: int | None
    group_id: int | None
    frame_number: int
    timestamp: float | None
    width: int
    height: int
    is_context: bool
    source: Path
    sha256: str

    @property
    def folder(self) -> str:
        """``video_<id>`` or ``group_<id>``: the frame's folder below ``frames/`` in a zip."""
        return f"video_{self.video_id}" if self.video_id is not None else f"group_{self.group_id}"

    @property
    def file_name(self) -> str:
        """``frame_<frame_id><ext>``: the frame's file name in an export (ext of the blanked copy)."""
        return f"frame_{self.frame_id}{self.source.suffix.lower()}"

    @property
    def arcname(self) -> str:
        """The frame's path inside an export zip."""
        return str(PurePosixPath("frames") / self.folder / self.file_name)


@dataclass(frozen=True)
class ExportVideo:
    """An approved video: its anonymized copy (``source``, absolute) and what it shows."""

    video_id: int
    source: Path
    sha256: str
    fps: float
    frame_count: int
    width: int
    height: int

    @property
    def arcname(self) -> str:
        return f"videos/video_{self.video_id}{self.source.suffix.lower()}"


@dataclass(frozen=True)
class ExportPlan:
    """The approved media of one export, frames in (video, group, frame_number) order."""

    videos: tuple[ExportVideo, ...]
    group_ids: tuple[int, ...]
    frames: tuple[ExportFrame, ...]

    @property
    def video_ids(self) -> tuple[int, ...]:
        return tuple(v.video_id for v in self.videos)

    @property
    def frame_ids(self) -> list[int]:
        return [f.frame_id for f in self.frames]

    def frame(self, frame_id: int) -> ExportFrame:
        for f in self.frames:
            if f.frame_id == frame_id:
                return f
        raise KeyError(frame_id)
