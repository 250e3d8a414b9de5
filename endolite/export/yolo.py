"""Ultralytics YOLO detection / segmentation layout of the live masks on an approved plan.

``yolo_dataset(con, plan, task=...)`` returns a ``YoloExport``: ``files``, the
``(arcname, bytes)`` of every label file and ``data.yaml``, and ``images``, ``frame_id ->``
the arcname the zip writer copies that frame to.  Layout::

    data.yaml
    images/{train,val,test}/frame_<frame_id><ext>
    labels/{train,val,test}/frame_<frame_id>.txt

Decisions:

* Classes: the labels of the live masks on the plan's frames, by label id, numbered 0..n-1
  (YOLO wants contiguous ids); ``data.yaml``'s ``names`` maps them back: ``{0: name, ...}``.
* One label file per image, empty when the frame has no masks (a background image).  Lines are
  sorted by mask id.  Coordinates are normalised to [0, 1] by the frame's width (x) and height
  (y), 6 decimals, origin top left.
* ``task="detect"``: ``class cx cy w h`` from the mask's stored pixel bbox ``[x, y, w, h]``
  (pixel edges: a mask covering columns 3..7 has x 3, w 5).
* ``task="segment"``: ``class x1 y1 x2 y2 ...``.  A drawn polygon (kind ``polygon``) is
  written as drawn (``coco._polygon``); any other mask is traced with
  ``cv2.findContours(RETR_EXTERNAL, CHAIN_APPROX_SIMPLE)`` (vertices at boundary pixel
  centres): ``contours="largest"`` writes the contour of largest area, ``"all"`` one line per
  external contour (same class).  A contour of fewer than 3 points (a blob 1-2 px thin) is
  written as its bbox's 4 corners.
* Split by media: each video / image group goes to one split as a whole (no near-identical
  neighbours across train and val).  The media keys (``video_<id>``, ``group_<id>``) are
  shuffled with ``numpy.random.default_rng(seed)`` and cut by ``fractions`` (train, val, test;
  largest remainders), with at least one media in train, and at least one in val when there
  are two or more media and the val fraction is > 0.
* ``data.yaml``: ``path`` (the dataset root; relative paths are resolved by Ultralytics below
  its ``datasets_dir``, so the default ``root`` is a folder name to unzip there, as
  Ultralytics' own dataset yamls do), ``train`` / ``val`` / ``test`` (image folders relative to
  ``path``; ``test`` only when it has media; ``val`` falls back to ``images/train`` when no
  media could go to val: Ultralytics requires one), ``nc``, ``names``.
* File names are frame ids only (never an uploaded file's name).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import duckdb
import numpy as np

from endolite import masks as mask_ops
from endolite.errors import InvalidInput
from endolite.export.coco import _polygon
from endolite.export.plan import ExportFrame, ExportPlan
from endolite.records import Mask
from endolite.storage import annotations

SPLITS = ("train", "val", "test")
TASKS = ("detect", "segment")
CONTOURS = ("largest", "all")
DEFAULT_FRACTIONS = (0.7, 0.2, 0.1)


@dataclass(frozen=True)
class YoloExport:
    """``files``: ``(arcname, bytes)`` of the label files (sorted) and ``data.yaml`` (last);
    ``images``: ``frame_id -> images/<split>/frame_<frame_id><ext>``; ``splits``: media key
    (``video_<id>`` / ``group_<id>``) -> split; ``names``: class id -> label name."""

    files: tuple[tuple[str, bytes], ...]
    images: dict[int, str]
    splits: dict[str, str]
    names: dict[int, str]

    @property
    def annotation_count(self) -> int:
        """Number of label lines over all files (objects; a contour each with ``"all"``)."""
        return sum(len(data.splitlines()) for name, data in self.files if name.endswith(".txt"))


def split_media(keys: Sequence[str], *, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                seed: int = 0) -> dict[str, str]:
    """``key -> split`` (pure): keys shuffled by ``default_rng(seed)`` over the sorted keys,
    cut by ``fractions`` (train, val, test; non-negative, sum > 0) with largest remainders;
    at least one key in train, and one in val when there are >= 2 keys and its fraction > 0."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise InvalidInput(f"fractions: {tuple(fractions)} must be 3 non-negative numbers "
                           "(train, val, test) with a positive sum")
    ordered = sorted(set(keys))
    n = len(ordered)
    if n == 0:
        return {}
    share = np.asarray(fractions, dtype=np.float64) / float(sum(fractions)) * n
    counts = np.floor(share).astype(int)
    for i in np.argsort(-(share - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    if counts[0] == 0:
        counts[int(np.argmax(counts))] -= 1
        counts[0] += 1
    if n >= 2 and fractions[1] > 0 and counts[1] == 0:
        donor = 2 if counts[2] > 0 else 0
        counts[donor] -= 1
        counts[1] += 1
    shuffled = [ordered[i] for i in np.random.default_rng(seed).permutation(n)]
    out: dict[str, str] = {}
    start = 0
    for split, count in zip(SPLITS, counts):
        for key in shuffled[start:start + count]:
            out[key] = split
        start += count
    return out


def _fmt(values: Sequence[float]) -> str:
    return " ".join(f"{min(max(float(v), 0.0), 1.0):.6f}" for v in values)


def box_line(mask: Mask, cls: int, width: int, height: int) -> str:
    """``class cx cy w h`` normalised, from the stored pixel bbox ``[x, y, w, h]``."""
    x, y, w, h = (float(v) for v in mask.bbox)
    return f"{cls} " + _fmt(((x + w / 2) / width, (y + h / 2) / height, w / width, h / height))


def mask_polygons(mask: Mask, *, contours: str = "largest") -> list[np.ndarray]:
    """Pixel polygons ``(K, 2) float64`` (x, y) of a mask: the drawn polygon of a polygon mask,
    else its external contours (the largest, or all, by area); empty list for an empty mask."""
    drawn = _polygon(mask)
    if drawn is not None:
        return [np.asarray(drawn[0], dtype=np.float64).reshape(-1, 2)]
    import cv2

    pixels = mask_ops.decode({"size": [mask.height, mask.width], "counts": mask.rle})
    found, _ = cv2.findContours(pixels.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    found = sorted(found, key=lambda c: (-cv2.contourArea(c), -len(c)))
    if contours == "largest":
        found = found[:1]
    out = []
    for contour in found:
        pts = contour.reshape(-1, 2).astype(np.float64)
        if len(pts) < 3:
            x0, y0 = pts.min(axis=0)
            x1, y1 = pts.max(axis=0)
            pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
        out.append(pts)
    return out


def polygon_lines(mask: Mask, cls: int, width: int, height: int, *,
                  contours: str = "largest") -> list[str]:
    """``class x1 y1 x2 y2 ...`` normalised, one line per polygon of ``mask_polygons``."""
    scale = np.array([width, height], dtype=np.float64)
    return [f"{cls} " + _fmt((pts / scale).ravel()) for pts in mask_polygons(mask, contours=contours)]


def _yaml(root: str, used: set[str], names: dict[int, str]) -> bytes:
    import yaml

    doc: dict[str, Any] = {"path": root, "train": "images/train",
                           "val": "images/val" if "val" in used else "images/train"}
    if "test" in used:
        doc["test"] = "images/test"
    doc["nc"] = len(names)
    doc["names"] = dict(names)
    head = ("# endolite YOLO export.  'path' is relative to Ultralytics' datasets_dir: unzip\n"
            "# there under this name, or set 'path' to the unzipped folder's absolute path.\n")
    return (head + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)).encode("utf-8")


def _media_key(frame: ExportFrame) -> str:
    return frame.folder


def yolo_dataset(con: duckdb.DuckDBPyConnection, plan: ExportPlan, *, task: str = "detect",
                 fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0,
                 contours: str = "largest", root: str = "endolite_yolo") -> YoloExport:
    """The YOLO files of ``plan``'s frames and live masks (see the module docstring).

    Raises InvalidInput for an unknown ``task`` / ``contours`` or bad ``fractions``."""
    if task not in TASKS:
        raise InvalidInput(f"task: {task!r} is not one of {', '.join(TASKS)}")
    if contours not in CONTOURS:
        raise InvalidInput(f"contours: {contours!r} is not one of {', '.join(CONTOURS)}")
    frames = sorted(plan.frames, key=lambda f: f.frame_id)
    masks = annotations.masks_of(con, frame_ids=[f.frame_id for f in frames]) if frames else []
    label_names = {m.label_id: m.label for m in masks}
    classes = {label_id: i for i, label_id in enumerate(sorted(label_names))}
    names = {i: label_names[label_id] for label_id, i in classes.items()}
    splits = split_media([_media_key(f) for f in frames], fractions=fractions, seed=seed)
    by_frame: dict[int, list[Mask]] = {}
    for m in masks:
        by_frame.setdefault(int(m.frame_id), []).append(m)
    images: dict[int, str] = {}
    files: list[tuple[str, bytes]] = []
    for frame in frames:
        split = splits[_media_key(frame)]
        images[frame.frame_id] = str(PurePosixPath("images", split, frame.file_name))
        lines: list[str] = []
        for m in sorted(by_frame.get(frame.frame_id, []), key=lambda m: m.id):
            cls = classes[m.label_id]
            if task == "detect":
                lines.append(box_line(m, cls, frame.width, frame.height))
            else:
                lines.extend(polygon_lines(m, cls, frame.width, frame.height, contours=contours))
        text = "".join(line + "\n" for line in lines)
        files.append((f"labels/{split}/frame_{frame.frame_id}.txt", text.encode("utf-8")))
    files.sort()
    files.append(("data.yaml", _yaml(root, set(splits.values()), names)))
    return YoloExport(files=tuple(files), images=images, splits=splits, names=names)


__all__ = ["yolo_dataset", "YoloExport", "split_media", "box_line", "mask_polygons",
           "polygon_lines", "SPLITS", "TASKS", "DEFAULT_FRACTIONS"]
