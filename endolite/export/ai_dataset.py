"""lx-dtypes' AI-dataset export (``AIDataSetExportPayload``): one JSON document per export.

``ai_dataset_document`` reads (never writes) the frame labels and segments of an approved
``ExportPlan`` and returns the payload as a dict, checked against the shipped JSON Schema
(``schemas/ai_dataset.schema.json``, which mirrors lx-dtypes' pydantic models:
``AIDataSetExportPayload``, ``AIDataSetExportSummary``, ``AIDataSetFrameAnnotationExport``,
``AIDataSetFrameLabelExport``, ``PatientVideoFile``, ``PVideoSegment``, ``PVideoSegmentState``,
all ``extra="forbid"``); ``ai_dataset_json`` returns its bytes.  ``check_model_type`` is
lx-annotate's pairing check of ``dataset_type`` and ``ai_model_type``.

Decisions:

* ``frame_annotations``: the rows of lx-annotate's frame-annotation table
  (``lx_table.table_rows``: present -> ``value`` true, absent -> false, unknown left out; the
  ``only`` / ``use_export_flags`` / ``segment_ids`` options as there) whose frame is in the
  plan.  Frames of image groups are left out: lx-annotate's frame annotations belong to video
  frames (``video_id``, ``video_uuid``, ``video_hash`` are required).
  ``relative_path`` is the frame's path in the zip (``ExportFrame.arcname``); ``file_path``,
  ``original_file_name``, ``model_meta_id`` and ``external_annotation_id`` are null;
  ``confidence`` is the frame label's float value; ``timestamp`` seconds from the video's start.
* ``patient_videos``: every video of the plan, keyed by its uuid, with its live segments
  (``use_export_flags``: only those marked for export).  endolite's segments are already
  ``start <= n < end`` (end exclusive), which is what lx-dtypes' ``end > start`` rule expects;
  the numbers pass through unchanged.  ``export_segment`` is the segment's ``for_export``; its
  state says ``annotation`` (made by a person), not ``prediction``; ``frames_extracted`` is
  true when a plan frame lies inside it.  ``anonymization_state`` is ``validated`` (the gate
  lets nothing else through); ``sensitive_meta``, ``patient`` and ``patient_examination`` are
  null; ``fnd.file`` is the anonymized video's path in the zip (``ExportVideo.arcname``).
* uuids are uuid5 of the anonymized video's sha256 (and of the segment id below it), so the
  same content exported twice keeps its uuids; ``video_hash`` is that sha256 (the anonymized
  file, never the raw upload's).
* No patient identifiers: no titles, original names, source urls, client metadata, paths on
  the server.  Annotator user names are kept (lx-annotate's ``annotator``).
* Datetimes are ISO 8601 with an offset (``+00:00``), as lx-dtypes' ``AwareDatetime`` wants.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import duckdb

from endolite.errors import ExportRefused
from endolite.export.lx_table import _iso_utc, table_rows
from endolite.export.plan import ExportPlan, ExportVideo
from endolite.export.validation import to_json_bytes, validate
from endolite.storage.rows import fetch_dicts

SCHEMA = "ai_dataset"
SCHEMA_VERSION = "1.0"
NAMESPACE = uuid.UUID("6f1c54a2-3d0e-5b8e-9a41-2c7e0d5b9e10")   # endolite's uuid5 namespace

DATASET_TYPES = ("image", "video")
# lx-annotate: an image dataset serves frame-annotation models, a video dataset segment models.
MODEL_TYPES: dict[str, tuple[str, ...]] = {
    "image": ("image_multilabel_classification", "phi_region_detector"),
    "video": ("video_segment_classification",),
}


def check_model_type(dataset_type: str, ai_model_type: str) -> None:
    """lx-annotate's pre-handover pairing: ``image`` datasets are for
    ``image_multilabel_classification`` (or ``phi_region_detector``), ``video`` datasets for
    ``video_segment_classification``.  Raises ExportRefused naming the field otherwise."""
    if dataset_type not in MODEL_TYPES:
        raise ExportRefused(f"dataset_type: {dataset_type!r} is not one of "
                            f"{', '.join(DATASET_TYPES)}")
    allowed = MODEL_TYPES[dataset_type]
    if ai_model_type not in allowed:
        others = [t for t, models in MODEL_TYPES.items() if ai_model_type in models]
        hint = f" (a {others[0]} model type)" if others else ""
        raise ExportRefused(f"ai_model_type: {ai_model_type!r}{hint} does not fit dataset_type "
                            f"{dataset_type!r}, which needs {' or '.join(allowed)}")


def video_uuid(video: ExportVideo) -> str:
    """The video's uuid in the payload: uuid5 of its anonymized file's sha256."""
    return str(uuid.uuid5(NAMESPACE, f"video:{video.sha256}"))


def _segment_uuid(video_key: str, segment_id: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{video_key}:segment:{int(segment_id)}"))


def _segments(con: duckdb.DuckDBPyConnection, video_ids: Sequence[int],
              only_for_export: bool) -> list[dict[str, Any]]:
    sql = """
        SELECT s.id, s.video_id, s.label_id, l.name AS label, s.start_frame, s.end_frame,
               s.for_export, s.created_at
        FROM segments s JOIN labels l ON l.id = s.label_id
        WHERE s.deleted_at IS NULL AND list_contains(?, s.video_id)
    """
    if only_for_export:
        sql += " AND s.for_export"
    return fetch_dicts(con, sql + " ORDER BY s.video_id, s.start_frame, s.end_frame, s.id",
                       [[int(v) for v in video_ids]])


def _patient_video(video: ExportVideo, segments: list[dict[str, Any]], frame_numbers: set[int],
                   *, labelset: str, now: str) -> dict[str, Any]:
    key = video_uuid(video)
    out: dict[str, Any] = {}
    for s in segments:
        seg_key = _segment_uuid(key, s["id"])
        start, end = int(s["start_frame"]), int(s["end_frame"])
        created = _iso_utc(s["created_at"]) or now
        out[seg_key] = {
            "created_at": created, "uuid": seg_key, "tags": [],
            "external_ids": {"endolite_segment_id": str(int(s["id"]))},
            "start_frame_number": start, "end_frame_number": end,
            "patient_video_file": key, "label": s["label"], "labelset": labelset,
            "export_segment": bool(s["for_export"]),
            "patient_video_segment_state": {
                "created_at": created, "uuid": str(uuid.uuid5(NAMESPACE, f"{seg_key}:state")),
                "tags": [], "prediction": False, "annotation": True,
                "frames_extracted": any(start <= n < end for n in frame_numbers),
                "is_validated": False, "patient_video_segment": seg_key,
            },
        }
    return {
        "created_at": now, "uuid": key, "tags": [],
        "external_ids": {"endolite_video_id": str(video.video_id)},
        "patient": None, "patient_examination": None,
        "fnd": {"created_at": now, "file": video.arcname, "dir": None, "files": [], "dirs": []},
        "patient_video_segments": out,
        "anonymization_state": "validated",
        "sensitive_meta": None,
    }


def _annotation(row: dict[str, Any], plan: ExportPlan, videos: dict[int, ExportVideo],
                labelset: str) -> dict[str, Any]:
    frame = plan.frame(row["frame_id"])
    video = videos[row["video_id"]]
    key = video_uuid(video)
    return {
        "annotation_id": row["annotation_id"], "frame_id": row["frame_id"],
        "frame_number": row["frame_number"],
        "timestamp": float(frame.timestamp) if frame.timestamp is not None else None,
        "relative_path": frame.arcname, "file_path": None,
        "patient_video_file_uuid": key, "video_id": row["video_id"], "video_uuid": key,
        "video_hash": video.sha256, "original_file_name": None,
        "label": {"id": row["label_id"], "name": row["label_name"], "labelset_name": labelset},
        "value": row["value"], "confidence": row["float_value"], "annotator": row["annotator"],
        "information_source_name": row["information_source_name"], "model_meta_id": None,
        "external_annotation_id": None,
        "date_created": row["date_created"], "date_modified": row["date_modified"],
    }


def ai_dataset_document(con: duckdb.DuckDBPyConnection, plan: ExportPlan, *, name: str | None,
                        description: str | None = None, dataset_type: str = "image",
                        ai_model_type: str = "image_multilabel_classification",
                        dataset_id: int = 1, is_active: bool = True,
                        created_at: datetime | None = None, labelset: str = "endolite",
                        only: str = "all", use_export_flags: bool = False,
                        segment_ids: Sequence[int] | None = None) -> dict[str, Any]:
    """The ``AIDataSetExportPayload`` dict of ``plan`` (see the module docstring).

    ``created_at`` (aware, or naive UTC; default now) is also ``updated_at``.  ``labelset``
    names the label set of every label and segment (endolite has one flat label list).
    ``only`` / ``use_export_flags`` / ``segment_ids``: as ``lx_table.table_rows``;
    ``use_export_flags`` also keeps only the segments marked for export.  Raises ExportRefused
    for a mismatched dataset / model type or a document that fails the schema (naming the
    field), InvalidInput for a bad ``only``.
    """
    check_model_type(dataset_type, ai_model_type)
    stamp = (created_at or datetime.now(timezone.utc))
    stamp = stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=timezone.utc)
    now = stamp.isoformat()
    videos = {v.video_id: v for v in plan.videos}
    planned = {f.frame_id for f in plan.frames if f.video_id is not None}
    rows = [r for r in table_rows(con, video_ids=list(videos), only=only,
                                  use_export_flags=use_export_flags, segment_ids=segment_ids)
            if r["frame_id"] in planned]
    annotations = [_annotation(r, plan, videos, labelset) for r in rows]
    segments = _segments(con, list(videos), use_export_flags)
    numbers: dict[int, set[int]] = {}
    for f in plan.frames:
        if f.video_id is not None:
            numbers.setdefault(f.video_id, set()).add(f.frame_number)
    patient_videos = {
        video_uuid(v): _patient_video(v, [s for s in segments if s["video_id"] == v.video_id],
                                      numbers.get(v.video_id, set()), labelset=labelset, now=now)
        for v in plan.videos}
    labels = {r["label_id"] for r in rows} | {int(s["label_id"]) for s in segments}
    document = {
        "schema_version": SCHEMA_VERSION, "dataset_id": int(dataset_id), "name": name,
        "description": description, "dataset_type": dataset_type,
        "ai_model_type": ai_model_type, "is_active": bool(is_active),
        "created_at": now, "updated_at": now,
        "summary": {"image_annotation_count": len(annotations),
                    "video_annotation_count": len(segments),
                    "frame_count": len({r["frame_id"] for r in rows}),
                    "video_count": len(patient_videos), "label_count": len(labels)},
        "patient_videos": patient_videos,
        "frame_annotations": annotations,
    }
    validate(document, SCHEMA)
    return document


def ai_dataset_json(con: duckdb.DuckDBPyConnection, plan: ExportPlan, **options: Any) -> bytes:
    """``ai_dataset_document(con, plan, **options)`` as UTF-8 JSON bytes (validated)."""
    return to_json_bytes(ai_dataset_document(con, plan, **options))


__all__ = ["ai_dataset_document", "ai_dataset_json", "check_model_type", "video_uuid",
           "MODEL_TYPES", "DATASET_TYPES", "SCHEMA_VERSION"]
