"""Annotation core: save / delete / restore / edit masks (DB row + PNG mirror, versions),
import mask files, propagate and review.  The services (``endolite.services.masks``)
call these; storage does the SQL.  Frame labels and time segments: ``endolite.frame_labels``;
the canvas picture of a frame with its masks: ``endolite.render``.

Masks are ``(H, W) bool`` arrays matching the frame's size; they are stored as COCO RLE
(endolite.masks) in DuckDB and mirrored to ``masks/frame_<frame_id>/mask_<mask_id>.png``.
An empty mask is refused (nothing to store).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from endolite import masks as rle
from endolite.config import Settings
from endolite.errors import Conflict, InvalidInput, NotFound
from endolite.media import write_bytes_atomic
from endolite.records import Frame, Label, Mask, MaskSource, ShapeKind
from endolite.storage import annotations as store
from endolite.storage import labels, media
from endolite.storage.tx import transaction


@dataclass(frozen=True)
class NewMask:
    """A mask to store: ``mask`` is ``(H, W) bool`` in the frame's pixel grid."""

    frame_id: int
    mask: np.ndarray
    source: MaskSource = MaskSource.MANUAL
    kind: ShapeKind = ShapeKind.MASK
    prompt: dict[str, Any] | None = None
    confidence: float | None = None
    flagged: bool = False
    origin_mask_id: int | None = None


def resolve_label(con: duckdb.DuckDBPyConnection, label: str | int | Label) -> Label:
    if isinstance(label, Label):
        return label
    if isinstance(label, int):
        return labels.get(con, label)
    return labels.get_by_name(con, label)


def mask_png_path(settings: Settings, frame_id: int, mask_id: int) -> Path:
    return settings.masks_dir / f"frame_{frame_id}" / f"mask_{mask_id}.png"


def prepare_masks(con: duckdb.DuckDBPyConnection, settings: Settings, items: Sequence[NewMask], *,
                  label: str | int | Label, annotator: str) -> tuple[list[dict[str, Any]], list[tuple[Path, bytes]]]:
    """Validate ``items`` and build their rows and PNG mirrors (ids reserved, nothing stored).

    Raises InvalidInput when a mask is empty or its (H, W) differs from its frame's."""
    lab = resolve_label(con, label)
    frames = {f.id: f for f in media.frames_by_ids(con, sorted({i.frame_id for i in items}))}
    rows, pngs = [], []
    ids = store.reserve_mask_ids(con, len(items))
    for mask_id, item in zip(ids, items):
        frame = frames.get(item.frame_id)
        if frame is None:
            raise NotFound(f"no frame with id {item.frame_id}")
        array = np.asarray(item.mask, dtype=bool)
        if array.shape != (frame.height, frame.width):
            raise InvalidInput(f"mask for frame {frame.id}: size {array.shape[1]}x{array.shape[0]} "
                               f"differs from the frame's {frame.width}x{frame.height}")
        if not array.any():
            raise InvalidInput(f"mask for frame {frame.id} is empty")
        code = rle.encode(array)
        rows.append({"id": mask_id, "frame_id": frame.id, "label_id": lab.id, "annotator": annotator,
                     "source": item.source, "kind": item.kind, "height": frame.height,
                     "width": frame.width, "rle": code["counts"], "area": rle.area(code),
                     "bbox": rle.bbox(code), "prompt": item.prompt or {}, "confidence": item.confidence,
                     "flagged": item.flagged, "origin_mask_id": item.origin_mask_id,
                     "created_by": annotator})
        pngs.append((mask_png_path(settings, frame.id, mask_id), rle.to_png(array)))
    return rows, pngs


def store_prepared(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]],
                   pngs: list[tuple[Path, bytes]]) -> list[Path]:
    """Insert prepared rows and write their PNG mirrors (inside the caller's transaction).

    PNGs are written atomically under their final names; the caller removes the returned paths
    if its transaction rolls back (``endolite check --repair`` removes any a crash leaves)."""
    store.insert_masks(con, rows)
    written: list[Path] = []
    try:
        for path, data in pngs:
            written.append(write_bytes_atomic(path, data))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written


def save_masks(con: duckdb.DuckDBPyConnection, settings: Settings, items: Sequence[NewMask], *,
               label: str | int | Label, annotator: str,
               also: Callable[[list[dict[str, Any]]], None] | None = None) -> list[Mask]:
    """Store many masks of one label in one transaction (bulk insert); returns them in order.

    ``also(rows)`` runs inside the same transaction with the stored rows (the service's undo
    history and audit entry).  Raises InvalidInput when a mask is empty or its (H, W) differs
    from its frame's.
    """
    if not items:
        return []
    rows, pngs = prepare_masks(con, settings, items, label=label, annotator=annotator)
    written: list[Path] = []
    try:
        with transaction(con, what="saving masks"):
            written = store_prepared(con, rows, pngs)
            if also is not None:
                also(rows)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    ids = [r["id"] for r in rows]
    by_id = {m.id: m for m in store.masks_of(con, frame_ids=sorted({r["frame_id"] for r in rows}))}
    return [by_id[i] for i in ids]


def save_mask(con: duckdb.DuckDBPyConnection, settings: Settings, item: NewMask, *,
              label: str | int | Label, annotator: str) -> Mask:
    return save_masks(con, settings, [item], label=label, annotator=annotator)[0]


def delete_masks(con: duckdb.DuckDBPyConnection, mask_ids: Sequence[int], *, by: str,
                 reason: str = "delete") -> list[int]:
    """Soft-delete masks (restorable by ``restore_masks``); returns the ids that were live.

    ``reason`` is for the caller's audit entry (the service layer writes it)."""
    return store.soft_delete(con, [int(i) for i in mask_ids], by=by)


def delete_label_masks(con: duckdb.DuckDBPyConnection, *, label: str | int | Label, by: str,
                       video_id: int | None = None, group_id: int | None = None,
                       only_annotator: str | None = None) -> list[int]:
    """Soft-delete every mask of ``label`` in one sequence (exactly one of video / image group),
    or only ``only_annotator``'s."""
    if (video_id is None) == (group_id is None):
        raise InvalidInput("delete all masks of a label: name exactly one video or image group")
    lab = resolve_label(con, label)
    ids = [m.id for m in store.masks_of(con, video_id=video_id, group_id=group_id, label_id=lab.id,
                                        annotator=only_annotator)]
    return delete_masks(con, ids, by=by, reason=f"all {lab.name} masks of the sequence")


def restore_masks(con: duckdb.DuckDBPyConnection, mask_ids: Sequence[int], *, by: str) -> list[int]:
    """Bring soft-deleted masks back; returns the ids restored."""
    return store.restore(con, [int(i) for i in mask_ids])


def load_mask(m: Mask) -> np.ndarray:
    """The stored mask as ``(H, W) bool``."""
    return rle.decode(m.coco_rle)


# --- importing mask files ---------------------------------------------------------------------

def _stem(name: str) -> str:
    return Path(name).stem.lower()


def frame_names(con: duckdb.DuckDBPyConnection, *, video_id: int | None = None,
                group_id: int | None = None) -> list[tuple[int, int, int, tuple[str, ...]]]:
    """``(frame id, width, height, names)`` of every frame (or one video's / image group's): the
    names a frame answers to when files are matched to frames by name: its original file name
    (still images, zipped frames), its stored file's name and ``frame_<id>`` (no extension;
    compare stems)."""
    sql, params = "SELECT id, width, height, original_name, path FROM frames", []
    if video_id is not None or group_id is not None:
        sql += " WHERE video_id = ?" if video_id is not None else " WHERE group_id = ?"
        params = [video_id if video_id is not None else group_id]
    out = []
    for frame_id, width, height, original, path in con.execute(sql + " ORDER BY id",
                                                                params).fetchall():
        names = [Path(n).name for n in (original, path) if n]
        out.append((int(frame_id), int(width), int(height), (*names, f"frame_{frame_id}")))
    return out


def import_mask_files(con: duckdb.DuckDBPyConnection, settings: Settings, paths: Sequence[str | Path], *,
                      label: str, annotator: str) -> list[dict[str, Any]]:
    """Binary mask images (png, jpg thresholded at 128, tif) onto the frames whose file stem matches.

    A frame matches by its original file name's stem (still images, zipped frames) or its stored
    file's stem (``frame_<id>``).  Returns one result dict per path: path, status (imported /
    rejected), frame_id, mask_id, reason.  A bad file does not stop the others.
    """
    lab = resolve_label(con, label)
    index: dict[str, list[int]] = {}
    for frame_id, _, _, names in frame_names(con):
        for name in names:
            index.setdefault(_stem(name), []).append(frame_id)
    results = []
    for raw in paths:
        path = Path(raw)
        result: dict[str, Any] = {"path": str(raw), "status": "rejected", "frame_id": None,
                                  "mask_id": None, "reason": None}
        try:
            if not path.is_file():
                raise InvalidInput(f"{path.name}: no such file")
            matches = sorted(set(index.get(_stem(path.name), [])))
            if not matches:
                raise InvalidInput(f"{path.name}: no frame named {path.stem}")
            if len(matches) > 1:
                raise InvalidInput(f"{path.name}: {len(matches)} frames are named {path.stem} "
                                   f"(ids {', '.join(map(str, matches))}); rename the file to frame_<id>")
            array = rle.from_image_file(path)
            saved = save_mask(con, settings, NewMask(frame_id=matches[0], mask=array,
                                                     source=MaskSource.IMPORT,
                                                     prompt={"file": path.name}),
                              label=lab, annotator=annotator)
            result.update(status="imported", frame_id=saved.frame_id, mask_id=saved.id)
        except (InvalidInput, NotFound) as exc:
            result["reason"] = str(exc)
        results.append(result)
    return results


# --- propagation ------------------------------------------------------------------------------

def propagate_mask(con: duckdb.DuckDBPyConnection, settings: Settings, mask_id: int, *,
                   direction: str = "forward", to_frame_id: int | None = None, annotator: str,
                   refine: Any = None, progress: Any = None,
                   also: Callable[[list[dict[str, Any]]], None] | None = None) -> list[Mask]:
    """Carry mask ``mask_id`` through its sequence and store a ``propagated`` mask (with its
    confidence and flag) on every stored frame reached.

    Videos are walked frame by frame through every decoded frame (stored or not), so flow never
    jumps between distant picks; masks land on the video's stored frames (picked and context).
    Image groups are walked in frame-number order.  ``direction``: forward, backward or both;
    ``to_frame_id`` limits the walk (a frame of the same sequence).  Stops where confidence
    drops (see endolite.propagate).  Returns the new masks in walk order.

    ``progress(fraction, message)``: the walk fills 0 .. 0.9 (both directions: half each), then
    0.9 "storing N masks" while they are encoded and written (so a bar never shows 100 % while
    the work goes on).  ``also(rows)`` runs inside the storing transaction (see ``save_masks``).
    """
    from endolite import propagate as prop
    from endolite.sequence import GroupFrames, VideoFrames

    source = store.get_mask(con, mask_id)
    frame = media.get_frame(con, source.frame_id)
    if frame.video_id is not None:
        stored = media.frames_of(con, video_id=frame.video_id)
        video = media.get_video(con, frame.video_id)
        getter: Any = VideoFrames(settings.absolute(video.path))
        length = len(getter)
    else:
        stored = media.frames_of(con, group_id=frame.group_id)
        getter = GroupFrames(settings, stored)
        length = max((f.frame_number for f in stored), default=0) + 1
    by_number: dict[int, Frame] = {}
    for f in stored:
        by_number.setdefault(f.frame_number, f)
    stop_at = None
    if to_frame_id is not None:
        target = media.get_frame(con, to_frame_id)
        if (target.video_id, target.group_id) != (frame.video_id, frame.group_id):
            raise InvalidInput(f"frame {to_frame_id} is not in the same sequence as mask {mask_id}")
        stop_at = target.frame_number
    directions = ["forward", "backward"] if direction == "both" else [direction]
    if direction not in ("forward", "backward", "both"):
        raise InvalidInput(f"direction {direction!r}: use forward, backward or both")
    start_mask = load_mask(source)
    made: list[NewMask] = []
    for done_ways, way in enumerate(directions):
        limit = stop_at
        if limit is not None and (limit - frame.frame_number) * (1 if way == "forward" else -1) <= 0:
            if direction == "both":
                limit = None
            else:
                raise InvalidInput(f"frame {to_frame_id} is not {way} of the mask's frame")
        span = (limit if limit is not None else (length - 1 if way == "forward" else 0)) - frame.frame_number
        walked = 0
        for step in prop.iter_propagate(getter, frame.frame_number, start_mask, direction=way,
                                        stop_at=limit, refine=refine):
            walked += 1
            if progress is not None:
                share = min(1.0, walked / max(abs(span), 1))
                progress(0.9 * (done_ways + share) / len(directions), f"{way}: frame {step.frame_index}")
            hit = by_number.get(step.frame_index)
            if hit is not None and step.mask.any():
                made.append(NewMask(frame_id=hit.id, mask=step.mask, source=MaskSource.PROPAGATED,
                                    prompt={"from_mask": mask_id, "method": step.hypothesis,
                                            "refined": step.refined, "reason": step.reason},
                                    confidence=float(step.confidence), flagged=bool(step.flagged),
                                    origin_mask_id=mask_id))
    if progress is not None:
        progress(0.9, f"storing {len(made)} masks")
    if not made:
        return []
    return save_masks(con, settings, made, label=source.label_id, annotator=annotator, also=also)


def replace_mask(con: duckdb.DuckDBPyConnection, settings: Settings, mask_id: int, new_mask: np.ndarray, *,
                 by: str, version: int | None = None,
                 also: Callable[[int | None], None] | None = None) -> int | None:
    """Replace a mask's pixels (eraser): store the edited mask as a new manual mask of the same
    label and soft-delete the old one, in one transaction.  An edit that empties the mask only
    deletes it.  ``version``: the version the editor read; when the mask has changed (edited,
    deleted) since, raises Conflict and stores nothing.  ``also(new_id)`` runs inside the same
    transaction (the service's undo history and audit entry).  Returns the new mask's id (None
    when nothing is left)."""
    old = store.get_mask_any(con, mask_id)
    expected = old.version if version is None else int(version)
    keep = np.asarray(new_mask).any()
    rows, pngs = ([], [])
    if keep:
        rows, pngs = prepare_masks(con, settings, [NewMask(frame_id=old.frame_id, mask=new_mask,
                                                           kind=old.kind, source=MaskSource.MANUAL,
                                                           prompt={"edited_from": mask_id})],
                                   label=old.label_id, annotator=by)
    written: list[Path] = []
    try:
        with transaction(con, what=f"editing mask {mask_id}"):
            if not store.soft_delete_version(con, mask_id, expected, by=by):
                raise stale(con, mask_id, expected)
            if keep:
                written = store_prepared(con, rows, pngs)
            if also is not None:
                also(rows[0]["id"] if keep else None)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return rows[0]["id"] if keep else None


def stale(con: duckdb.DuckDBPyConnection, mask_id: int, version: int) -> Conflict:
    """The Conflict to report when mask ``mask_id`` is no longer live at ``version``."""
    state = store.mask_states(con, [mask_id]).get(mask_id)
    if state is None:
        return Conflict(f"mask {mask_id} no longer exists")
    if state["deleted"]:
        who = f" by {state['deleted_by']}" if state["deleted_by"] else ""
        return Conflict(f"mask {mask_id} was deleted{who} after you opened it; nothing was saved")
    return Conflict(f"mask {mask_id} was changed by someone else after you opened it (version "
                    f"{version} -> {state['version']}); nothing was saved, reload the frame")


def review_queue(con: duckdb.DuckDBPyConnection, *, video_id: int | None, group_id: int | None,
                 annotator: str | None = None) -> list[Mask]:
    """Propagated masks of a sequence for review: flagged first, then by rising confidence."""
    found = [m for m in store.masks_of(con, video_id=video_id, group_id=group_id, annotator=annotator)
             if m.source == MaskSource.PROPAGATED]
    return sorted(found, key=lambda m: (not m.flagged, m.confidence if m.confidence is not None else 1.0))


def thumbnail(settings: Settings, frame: Frame, m: Mask, *, long_side: int = 240) -> np.ndarray:
    """A small ``(h, w, 3) uint8`` picture of mask ``m`` over its ``frame``, for review strips."""
    from PIL import Image

    with Image.open(settings.absolute(frame.path)) as image:
        image.thumbnail((long_side, long_side))
        small = np.asarray(image.convert("RGB"))
    mask = np.asarray(Image.fromarray(load_mask(m)).resize((small.shape[1], small.shape[0])))
    return rle.overlay(small, [mask], [m.color], outline_px=1)
