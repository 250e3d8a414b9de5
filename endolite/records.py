"""Frozen records the core returns, and the option enums.

Times are timezone-naive UTC ``datetime``; paths are relative to the data directory with
forward slashes; frame numbers count from 0 in presentation order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    ADMIN = "admin"
    LEAD = "lead"
    ANNOTATOR = "annotator"


class LabelKind(StrEnum):
    LANDMARK = "landmark"
    PATHOLOGY = "pathology"
    QUALITY = "quality"
    OTHER = "other"


class IngestStatus(StrEnum):
    IMPORTED = "imported"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class ItemKind(StrEnum):
    VIDEO = "video"
    IMAGE = "image"
    IMAGE_GROUP = "image_group"
    UNKNOWN = "unknown"


class SampleMethod(StrEnum):
    UNIFORM = "uniform"
    RANDOM = "random"
    KMEANS = "kmeans"
    KEYFRAMES = "keyframes"
    UNCERTAIN = "uncertain"      # active learning: needs a done training run (model=RUN_ID)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


def to_dict(record: Any) -> dict[str, Any]:
    """A record as JSON-friendly dict (datetimes as ISO strings, enums as values)."""
    out = asdict(record)
    for key, value in out.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat(timespec="seconds")
        elif isinstance(value, StrEnum):
            out[key] = str(value)
        elif isinstance(value, tuple):
            out[key] = list(value)
    return out


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: Role
    created_at: datetime
    created_by: str | None = None
    active: bool = True


@dataclass(frozen=True)
class Video:
    id: int
    sha256: str
    title: str
    original_name: str
    path: str                 # relative to the data dir: videos/<sha256>.<ext>
    container: str
    codec: str
    fps: float
    frame_count: int
    duration: float           # seconds
    width: int
    height: int
    size_bytes: int
    client_metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    created_by: str | None = None


@dataclass(frozen=True)
class ImageGroup:
    id: int
    title: str
    source: str               # "images", "folder", "zip", "manifest"
    sha256: str               # of the zip bytes, or of the sorted member hashes
    frame_count: int = 0
    client_metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    created_by: str | None = None


@dataclass(frozen=True)
class Frame:
    """One labelable picture: a frame extracted from a video or a still image of a group.

    Exactly one of ``video_id`` / ``group_id`` is set.  ``path`` is the browser-viewable file
    (relative to the data dir); ``original_path`` the byte-for-byte original for still images.
    ``is_context`` marks frames stored only as context around a picked frame (``parent_id``).
    """

    id: int
    video_id: int | None
    group_id: int | None
    frame_number: int
    timestamp: float | None   # seconds from the start of the video; None for still images
    path: str
    original_name: str | None
    original_path: str | None
    width: int
    height: int
    sha256: str
    is_context: bool
    parent_id: int | None = None
    created_at: datetime | None = None
    created_by: str | None = None


@dataclass(frozen=True)
class Label:
    id: int
    name: str
    kind: LabelKind
    color: str                # "#RRGGBB"
    allowed: tuple[str, ...] = ("mask", "box", "frame_label", "segment")
    created_at: datetime | None = None
    created_by: str | None = None


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    status: JobStatus
    progress: float           # 0..1
    message: str
    params: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    created_by: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    username: str | None
    action: str               # "import", "extract", "delete", "export", "login", ...
    entity: str               # "video", "image_group", "frame", "user", ...
    entity_id: int | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestResult:
    """Outcome of one input.  ``id`` is the video / image-group id (for a loose image, its
    group's id); ``reason`` says why a file was rejected or what it duplicates."""

    path: str
    kind: ItemKind
    status: IngestStatus
    id: int | None = None
    reason: str | None = None
    frame_ids: tuple[int, ...] = ()
    title: str | None = None


@dataclass(frozen=True)
class ExtractionResult:
    """Frames picked by one extraction run and the context frames stored around them."""

    extraction_id: int
    video_id: int
    method: SampleMethod
    picked: tuple[Frame, ...]
    context: tuple[Frame, ...]
    frames_decoded: int       # how many frames the decoder produced (performance accounting)


class MaskSource(StrEnum):
    MANUAL = "manual"
    SAM = "sam"
    PROPAGATED = "propagated"
    MODEL = "model"
    IMPORT = "import"


class ShapeKind(StrEnum):
    MASK = "mask"
    BOX = "box"
    POLYGON = "polygon"


class Presence(StrEnum):
    PRESENT = "present"
    ABSENT = "absent"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Mask:
    """One object on one frame, stored as COCO RLE (column-major; ``size`` is (H, W)).

    ``bbox`` is (x, y, w, h) in pixels; ``prompt`` holds the clicks that made it
    ({"points": [[x, y, 1|0], ...], "box": [x0, y0, x1, y1]}).
    """

    id: int
    frame_id: int
    label_id: int
    label: str
    color: str
    annotator: str
    source: MaskSource
    kind: ShapeKind
    height: int
    width: int
    rle: str
    area: int
    bbox: tuple[float, float, float, float]
    prompt: dict[str, Any] = field(default_factory=dict)
    confidence: float | None = None
    flagged: bool = False
    origin_mask_id: int | None = None
    created_at: datetime | None = None
    version: int = 1

    @property
    def coco_rle(self) -> dict[str, Any]:
        """The pycocotools RLE dict {"size": [H, W], "counts": bytes}."""
        return {"size": [self.height, self.width], "counts": self.rle.encode("ascii")}


@dataclass(frozen=True)
class FrameLabel:
    id: int
    frame_id: int | None
    video_id: int | None
    frame_number: int | None
    label_id: int
    label: str
    annotator: str
    value: Presence
    float_value: float | None = None
    source: str = "manual"
    segment_id: int | None = None


@dataclass(frozen=True)
class Segment:
    """A labelled time span of a video: frames ``start_frame <= n < end_frame`` (``end_frame``
    exclusive, as lx-annotate's segments)."""

    id: int
    video_id: int
    label_id: int
    label: str
    color: str
    start_frame: int
    end_frame: int
    annotator: str
    for_export: bool = True


class TaskStatus(StrEnum):
    TODO = "todo"
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"


@dataclass(frozen=True)
class Benchmark:
    """A gold-standard benchmark: the same frames and labels for the gold annotator and each
    evaluated annotator (one task per user and frame)."""

    id: int
    name: str
    gold: str
    annotators: tuple[str, ...]
    label_ids: tuple[int, ...]
    frame_ids: tuple[int, ...]
    iou_threshold: float = 0.5
    created_at: datetime | None = None
    created_by: str | None = None


@dataclass(frozen=True)
class Task:
    benchmark_id: int
    annotator: str
    frame_id: int
    status: TaskStatus
