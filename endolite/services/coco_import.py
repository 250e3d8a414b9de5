"""COCO import (leads and admins): masks, polygons and boxes another tool wrote, stored as
``annotator``'s masks (source ``import``) on the frames the COCO images name.

Importing the same file again adds nothing: an annotation whose mask is already stored,
pixel for pixel, as ``annotator``'s imported mask of that label on that frame is skipped and
counted (``skipped``).

All or nothing: the file is parsed, matched and decoded first (``endolite.ingest.coco_import``,
pure); then the missing labels (category names), every mask row and its PNG mirror are written
in one transaction through ``annotate.prepare_masks`` / ``store_prepared``, so a refusal or a
crash leaves no new label, mask row or file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from endolite import annotate
from endolite.annotate import NewMask
from endolite.errors import InvalidInput, NotFound
from endolite.ingest import coco_import as core
from endolite.records import Label, MaskSource
from endolite.services.access import Action, Ctx
from endolite.storage import labels, users
from endolite.storage.annotations import masks_of
from endolite.storage.tx import transaction

CHUNK = 256          # masks decoded and stored at a time (all inside the one transaction)


@dataclass(frozen=True)
class CocoImportResult:
    """What an import stored: ``mask_ids`` in the file's annotation order; ``kinds`` counts
    per shape kind (mask / polygon / box); ``labels_created`` the category names that were
    new labels."""

    source: str
    annotator: str
    mask_ids: tuple[int, ...]
    frame_ids: tuple[int, ...]
    kinds: dict[str, int]
    labels_created: tuple[str, ...]
    images: int                       # images listed in the file
    annotations: int
    skipped: int = 0                  # already stored (same frame, label, annotator, pixels)

    def lines(self) -> list[str]:
        """A short human summary (CLI, page)."""
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.kinds.items())) or "nothing"
        out = [f"{self.source}: imported {len(self.mask_ids)} annotations ({kinds}) on "
               f"{len(self.frame_ids)} frames as {self.annotator}"]
        if self.skipped:
            out.append(f"{self.skipped} annotations were already imported (same frame, label "
                       f"and pixels) and were skipped")
        if self.labels_created:
            out.append(f"new labels: {', '.join(self.labels_created)}")
        return out


def _counts(rle) -> str:
    """A COCO RLE's counts as text (pycocotools' compressed counts are canonical: equal masks of
    one size have equal counts)."""
    counts = rle["counts"] if isinstance(rle, dict) else rle
    return counts.decode("ascii") if isinstance(counts, bytes) else str(counts)


def _existing_label(con, name: str) -> Label | None:
    """The label named ``name``; else the one label whose name differs only in case (a tool's
    "Polyp" is the project's "polyp"); else None."""
    found = labels.get_by_name(con, name, missing_ok=True)
    if found is not None:
        return found
    same = [lb for lb in labels.list_all(con) if lb.name.casefold() == name.casefold()]
    return same[0] if len(same) == 1 else None


def import_coco(ctx: Ctx, source: str | Path | bytes, *, annotator: str, name: str | None = None,
                video_id: int | None = None, group_id: int | None = None) -> CocoImportResult:
    """Import a COCO file (a path, or its bytes with ``name`` for messages) as ``annotator``'s
    masks.  ``video_id`` / ``group_id`` limit name matching to one sequence's frames.  A
    category becomes the label of that name (or the one label of that name in another case);
    missing ones are created.

    Raises PermissionDenied (below lead), NotFound (no such annotator) or InvalidInput naming
    the annotation id and the reason (unknown image, image size mismatch, bad segmentation,
    unknown category); nothing is stored then."""
    ctx.check(Action.IMPORT_COCO)
    if video_id is not None and group_id is not None:
        raise InvalidInput("COCO import: name one video or one image group, not both")
    if users.get_by_name(ctx.con, annotator, missing_ok=True) is None:
        raise NotFound(f"COCO import: no user named {annotator!r} (the annotator must be a user)")
    label = name or (Path(source).name if not isinstance(source, bytes) else "COCO file")
    parsed = core.parse_document(core.read_document(source, name=label), source=label)
    frames = [core.FrameRef(i, w, h, names) for i, w, h, names in
              annotate.frame_names(ctx.con, video_id=video_id, group_id=group_id)]
    plan = core.plan_import(parsed, frames, source=label)

    stored = {(m.frame_id, m.label.casefold(), _counts(m.coco_rle)) for m in
              masks_of(ctx.con, frame_ids=sorted({i.frame_id for i in plan}), annotator=annotator)
              if m.source == MaskSource.IMPORT}
    fresh = [i for i in plan if (i.frame_id, i.category.casefold(), _counts(i.rle)) not in stored]
    skipped = len(plan) - len(fresh)
    plan = fresh
    written: list[Path] = []
    created: list[Label] = []
    ids: dict[int, int] = {}                  # annotation id -> mask id
    try:
        with transaction(ctx.con, what=f"importing {label}"):
            by_label: dict[str, list[core.PlannedMask]] = {}
            for item in plan:
                by_label.setdefault(item.category, []).append(item)
            for category, items in by_label.items():
                lab = _existing_label(ctx.con, category)
                if lab is None:
                    lab = labels.add(ctx.con, category, created_by=ctx.actor.name)
                    created.append(lab)
                for start in range(0, len(items), CHUNK):      # bounded memory: arrays + PNGs
                    chunk = items[start:start + CHUNK]
                    rows, pngs = annotate.prepare_masks(
                        ctx.con, ctx.settings,
                        [NewMask(frame_id=i.frame_id, mask=i.mask(), source=MaskSource.IMPORT,
                                 kind=i.kind, prompt=i.prompt) for i in chunk],
                        label=lab, annotator=annotator)
                    written += annotate.store_prepared(ctx.con, rows, pngs)
                    ids.update({i.annotation_id: r["id"] for i, r in zip(chunk, rows)})
            result = CocoImportResult(
                source=label, annotator=annotator,
                mask_ids=tuple(ids[i.annotation_id] for i in plan),
                frame_ids=tuple(sorted({i.frame_id for i in plan})),
                kinds=dict(Counter(str(i.kind) for i in plan)),
                labels_created=tuple(lab.name for lab in created),
                images=len(parsed.images), annotations=len(parsed.annotations), skipped=skipped)
            for lab in created:
                ctx.record(Action.LABEL_ADD, entity="label", entity_id=lab.id, name=lab.name,
                           kind=str(lab.kind), color=lab.color, allowed=list(lab.allowed),
                           via=str(Action.IMPORT_COCO))
            ctx.record(Action.IMPORT_COCO, entity="mask", source=label, annotator=annotator,
                       masks=len(result.mask_ids), frames=len(result.frame_ids),
                       kinds=result.kinds, labels_created=list(result.labels_created),
                       mask_ids=list(result.mask_ids), images=result.images,
                       annotations=result.annotations, skipped=skipped)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return result


def summary(result: CocoImportResult) -> dict[str, Any]:
    """The result as a JSON-ready dict (the CLI's ``--json``)."""
    return {"source": result.source, "annotator": result.annotator,
            "imported": len(result.mask_ids), "kinds": result.kinds,
            "frames": list(result.frame_ids), "mask_ids": list(result.mask_ids),
            "labels_created": list(result.labels_created), "images": result.images,
            "annotations": result.annotations, "skipped": result.skipped}
