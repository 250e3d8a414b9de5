"""Visual Layer JSON export: ``{"info": {...}, "media_items": [...]}`` of an approved plan.

The shape follows Visual Layer's export format (schema_version 1.1, as in its documentation's
"The Export Format" page and its published example export): every media item carries
``metadata_items``, a list of ``{"type": ..., "properties": {...}}``.  ``visual_layer_document``
returns the dict, checked against ``schemas/visual_layer.schema.json``; ``visual_layer_json``
its bytes.

Decisions:

* One media item per plan frame, by frame id.  ``media_id``: uuid5 of the frame id and its
  blanked copy's sha256; ``media_type``: ``video_frame`` (frame of a video) or ``image`` (image
  group); ``file_name`` / ``file_path``: the frame's name and path in the zip
  (``ExportFrame.file_name`` / ``arcname``, never an uploaded name); ``file_size``: the blanked
  copy's size as Visual Layer writes it (``"48.27KB"``: B, KB, MB, GB with 1024 steps, 2
  decimals); ``height`` / ``width``: pixels.
* ``cluster_id``: k-means over the thumbnail features frame extraction uses
  (``similarity.frame_features`` + ``similarity.clusters``, seeded), ``k`` =
  ``cluster_count`` or round(sqrt(N)); the id is a uuid5 of the cluster's smallest frame id.
* ``metadata_items`` in this order:
  ``video_info`` (video frames): ``video_name`` ``"video_<id>"`` (never the title),
  ``frame_timestamp`` seconds;
  ``image_label``: one per label with a *present* frame label on the frame (any annotator),
  ``original_id`` the label id, ``category_name`` its name, ``source`` ``"endolite/<source>"``
  (manual, segment, model, import);
  ``object_label``: one per live mask, ``original_id`` the mask id, ``bbox`` ``[x, y, w, h]``
  integer pixels (origin top left), ``source`` ``"endolite/<mask source>"``, and its own
  ``metadata_items`` (empty: endolite has nothing per object beyond that);
  ``user_tag``: one per row of ``frame_tags``: ``tag_name``, ``assigned_by`` (user name),
  ``assigned_date`` (Visual Layer's published example has no user tag; these property names
  are endolite's);
  ``issue`` of ``issue_type`` ``duplicates`` for frames in a near-duplicate group
  (``similarity.near_duplicate_groups`` on perceptual hashes of the blanked copies):
  ``duplicate_group_id`` a uuid5 of the group, ``confidence`` 1 - (smallest Hamming distance
  to another member) / 64, ``duplicate_threshold`` 1 - ``max_distance`` / 64;
  ``issue`` of ``issue_type`` ``mislabels`` (when ``settings`` is given): the likely mislabels
  (``endolite.train.mislabels``) of training run ``mislabel_run`` (default: the newest done run
  with held-out predictions) on the frame that no lead dismissed, most confident first:
  ``actual_label`` the annotation the run trained with (``"polyp"`` = present, ``"not polyp"``
  = absent; the label's current name), ``suggested_label`` the model's answer, ``confidence``
  its probability of it.
* Times are ISO 8601 in UTC without an offset, as Visual Layer writes them.
* No patient identifiers: no titles, original names, urls, client metadata, server paths.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import duckdb

from endolite import similarity
from endolite.config import Settings
from endolite.export.ai_dataset import NAMESPACE
from endolite.export.plan import ExportFrame, ExportPlan
from endolite.export.validation import to_json_bytes, validate
from endolite.records import Mask
from endolite.storage import annotations, tags
from endolite.storage.rows import fetch_dicts

SCHEMA = "visual_layer"
SCHEMA_VERSION = "1.1"
HASH_BITS = 64


def _vl_time(value: datetime) -> str:
    """UTC, ISO 8601 without an offset (naive values are taken as UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec="seconds")


def file_size_text(size: int) -> str:
    """Visual Layer's size string: ``"512B"``, ``"48.27KB"``, ``"3.38MB"`` (1024 steps)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)}B" if unit == "B" else f"{value:.2f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _present_labels(con: duckdb.DuckDBPyConnection, frame_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    rows = fetch_dicts(con, """
        SELECT fl.frame_id, fl.label_id, l.name, min(fl.source) AS source
        FROM frame_labels fl JOIN labels l ON l.id = fl.label_id
        WHERE list_contains(?, fl.frame_id) AND fl.value = 'present'
        GROUP BY fl.frame_id, fl.label_id, l.name
        ORDER BY fl.frame_id, fl.label_id
    """, [frame_ids])
    out: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(int(r["frame_id"]), []).append(
            {"type": "image_label", "properties": {
                "original_id": int(r["label_id"]), "category_name": r["name"],
                "source": f"endolite/{r['source']}"}})
    return out


def _object(mask: Mask) -> dict[str, Any]:
    return {"type": "object_label", "properties": {
        "original_id": int(mask.id), "category_name": mask.label,
        "source": f"endolite/{mask.source}",
        "bbox": [int(round(float(v))) for v in mask.bbox], "metadata_items": []}}


def _duplicates(hashes: Mapping[int, str], max_distance: int) -> dict[int, dict[str, Any]]:
    groups = similarity.near_duplicate_groups(hashes, max_distance=max_distance)
    members: dict[int, list[int]] = {}
    for frame_id, group in groups.items():
        members.setdefault(group, []).append(frame_id)
    out = {}
    for frame_id, group in groups.items():
        nearest = min(similarity.hamming(hashes[frame_id], hashes[o])
                      for o in members[group] if o != frame_id)
        out[frame_id] = {"type": "issue", "properties": {
            "issue_type": "duplicates",
            "confidence": round(1.0 - nearest / HASH_BITS, 6),
            "duplicate_group_id": str(uuid.uuid5(NAMESPACE, f"duplicates:{group}")),
            "duplicate_threshold": round(1.0 - max_distance / HASH_BITS, 6)}}
    return out


def _label_text(name: str, present: bool) -> str:
    return name if present else f"not {name}"


def _mislabels(con: duckdb.DuckDBPyConnection, settings: Settings | None, run_id: int | None,
               frame_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """``mislabels`` issues by frame id (none without ``settings`` or without a done run)."""
    from endolite.train.mislabels import latest_run, run_mislabels

    if settings is None or not frame_ids:
        return {}
    run_id = latest_run(con, settings) if run_id is None else run_id
    if run_id is None:
        return {}
    found = [m for m in run_mislabels(con, settings, run_id, frame_ids=frame_ids)
             if m.decision != "dismissed"]
    names = dict(con.execute("SELECT id, name FROM labels WHERE list_contains(?, id)",
                             [sorted({m.label_id for m in found})]).fetchall()) if found else {}
    out: dict[int, list[dict[str, Any]]] = {}
    for m in found:
        name = names.get(m.label_id, m.label)           # the label's name now (renames)
        out.setdefault(m.frame_id, []).append({"type": "issue", "properties": {
            "issue_type": "mislabels", "confidence": round(float(m.confidence), 6),
            "actual_label": _label_text(name, m.given),
            "suggested_label": _label_text(name, m.suggested)}})
    return out


def _cluster_ids(frames: list[ExportFrame], cluster_count: int | None, seed: int) -> dict[int, str]:
    if not frames:
        return {}
    features = similarity.frame_features([f.source for f in frames])
    k = cluster_count if cluster_count is not None else max(1, round(math.sqrt(len(frames))))
    labels = similarity.clusters(features, k, seed=seed).tolist()
    first: dict[int, int] = {}
    for frame, label in zip(frames, labels):           # frames are sorted by id
        first.setdefault(label, frame.frame_id)
    return {f.frame_id: str(uuid.uuid5(NAMESPACE, f"cluster:{first[c]}"))
            for f, c in zip(frames, labels)}


def visual_layer_document(con: duckdb.DuckDBPyConnection, plan: ExportPlan, *, dataset: str,
                          description: str = "", exported_by: str,
                          dataset_creation_time: datetime | None = None,
                          export_time: datetime | None = None,
                          hashes: Mapping[int, str] | None = None, max_distance: int = 6,
                          cluster_count: int | None = None, seed: int = 0,
                          settings: Settings | None = None,
                          mislabel_run: int | None = None) -> dict[str, Any]:
    """The Visual Layer dict of ``plan`` (see the module docstring).

    ``hashes``: ``frame_id -> phash`` (e.g. ``similarity.frame_hashes``, cached); default: hash
    the plan's blanked copies now.  ``max_distance``: Hamming bits for near duplicates.
    ``export_time`` defaults to now, ``dataset_creation_time`` to ``export_time``.
    ``settings`` (the data directory, where run directories live): add ``mislabels`` issues of
    training run ``mislabel_run`` (None: the newest done run with held-out predictions).
    Raises ExportRefused when the document fails the schema (naming the field).
    """
    frames = sorted(plan.frames, key=lambda f: f.frame_id)
    ids = [f.frame_id for f in frames]
    now = export_time or datetime.now(timezone.utc)
    if hashes is None:
        hashes = {f.frame_id: similarity.file_phash(f.source) for f in frames}
    duplicates = _duplicates({i: hashes[i] for i in ids if i in hashes}, max_distance)
    clusters = _cluster_ids(frames, cluster_count, seed)
    labels = _present_labels(con, ids) if ids else {}
    objects: dict[int, list[dict[str, Any]]] = {}
    for m in (annotations.masks_of(con, frame_ids=ids) if ids else []):
        objects.setdefault(int(m.frame_id), []).append(_object(m))
    frame_tags = tags.tags_of(con, ids)
    mislabels = _mislabels(con, settings, mislabel_run, ids)
    items = []
    for f in frames:
        meta: list[dict[str, Any]] = []
        if f.video_id is not None:
            meta.append({"type": "video_info", "properties": {
                "video_name": f"video_{f.video_id}",
                "frame_timestamp": float(f.timestamp) if f.timestamp is not None else None}})
        meta += labels.get(f.frame_id, [])
        meta += objects.get(f.frame_id, [])
        meta += [{"type": "user_tag", "properties": {
            "tag_name": t.tag, "assigned_by": t.username,
            "assigned_date": _vl_time(t.created_at)}} for t in frame_tags.get(f.frame_id, [])]
        if f.frame_id in duplicates:
            meta.append(duplicates[f.frame_id])
        meta += mislabels.get(f.frame_id, [])
        items.append({
            "media_id": str(uuid.uuid5(NAMESPACE, f"frame:{f.frame_id}:{f.sha256}")),
            "media_type": "video_frame" if f.video_id is not None else "image",
            "file_name": f.file_name, "file_path": f.arcname,
            "file_size": file_size_text(f.source.stat().st_size),
            "height": int(f.height), "width": int(f.width),
            "cluster_id": clusters[f.frame_id],
            "metadata_items": meta,
        })
    document = {
        "info": {"schema_version": SCHEMA_VERSION, "dataset": dataset,
                 "dataset_creation_time": _vl_time(dataset_creation_time or now),
                 "export_time": _vl_time(now), "description": description,
                 "exported_by": exported_by, "total_media_items": len(items)},
        "media_items": items,
    }
    validate(document, SCHEMA)
    return document


def visual_layer_json(con: duckdb.DuckDBPyConnection, plan: ExportPlan, **options: Any) -> bytes:
    """``visual_layer_document(con, plan, **options)`` as UTF-8 JSON bytes (validated)."""
    return to_json_bytes(visual_layer_document(con, plan, **options))


__all__ = ["visual_layer_document", "visual_layer_json", "file_size_text", "SCHEMA_VERSION"]
