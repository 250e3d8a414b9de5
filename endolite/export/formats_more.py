"""Zip contents of the AI-dataset, YOLO and Visual Layer formats (``formats.contents`` calls
``contents`` here for them).

* ``ai-dataset``: ``ai_dataset.json`` (``ai_dataset.ai_dataset_json``: options ``name``,
  ``description``, ``dataset_type``, ``ai_model_type``, ``only``, ``use_export_flags``,
  ``segment_ids``; ``extra``: ``dataset_id``, ``labelset``).  With ``frames`` the annotated
  frames ship at their ``relative_path`` (``ExportFrame.arcname``).  Annotation count: frame
  annotations + segments.
* ``yolo``: the label files and ``data.yaml`` of ``yolo.yolo_dataset`` (``extra``: ``task``
  detect | segment, ``fractions``, ``seed``, ``contours``, ``root``), every plan frame copied
  to its ``images/<split>/`` path.  Annotation count: label lines.
* ``visual-layer``: ``visual_layer.json`` (``visual_layer.visual_layer_json``: ``name`` as the
  dataset, ``description``, ``exported_by``; ``extra``: ``max_distance``, ``cluster_count``,
  ``seed``), every plan frame at its ``file_path``.  Annotation count: image labels, object
  labels and user tags.
"""

from __future__ import annotations

import json

import duckdb

from endolite.config import Settings
from endolite.errors import InvalidInput
from endolite.export import ai_dataset, visual_layer, yolo
from endolite.export.bundle import Contents
from endolite.export.formats import ExportOptions
from endolite.export.plan import ExportPlan

_AI_EXTRA = ("dataset_id", "labelset")
_YOLO_EXTRA = ("task", "fractions", "seed", "contours", "root")
_VL_EXTRA = ("max_distance", "cluster_count", "seed", "mislabel_run")
_VL_COUNTED = ("image_label", "object_label", "user_tag")


def _extra(options: ExportOptions, allowed: tuple[str, ...], fmt: str) -> dict:
    unknown = sorted(set(options.extra) - set(allowed))
    if unknown:
        raise InvalidInput(f"{fmt}: unknown option(s) {', '.join(unknown)}; "
                           f"this format takes {', '.join(allowed)}")
    return dict(options.extra)


def _ai_dataset(con, plan: ExportPlan, o: ExportOptions) -> Contents:
    data = ai_dataset.ai_dataset_json(
        con, plan, name=o.name, description=o.description or None, dataset_type=o.dataset_type,
        ai_model_type=o.ai_model_type, only=o.only, use_export_flags=o.use_export_flags,
        segment_ids=o.segment_ids, **_extra(o, _AI_EXTRA, "ai-dataset"))
    doc = json.loads(data)
    frames, referenced = (), ()
    if o.frames:
        annotated = sorted({a["frame_id"] for a in doc["frame_annotations"]})
        frames = tuple((plan.frame(f).arcname, plan.frame(f)) for f in annotated)
        referenced = tuple(arc for arc, _ in frames)
    count = doc["summary"]["image_annotation_count"] + doc["summary"]["video_annotation_count"]
    return Contents(documents=(("ai_dataset.json", data),), frames=frames,
                    annotation_count=count, referenced=referenced)


def _yolo(con, plan: ExportPlan, o: ExportOptions) -> Contents:
    extra = _extra(o, _YOLO_EXTRA, "yolo")
    if "fractions" in extra:
        extra["fractions"] = tuple(float(v) for v in extra["fractions"])
    out = yolo.yolo_dataset(con, plan, **extra)
    frames = tuple((out.images[f.frame_id], f) for f in sorted(plan.frames, key=lambda f: f.frame_id))
    return Contents(documents=out.files, frames=frames, annotation_count=out.annotation_count,
                    referenced=tuple(arc for arc, _ in frames))


def _visual_layer(con, settings: Settings, plan: ExportPlan, o: ExportOptions,
                  exported_by: str) -> Contents:
    data = visual_layer.visual_layer_json(
        con, plan, dataset=o.name, description=o.description, exported_by=exported_by,
        settings=settings, **_extra(o, _VL_EXTRA, "visual-layer"))
    doc = json.loads(data)
    frames = tuple((f.arcname, f) for f in sorted(plan.frames, key=lambda f: f.frame_id))
    count = sum(1 for item in doc["media_items"] for m in item["metadata_items"]
                if m["type"] in _VL_COUNTED)
    return Contents(documents=(("visual_layer.json", data),), frames=frames,
                    annotation_count=count,
                    referenced=tuple(i["file_path"] for i in doc["media_items"]))


def contents(con: duckdb.DuckDBPyConnection, settings: Settings, plan: ExportPlan, fmt: str,
             options: ExportOptions, *, exported_by: str) -> Contents:
    """The format-specific contents (documents, frames, count, referenced paths) of ``fmt``;
    ``formats.contents`` adds the manifest and videos.  InvalidInput for another format or an
    unknown ``extra`` option."""
    if fmt == "ai-dataset":
        return _ai_dataset(con, plan, options)
    if fmt == "yolo":
        return _yolo(con, plan, options)
    if fmt == "visual-layer":
        return _visual_layer(con, settings, plan, options, exported_by)
    raise InvalidInput(f"format {fmt!r} is not one of ai-dataset, yolo, visual-layer")
