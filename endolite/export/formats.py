"""What each export format puts in its zip: ``contents(con, plan, fmt, options)`` -> ``Contents``.

Formats (``FORMATS``): ``lx-csv`` / ``lx-json`` (lx-annotate's frame-annotation table,
``annotations.csv`` / ``annotations.json``), ``ai-dataset`` (``ai_dataset.json``), ``coco``
(``annotations/instances.json`` plus ``masks/frame_<id>/label_<id>.png``), ``yolo``
(``data.yaml``, ``images/``, ``labels/``), ``visual-layer`` (``visual_layer.json``).
Every zip also holds ``manifest.json``: format, time, media ids and counts (no patient data).

Frames (``--frames``; always for YOLO and Visual Layer, whose metadata names image files) are
the gate's blanked copies at ``frames/video_<id>/frame_<frame_id><ext>`` (``ExportFrame``);
with ``transcode_fps`` (lx tables only) they are decoded from the anonymized video instead:
every ``round(fps / transcode_fps)``-th frame plus every annotated one, named
``frame_<frame_number:06d>.<ext>``.  ``videos``: the anonymized copies at
``videos/video_<id>.mp4``.  Only what the plan holds can be written: the plan comes from the
gate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from datetime import datetime, timezone
from typing import Any

import duckdb

from endolite.config import Settings
from endolite.errors import InvalidInput
from endolite.export import coco, lx_table
from endolite.export.bundle import Contents, Transcode, as_jpeg
from endolite.export.plan import ExportFrame, ExportPlan

FORMATS = ("lx-csv", "lx-json", "ai-dataset", "coco", "yolo", "visual-layer")


@dataclass(frozen=True)
class ExportOptions:
    """The options of lx-annotate's exporter, plus the dataset fields of the AI-dataset JSON.

    ``only``: all | true | false (lx tables, AI dataset); ``segment_ids`` / ``use_export_flags``:
    only annotations inside those segments / segments marked for export (same label);
    ``frames`` / ``videos``: ship the blanked frames / anonymized videos; ``frame_id_paths``:
    lx ``frame_relative_path`` as ``frame_<frame_id>.jpg`` (frames then shipped as JPEG);
    ``transcode_fps`` (> 0): lx frames decoded from the anonymized video (``transcode_ext``,
    ``transcode_quality``).
    """

    frames: bool = False
    videos: bool = False
    frame_id_paths: bool = False
    only: str = "all"
    segment_ids: tuple[int, ...] | None = None
    use_export_flags: bool = False
    transcode_fps: float | None = None
    transcode_ext: str = "jpg"
    transcode_quality: int = 90
    name: str = "endolite export"
    description: str = ""
    dataset_type: str = "image"
    ai_model_type: str = "image_multilabel_classification"
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "extra"}


def _manifest(fmt: str, plan: ExportPlan, options: ExportOptions, counts: dict[str, int],
              exported_by: str) -> tuple[str, bytes]:
    doc = {"format": fmt, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "exported_by": exported_by, "video_ids": list(plan.video_ids),
           "group_ids": list(plan.group_ids), "counts": counts, "options": options.as_dict(),
           "anonymized": True}
    return "manifest.json", json.dumps(doc, indent=2, default=str).encode("utf-8")


def _lx(con, plan: ExportPlan, fmt: str, o: ExportOptions) -> Contents:
    if o.transcode_fps is not None and o.frame_id_paths:
        raise InvalidInput("--transcode-fps names frames by frame number; drop --frame-id-paths")
    if o.transcode_fps is not None and o.transcode_fps <= 0:
        raise InvalidInput(f"--transcode-fps: {o.transcode_fps} is not a positive rate")
    if o.transcode_ext not in ("jpg", "png"):
        raise InvalidInput(f"transcode extension {o.transcode_ext!r}: use jpg or png")
    if not 1 <= int(o.transcode_quality) <= 100:
        raise InvalidInput(f"transcode quality {o.transcode_quality}: between 1 and 100")
    rows = lx_table.table_rows(con, video_ids=plan.video_ids, only=o.only,
                               use_export_flags=o.use_export_flags, segment_ids=o.segment_ids,
                               frame_id_paths=o.frame_id_paths)
    frames: list[tuple[str, ExportFrame]] = []
    transcodes: list[Transcode] = []
    referenced: list[str] = []
    if o.transcode_fps is not None:
        for v in plan.videos:
            step = max(1, round(v.fps / o.transcode_fps))
            mine = [r for r in rows if r["video_id"] == v.video_id]
            numbers = sorted({n for n in range(0, v.frame_count, step)}
                             | {r["frame_number"] for r in mine})
            for r in mine:
                r["frame_relative_path"] = f"frame_{r['frame_number']:06d}.{o.transcode_ext}"
            transcodes.append(Transcode(
                video=v, numbers=tuple(numbers), ext=o.transcode_ext, quality=o.transcode_quality,
                names=tuple(f"frames/video_{v.video_id}/frame_{n:06d}.{o.transcode_ext}"
                            for n in numbers)))
        referenced = [f"frames/video_{r['video_id']}/{r['frame_relative_path']}" for r in rows]
    converted: list[tuple[str, ExportFrame]] = []      # frame-id .jpg paths of PNG copies
    if o.transcode_fps is None and o.frames:
        by_id = {f.frame_id: f for f in plan.frames}
        seen: set[int] = set()
        for r in rows:
            fr = by_id[r["frame_id"]]
            arc = f"frames/{fr.folder}/{r['frame_relative_path']}"
            referenced.append(arc)
            if fr.frame_id not in seen:
                seen.add(fr.frame_id)
                same_type = PurePosixPath(arc).suffix.lower() == fr.source.suffix.lower()
                (frames if same_type else converted).append((arc, fr))
    doc = (("annotations.csv", lx_table.to_csv(rows)) if fmt == "lx-csv"
           else ("annotations.json", lx_table.to_json(rows)))

    def jpegs():
        for arc, fr in converted:
            yield arc, as_jpeg(fr)

    return Contents(documents=(doc,), frames=tuple(frames), transcodes=tuple(transcodes),
                    annotation_count=len(rows), referenced=tuple(dict.fromkeys(referenced)),
                    extra_documents=jpegs if converted else None,
                    extra_names=tuple(arc for arc, _ in converted))


def _coco(con, settings: Settings, plan: ExportPlan, o: ExportOptions) -> Contents:
    doc = coco.coco_document(con, frame_ids=plan.frame_ids, frame_id_names=True)
    by_id = {f.frame_id: f for f in plan.frames}
    for image in doc["images"]:            # relative to frames/: <folder>/frame_<id><ext>
        fr = by_id[image["id"]]
        image["file_name"] = f"{fr.folder}/{fr.file_name}"
    frames = tuple((fr.arcname, fr) for fr in plan.frames) if o.frames else ()
    referenced = tuple(f"frames/{i['file_name']}" for i in doc["images"]) if o.frames else ()

    def masks():
        yield from coco.mask_pngs(con, settings, frame_ids=plan.frame_ids)

    return Contents(documents=(("annotations/instances.json",
                                json.dumps(doc).encode("utf-8")),),
                    frames=frames, annotation_count=len(doc["annotations"]),
                    referenced=referenced, extra_documents=masks)


def contents(con: duckdb.DuckDBPyConnection, settings: Settings, plan: ExportPlan, fmt: str,
             options: ExportOptions, *, exported_by: str) -> Contents:
    """The zip contents of ``fmt`` for an approved ``plan`` (InvalidInput for an unknown format
    or option)."""
    if fmt not in FORMATS:
        raise InvalidInput(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt in ("lx-csv", "lx-json"):
        body = _lx(con, plan, fmt, options)
    elif fmt == "coco":
        body = _coco(con, settings, plan, options)
    else:
        from endolite.export import formats_more

        body = formats_more.contents(con, settings, plan, fmt, options, exported_by=exported_by)
    videos = plan.videos if options.videos else ()
    counts = {"annotations": body.annotation_count,
              "frames": len(body.frames) + sum(len(t.numbers) for t in body.transcodes),
              "videos": len(videos)}
    manifest = _manifest(fmt, plan, options, counts, exported_by)
    return Contents(documents=(manifest, *body.documents), frames=body.frames,
                    transcodes=body.transcodes, videos=tuple(videos),
                    annotation_count=body.annotation_count, referenced=body.referenced,
                    extra_documents=body.extra_documents, extra_names=body.extra_names)


def parse_segment_ids(text: str | Sequence[str] | None) -> tuple[int, ...] | None:
    """``"3,5,8"`` (or a list of such) -> (3, 5, 8); None stays None.  InvalidInput names a bad id."""
    if text is None:
        return None
    parts = [text] if isinstance(text, str) else list(text)
    ids = []
    for part in parts:
        for piece in str(part).split(","):
            piece = piece.strip()
            if not piece:
                continue
            if not piece.isdigit():
                raise InvalidInput(f"--segments: {piece!r} is not a segment id")
            ids.append(int(piece))
    return tuple(ids)
