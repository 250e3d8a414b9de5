"""COCO annotations from another tool (CVAT, Label Studio, endolite's own export) -> masks to
store: parse and validate a COCO dict, match its images to frames by file name and decode every
annotation into a checked, non-empty mask (compressed COCO RLE).  Pure: no database, no files written
(``endolite.services.coco_import`` stores the plan in one transaction).

Format (pycocotools' ``mask.py`` header is the spec): ``images`` ``{id, file_name, width,
height}``, ``categories`` ``{id, name}``, ``annotations`` ``{id, image_id, category_id,
segmentation, bbox, iscrowd}``.  Coordinates are pixels ``(x, y)``, x to the right (column), y
down (row); ``bbox`` is ``[x, y, w, h]``.  ``segmentation`` is one of:

* polygons ``[[x0, y0, x1, y1, ...], ...]`` (CVAT, Label Studio) -> kind ``polygon``,
  rasterised with pycocotools (``frPyObjects`` + ``merge``), the rule endolite's polygon tool
  and COCO export use; the prompt keeps ``{"polygon": [[x, y], ...]}`` for one part (the export
  writes it back as the same polygon) or ``{"polygons": [...]}`` for several;
* RLE ``{"size": [H, W], "counts": str | [int, ...]}`` (compressed string, or uncompressed list
  counts as CVAT writes with ``iscrowd`` 1) -> kind ``mask``; counts are checked (runs sum to
  H * W) before pycocotools decodes them;
* missing / ``[]`` / ``None`` -> the ``bbox`` becomes a box, kind ``box``, filled as the box tool
  does (``masks.box_to_mask``: pixels whose centre lies inside), prompt ``{"box": [x0, y0, x1,
  y1]}``.

Image matching: the image's base name (any folder part dropped, case ignored) against each
frame's original file name and stored file name; then by stem (``frame_<id>.jpg`` names frame
``<id>``; a mask-style stem match as ``annotate.import_mask_files`` does); then with Label
Studio's upload prefix (``1a2b3c4d-``) removed.  Several frames of one name: those whose size is
the image's; still several is an error.  Only images that carry annotations must match.

Every error is an ``InvalidInput`` naming the source, the annotation id and the reason (unknown
image, image size mismatch, bad segmentation, unknown category); the first one stops the plan.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from endolite import masks as mask_ops
from endolite.errors import InvalidInput
from endolite.records import ShapeKind

MAX_BYTES = 256 * 1024 * 1024            # a COCO file larger than this is refused
MAX_OUTLINE = 200                        # polygon outline limit, in image (width + height)s
_LS_PREFIX = re.compile(r"^[0-9a-f]{8}-(.+)$")


@dataclass(frozen=True)
class CocoImage:
    id: int
    file_name: str
    width: int | None
    height: int | None


@dataclass(frozen=True)
class CocoAnnotation:
    """One annotation as read; ``segmentation`` unchecked, ``bbox`` ``(x, y, w, h)`` or None."""

    id: int
    image_id: int
    category_id: int
    segmentation: Any
    bbox: tuple[float, ...] | None
    iscrowd: int


@dataclass(frozen=True)
class CocoDocument:
    images: Mapping[int, CocoImage]
    categories: Mapping[int, str]          # category id -> name (stripped)
    annotations: tuple[CocoAnnotation, ...]


@dataclass(frozen=True)
class FrameRef:
    """A frame as matching needs it: id, size and the names it answers to
    (``annotate.frame_names``)."""

    id: int
    width: int
    height: int
    names: tuple[str, ...]


@dataclass(frozen=True)
class PlannedMask:
    """One annotation decoded, kept as compressed COCO RLE ``{"size": [H, W], "counts": str}``
    in frame ``frame_id``'s pixel grid (never empty) so a large file's plan stays small;
    ``mask()`` gives the ``(H, W) bool`` array."""

    annotation_id: int
    frame_id: int
    category: str
    kind: ShapeKind
    rle: dict[str, Any]
    prompt: dict[str, Any]

    def mask(self) -> np.ndarray:
        return mask_ops.decode(self.rle)


# --- reading and parsing ----------------------------------------------------------------------

def read_document(source: str | Path | bytes, *, name: str | None = None) -> dict[str, Any]:
    """The JSON object of a COCO file (a path or its bytes); ``name`` is used in errors."""
    label = name or (Path(source).name if not isinstance(source, bytes) else "COCO file")
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        if not path.is_file():
            raise InvalidInput(f"{label}: no such file")
        if path.stat().st_size > MAX_BYTES:
            raise InvalidInput(f"{label}: larger than {MAX_BYTES // 2**20} MiB")
        data = path.read_bytes()
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"{label}: larger than {MAX_BYTES // 2**20} MiB")
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidInput(f"{label}: not a JSON file ({exc})") from exc
    if not isinstance(doc, dict):
        raise InvalidInput(f"{label}: a COCO file is a JSON object with images, categories and "
                           f"annotations, got a {type(doc).__name__}")
    return doc


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or int(value) != value:
        raise InvalidInput(f"{what}: {value!r} is not an integer")
    return int(value)


def _list(doc: Mapping[str, Any], key: str, source: str) -> list[Any]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise InvalidInput(f"{source}: '{key}' must be a list"
                           + (" (missing)" if value is None else f", got {type(value).__name__}"))
    return value


def parse_document(doc: Mapping[str, Any], *, source: str = "COCO file") -> CocoDocument:
    """Check the structure of a COCO dict (ids unique, fields typed); segmentations are checked
    later, per annotation, by ``plan_import``."""
    images: dict[int, CocoImage] = {}
    for i, raw in enumerate(_list(doc, "images", source)):
        if not isinstance(raw, dict):
            raise InvalidInput(f"{source}: images[{i}] is not an object")
        image_id = _int(raw.get("id"), f"{source}: images[{i}].id")
        name = raw.get("file_name")
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput(f"{source}: image {image_id}: file_name missing or empty")
        if image_id in images:
            raise InvalidInput(f"{source}: image id {image_id} appears twice")
        size = [None if raw.get(k) is None else _int(raw[k], f"{source}: image {image_id}.{k}")
                for k in ("width", "height")]
        if any(s is not None and s <= 0 for s in size):
            raise InvalidInput(f"{source}: image {image_id}: width / height must be positive")
        images[image_id] = CocoImage(image_id, name.strip(), size[0], size[1])
    categories: dict[int, str] = {}
    for i, raw in enumerate(_list(doc, "categories", source)):
        if not isinstance(raw, dict):
            raise InvalidInput(f"{source}: categories[{i}] is not an object")
        cat_id = _int(raw.get("id"), f"{source}: categories[{i}].id")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput(f"{source}: category {cat_id}: name missing or empty")
        if cat_id in categories:
            raise InvalidInput(f"{source}: category id {cat_id} appears twice")
        categories[cat_id] = name.strip()
    annotations: list[CocoAnnotation] = []
    seen: set[int] = set()
    for i, raw in enumerate(_list(doc, "annotations", source)):
        if not isinstance(raw, dict):
            raise InvalidInput(f"{source}: annotations[{i}] is not an object")
        ann_id = _int(raw.get("id"), f"{source}: annotations[{i}].id")
        where = f"{source}: annotation {ann_id}"
        if ann_id in seen:
            raise InvalidInput(f"{where}: the id appears twice")
        seen.add(ann_id)
        bbox = raw.get("bbox")
        if bbox is not None:
            if not isinstance(bbox, list) or len(bbox) != 4 or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in bbox):
                raise InvalidInput(f"{where}: bbox must be [x, y, w, h] numbers, got {bbox!r}")
            bbox = tuple(float(v) for v in bbox)
        annotations.append(CocoAnnotation(
            id=ann_id, image_id=_int(raw.get("image_id"), f"{where}: image_id"),
            category_id=_int(raw.get("category_id"), f"{where}: category_id"),
            segmentation=raw.get("segmentation"), bbox=bbox,
            iscrowd=_int(raw.get("iscrowd", 0) or 0, f"{where}: iscrowd")))
    return CocoDocument(images=images, categories=categories, annotations=tuple(annotations))


# --- matching images to frames ----------------------------------------------------------------

def _base(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).name.lower()


def _stem(name: str) -> str:
    return PurePosixPath(_base(name)).stem


class FrameIndex:
    """Frames by the names they answer to (lower case): full base name and stem."""

    def __init__(self, frames: Iterable[FrameRef]) -> None:
        self.frames = {f.id: f for f in frames}
        self.by_name: dict[str, set[int]] = {}
        self.by_stem: dict[str, set[int]] = {}
        for f in self.frames.values():
            for name in f.names:
                if "." in _base(name):
                    self.by_name.setdefault(_base(name), set()).add(f.id)
                self.by_stem.setdefault(_stem(name), set()).add(f.id)

    def match(self, image: CocoImage, *, where: str) -> FrameRef:
        """The frame ``image`` names; InvalidInput (unknown image / ambiguous) otherwise."""
        base = _base(image.file_name)
        tries = [base]
        prefixed = _LS_PREFIX.match(base)
        if prefixed:
            tries.append(prefixed.group(1))
        for name in tries:
            for found in (self.by_name.get(name), self.by_stem.get(_stem(name))):
                if found:
                    return self._one(sorted(found), image, where=where)
        raise InvalidInput(f"{where}: unknown image {image.file_name!r} (image {image.id}): no "
                           f"frame has that file name; name it after the frame's original file "
                           f"or frame_<id>")

    def _one(self, ids: list[int], image: CocoImage, *, where: str) -> FrameRef:
        if len(ids) > 1 and image.width is not None and image.height is not None:
            sized = [i for i in ids if (self.frames[i].width, self.frames[i].height)
                     == (image.width, image.height)]
            ids = sized or ids
        if len(ids) > 1:
            raise InvalidInput(f"{where}: image {image.file_name!r} (image {image.id}) matches "
                               f"{len(ids)} frames (ids {', '.join(map(str, ids[:10]))}); import "
                               f"into one image group / video, or name images frame_<id>")
        return self.frames[ids[0]]


# --- decoding segmentations -------------------------------------------------------------------

def _string_counts(counts: str, *, where: str) -> list[int]:
    """The run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``)."""
    out: list[int] = []
    p = 0
    while p < len(counts):
        x = k = 0
        more = True
        while more:
            if p >= len(counts):
                raise InvalidInput(f"{where}: bad segmentation: RLE counts string ends mid-number")
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                raise InvalidInput(f"{where}: bad segmentation: RLE counts string has "
                                   f"character {counts[p]!r}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def _rle(seg: Mapping[str, Any], height: int, width: int, *, where: str) -> dict[str, Any]:
    """A checked RLE segmentation as compressed COCO RLE (runs validated before pycocotools
    sees them: it trusts them)."""
    size = seg.get("size")
    counts = seg.get("counts")
    if not isinstance(size, list) or len(size) != 2:
        raise InvalidInput(f"{where}: bad segmentation: RLE size must be [height, width]")
    h, w = (_int(v, f"{where}: RLE size") for v in size)
    if (h, w) != (height, width):
        raise InvalidInput(f"{where}: bad segmentation: RLE size {w}x{h} (w x h) differs from "
                           f"the image's {width}x{height}")
    if isinstance(counts, str):
        runs = _string_counts(counts, where=where)
    elif isinstance(counts, list):
        runs = [_int(v, f"{where}: bad segmentation: RLE counts") for v in counts]
    else:
        raise InvalidInput(f"{where}: bad segmentation: RLE counts must be a string or a list")
    if any(r < 0 for r in runs) or sum(runs) != h * w:
        raise InvalidInput(f"{where}: bad segmentation: RLE runs must be non-negative and sum to "
                           f"{h}*{w} = {h * w}, got {sum(runs)}")
    if isinstance(counts, str):
        return {"size": [h, w], "counts": counts}
    from pycocotools import mask as coco_mask

    compressed = coco_mask.frPyObjects({"size": [h, w], "counts": runs}, h, w)
    return {"size": [h, w], "counts": compressed["counts"].decode("ascii")}


def _polygons(seg: list[Any], height: int, width: int, *, where: str) -> list[list[float]]:
    """The polygons as flat float lists.  Points far outside the image (more than one image size
    beyond an edge) and outlines longer than ``MAX_OUTLINE`` times width + height are refused:
    pycocotools' rasteriser allocates for every pixel step along the outline."""
    polys = []
    length = 0.0
    for part in seg:
        if not isinstance(part, list) or len(part) < 6 or len(part) % 2:
            raise InvalidInput(f"{where}: bad segmentation: a polygon is a list [x0, y0, x1, y1, "
                               f"...] of at least 3 points")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   for v in part):
            raise InvalidInput(f"{where}: bad segmentation: polygon coordinates must be finite "
                               f"numbers")
        xs, ys = np.asarray(part[0::2], dtype=np.float64), np.asarray(part[1::2], dtype=np.float64)
        if (np.abs(xs - width / 2) > 1.5 * width).any() or (np.abs(ys - height / 2) > 1.5 * height).any():
            raise InvalidInput(f"{where}: bad segmentation: a polygon point lies far outside the "
                               f"{width}x{height} image")
        span = np.maximum(np.abs(np.diff(xs, append=xs[:1])), np.abs(np.diff(ys, append=ys[:1])))
        length += float(span.sum())
        if length > MAX_OUTLINE * (height + width):
            raise InvalidInput(f"{where}: bad segmentation: polygon outline longer than "
                               f"{MAX_OUTLINE} times the image's width + height")
        polys.append([float(v) for v in part])
    return polys


def decode_annotation(ann: CocoAnnotation, height: int, width: int, *,
                      where: str) -> tuple[ShapeKind, dict[str, Any], dict[str, Any]]:
    """``(kind, rle, prompt)`` of one annotation on a ``height`` x ``width`` image; ``rle`` is
    compressed COCO RLE ``{"size": [H, W], "counts": str}``.

    Raises InvalidInput ("bad segmentation" / "bad bbox") naming ``where``; an annotation that
    covers no pixel of the image is bad too (endolite stores no empty masks)."""
    seg = ann.segmentation
    if seg is None or (isinstance(seg, (list, dict)) and not seg):
        if ann.bbox is None:
            raise InvalidInput(f"{where}: bad segmentation: neither a segmentation nor a bbox")
        x, y, w, h = ann.bbox
        if w <= 0 or h <= 0:
            raise InvalidInput(f"{where}: bad bbox: width and height must be positive, got "
                               f"{list(ann.bbox)}")
        box = [x, y, x + w, y + h]
        rle = mask_ops.encode(mask_ops.box_to_mask(box, height, width))
        kind, prompt = ShapeKind.BOX, {"box": box}
    elif isinstance(seg, dict):
        kind, rle, prompt = ShapeKind.MASK, _rle(seg, height, width, where=where), {}
    elif isinstance(seg, list):
        polys = _polygons(seg, height, width, where=where)
        from pycocotools import mask as coco_mask

        merged = coco_mask.merge(coco_mask.frPyObjects(polys, height, width))
        rle = {"size": [height, width], "counts": merged["counts"].decode("ascii")}
        points = [np.asarray(p).reshape(-1, 2).tolist() for p in polys]
        kind = ShapeKind.POLYGON
        prompt = {"polygon": points[0]} if len(points) == 1 else {"polygons": points}
    else:
        raise InvalidInput(f"{where}: bad segmentation: expected polygons, an RLE object or [], "
                           f"got {type(seg).__name__}")
    if mask_ops.area(rle) == 0:
        raise InvalidInput(f"{where}: bad segmentation: covers no pixel of the "
                           f"{width}x{height} image")
    return kind, rle, prompt


# --- the plan ---------------------------------------------------------------------------------

def plan_import(doc: CocoDocument, frames: Sequence[FrameRef], *,
                source: str = "COCO file") -> list[PlannedMask]:
    """Every annotation of ``doc`` as a mask on its frame, in file order.

    Raises InvalidInput at the first annotation with an unknown image (not in ``images`` or no
    frame of that name), an image size mismatch (the image's width / height differ from the
    frame's), a bad segmentation or an unknown category."""
    index = FrameIndex(frames)
    matched: dict[int, FrameRef] = {}
    out: list[PlannedMask] = []
    for ann in doc.annotations:
        where = f"{source}: annotation {ann.id}"
        image = doc.images.get(ann.image_id)
        if image is None:
            raise InvalidInput(f"{where}: unknown image id {ann.image_id} (not in images)")
        if ann.category_id not in doc.categories:
            raise InvalidInput(f"{where}: unknown category id {ann.category_id} (not in "
                               f"categories)")
        frame = matched.get(image.id) or index.match(image, where=where)
        matched[image.id] = frame
        if (image.width is not None and image.width != frame.width) or \
                (image.height is not None and image.height != frame.height):
            raise InvalidInput(f"{where}: image size mismatch: {image.file_name!r} is "
                               f"{image.width}x{image.height} in the file but frame {frame.id} "
                               f"is {frame.width}x{frame.height}")
        kind, rle, prompt = decode_annotation(ann, frame.height, frame.width, where=where)
        prompt = {**prompt, "coco": {"annotation_id": ann.id, "file_name": image.file_name,
                                     "source": source}}
        out.append(PlannedMask(annotation_id=ann.id, frame_id=frame.id,
                               category=doc.categories[ann.category_id], kind=kind, rle=rle,
                               prompt=prompt))
    return out
