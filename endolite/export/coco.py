"""COCO instance-segmentation export of the live masks on chosen frames.

``coco_document`` reads (never writes) frames, masks and labels and returns a COCO dict
(``info``, ``licenses``, ``images``, ``categories``, ``annotations``) that pycocotools'
``COCO`` loads; ``mask_pngs`` yields one binary PNG per (frame, label) union of masks.

Decisions:

* ``images``: one per requested frame (even without masks), sorted by id; ``id`` is the frame
  id, ``file_name`` the frame file's name only (the file lives under the data dir's frames
  folder), ``width`` / ``height`` the frame's.
* ``categories``: the labels used by the exported masks, sorted by id; ``id`` is the label id,
  ``supercategory`` the label's kind.
* ``annotations``: one per live mask, sorted by frame then mask id; ``id`` is the mask id.
  ``segmentation`` is the drawn polygon (``[[x0, y0, x1, y1, ...]]``) when the mask is a
  polygon (kind ``polygon`` with a ``{"polygon": [[x, y], ...]}`` prompt of at least three
  vertices; endolite rasterises polygons with pycocotools, so the pixels match), otherwise the
  stored COCO RLE ``{"size": [h, w], "counts": str}``.  ``iscrowd`` is always 0 (pycocotools
  accepts compressed RLE with iscrowd 0).  ``area`` is the stored pixel count, ``bbox`` the
  stored ``[x, y, w, h]`` as floats.  No ``score``.
* No patient identifiers: no original paths, no video or group titles, no annotator names
  (``annotator`` only filters which masks are exported).  Caveat: frames of an image group
  that arrived as PNG / JPEG are stored under the uploaded file's name, so their ``file_name``
  is that name; pass ``frame_id_names=True`` to name every image ``frame_<frame_id><suffix>``
  instead (the caller then ships the frame files under those names).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any

import duckdb
import numpy as np

from endolite import masks as mask_ops
from endolite.config import Settings
from endolite.records import Mask, ShapeKind
from endolite.storage import annotations, labels, media


def _frame_ids(frame_ids: Sequence[int]) -> list[int]:
    return sorted({int(f) for f in frame_ids})


def _polygon(mask: Mask) -> list[list[float]] | None:
    """The COCO polygon of a drawn polygon mask, or None when the mask is not one."""
    if mask.kind != ShapeKind.POLYGON or not isinstance(mask.prompt, dict):
        return None
    points = mask.prompt.get("polygon")
    try:
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        return None
    if len(pts) < 3 or not np.isfinite(pts).all():
        return None
    return [[float(v) for v in pts.ravel()]]


def _annotation(mask: Mask) -> dict[str, Any]:
    segmentation: Any = _polygon(mask)
    if segmentation is None:
        segmentation = {"size": [int(mask.height), int(mask.width)], "counts": mask.rle}
    return {
        "id": int(mask.id),
        "image_id": int(mask.frame_id),
        "category_id": int(mask.label_id),
        "segmentation": segmentation,
        "area": float(mask.area),
        "bbox": [float(v) for v in mask.bbox],
        "iscrowd": 0,
    }


def _file_name(frame_id: int, path: str, frame_id_names: bool) -> str:
    stored = PurePosixPath(path)
    return f"frame_{int(frame_id)}{stored.suffix}" if frame_id_names else stored.name


def coco_document(con: duckdb.DuckDBPyConnection, *, frame_ids: Sequence[int],
                  annotator: str | None = None, frame_id_names: bool = False) -> dict[str, Any]:
    """The COCO dict of the live masks on ``frame_ids`` (only ``annotator``'s when given).

    ``frame_id_names``: image ``file_name`` is ``frame_<frame_id><suffix of the stored file>``
    instead of the stored file's name (which, for uploaded images, is the uploaded name).

    Raises NotFound for an unknown frame id.
    """
    ids = _frame_ids(frame_ids)
    frames = [media.get_frame(con, f) for f in ids]
    masks = annotations.masks_of(con, frame_ids=ids, annotator=annotator) if ids else []
    label_ids = sorted({m.label_id for m in masks})
    categories = []
    for label_id in label_ids:
        label = labels.get(con, label_id)
        categories.append({"id": int(label.id), "name": label.name,
                           "supercategory": str(label.kind)})
    now = datetime.now(timezone.utc)
    return {
        "info": {"description": "endolite instance-segmentation export", "version": "1.0",
                 "year": now.year, "date_created": now.isoformat(timespec="seconds")},
        "licenses": [],
        "images": [{"id": int(fr.id), "file_name": _file_name(fr.id, fr.path, frame_id_names),
                    "width": int(fr.width), "height": int(fr.height)} for fr in frames],
        "categories": categories,
        "annotations": [_annotation(m) for m in masks],
    }


def mask_pngs(con: duckdb.DuckDBPyConnection, settings: Settings, *,
              frame_ids: Sequence[int]) -> Iterator[tuple[str, bytes]]:
    """``(name, png bytes)`` per (frame, label) with live masks on ``frame_ids``: the union of
    that label's masks on the frame as an 8-bit PNG (foreground 255), named
    ``masks/frame_<frame_id>/label_<label_id>.png``; sorted by frame id, then label id.

    ``settings`` is the project's (the masks are decoded from the database's RLE)."""
    del settings  # the RLE in the database is the source of truth
    ids = _frame_ids(frame_ids)
    if not ids:
        return
    groups: dict[tuple[int, int], list[Mask]] = {}
    for m in annotations.masks_of(con, frame_ids=ids):
        groups.setdefault((int(m.frame_id), int(m.label_id)), []).append(m)
    for (frame_id, label_id) in sorted(groups):
        union: np.ndarray | None = None
        for m in groups[(frame_id, label_id)]:
            decoded = mask_ops.decode({"size": [m.height, m.width], "counts": m.rle})
            union = decoded if union is None else (union | decoded)
        assert union is not None
        yield f"masks/frame_{frame_id}/label_{label_id}.png", mask_ops.to_png(union)
