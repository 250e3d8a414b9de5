"""Mask actions of the annotation page and the CLI: save, edit (eraser), delete, undo, redo,
propagate, import.  Each checks the actor's role (annotators: only their own masks), does the
work through ``endolite.annotate`` and writes the audit entry; the user's own mask actions per
frame are kept in ``mask_history`` so undo only ever reverts the acting user's own last action.

Masks are ``(H, W) bool`` in the frame's pixel grid; empty masks are refused (nothing to store).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from endolite import annotate
from endolite.annotate import NewMask
from endolite.errors import Conflict, InvalidInput
from endolite.records import Label, Mask
from endolite.services.access import Action, Ctx
from endolite.storage import annotations as store
from endolite.storage import history
from endolite.storage.tx import transaction


def save(ctx: Ctx, item: NewMask, *, label: str | int | Label, annotator: str | None = None) -> Mask:
    """Store one mask made by ``annotator`` (default: the actor)."""
    return save_many(ctx, [item], label=label, annotator=annotator)[0]


def save_many(ctx: Ctx, items: Sequence[NewMask], *, label: str | int | Label,
              annotator: str | None = None) -> list[Mask]:
    """Store masks of one label in one transaction; annotators may store only as themselves."""
    who = annotator or ctx.actor.name
    ctx.check(Action.MASK_CREATE, owners=[who])
    if not items:
        return []
    lab = annotate.resolve_label(ctx.con, label)

    def log(rows: list[dict[str, Any]]) -> None:    # commits with the rows and PNG mirrors
        ids = [r["id"] for r in rows]
        frames = sorted({r["frame_id"] for r in rows})
        for frame_id in frames:
            history.record(ctx.con, frame_id=frame_id, username=ctx.actor.name, action="create",
                           added=[r["id"] for r in rows if r["frame_id"] == frame_id])
        ctx.record(Action.MASK_CREATE, entity="mask", entity_id=ids[0] if len(ids) == 1 else None,
                   mask_ids=ids, frame_ids=frames, label=lab.name, annotator=who,
                   source=str(rows[0]["source"]))

    return annotate.save_masks(ctx.con, ctx.settings, items, label=lab, annotator=who, also=log)


def delete(ctx: Ctx, mask_ids: Sequence[int], *, versions: dict[int, int] | None = None,
           reason: str = "delete") -> list[int]:
    """Soft-delete masks (annotators: their own only).  ``versions`` ``{id: version read}``: a
    mask changed or deleted since then raises Conflict and nothing is deleted."""
    ids = sorted({int(i) for i in mask_ids})
    states = store.mask_states(ctx.con, ids)
    missing = [i for i in ids if i not in states]
    if missing:
        raise InvalidInput(f"no mask with id {', '.join(map(str, missing))}")
    ctx.check(Action.MASK_DELETE, owners=[states[i]["annotator"] for i in ids])
    with transaction(ctx.con, what="deleting masks"):
        for i in ids:
            if states[i]["deleted"] or (versions and i in versions and versions[i] != states[i]["version"]):
                raise annotate.stale(ctx.con, i, (versions or {}).get(i, states[i]["version"]))
        done = annotate.delete_masks(ctx.con, ids, by=ctx.actor.name)
        if len(done) != len(ids):
            raise Conflict(f"masks {sorted(set(ids) - set(done))} were deleted by someone else "
                           "at the same moment; nothing was deleted")
        for frame_id in sorted({states[i]["frame_id"] for i in ids}):
            history.record(ctx.con, frame_id=frame_id, username=ctx.actor.name, action="delete",
                           removed=[i for i in ids if states[i]["frame_id"] == frame_id])
    ctx.record(Action.MASK_DELETE, entity="mask", entity_id=ids[0] if len(ids) == 1 else None,
               mask_ids=ids, reason=reason,
               owners=sorted({states[i]["annotator"] for i in ids}))
    return ids


def delete_label(ctx: Ctx, *, label: str | int | Label, video_id: int | None = None,
                 group_id: int | None = None) -> list[int]:
    """Delete every mask of ``label`` in one sequence: a lead's deletes everyone's, an
    annotator's only their own."""
    if (video_id is None) == (group_id is None):
        raise InvalidInput("delete all masks of a label: name exactly one video or image group")
    lab = annotate.resolve_label(ctx.con, label)
    everyone = ctx.may_others(Action.MASK_DELETE)
    ids = [m.id for m in store.masks_of(ctx.con, video_id=video_id, group_id=group_id,
                                        label_id=lab.id,
                                        annotator=None if everyone else ctx.actor.name)]
    if not ids:
        return []
    return delete(ctx, ids, reason=f"all {lab.name} masks of the sequence"
                  + ("" if everyone else f" made by {ctx.actor.name}"))


def edit(ctx: Ctx, mask_id: int, new_mask: np.ndarray, *, version: int | None = None) -> int | None:
    """Replace a mask's pixels (eraser) as read at ``version``; Conflict when it changed since.
    Returns the new mask's id (None when the edit emptied it)."""
    old = store.get_mask_any(ctx.con, mask_id)
    ctx.check(Action.MASK_EDIT, owners=[old.annotator])

    def log(new_id: int | None) -> None:       # inside the edit's transaction
        history.record(ctx.con, frame_id=old.frame_id, username=ctx.actor.name, action="edit",
                       added=[new_id] if new_id else [], removed=[mask_id])
        ctx.record(Action.MASK_EDIT, entity="mask", entity_id=mask_id, new_mask_id=new_id,
                   frame_id=old.frame_id)

    return annotate.replace_mask(ctx.con, ctx.settings, mask_id, new_mask, by=ctx.actor.name,
                                 version=old.version if version is None else version, also=log)


def undoable(ctx: Ctx, frame_id: int) -> history.MaskAction | None:
    """The acting user's own last mask action on ``frame_id`` that undo would revert."""
    return history.last(ctx.con, frame_id=frame_id, username=ctx.actor.name)


def undo(ctx: Ctx, frame_id: int) -> history.MaskAction | None:
    """Revert the acting user's own last mask action on ``frame_id`` (None: nothing to undo).

    Masks it created are deleted again and masks it deleted come back; if another user has
    changed those masks since, raises Conflict and changes nothing."""
    ctx.check(Action.MASK_UNDO)
    step = undoable(ctx, frame_id)
    if step is None:
        return None
    with transaction(ctx.con, what="undo"):
        states = store.mask_states(ctx.con, [*step.added, *step.removed])
        for i in step.added:
            if states.get(i, {}).get("deleted"):
                raise Conflict(f"cannot undo: mask {i} was deleted by "
                               f"{states[i]['deleted_by'] or 'someone'} since")
        for i in step.removed:
            if i in states and not states[i]["deleted"]:
                raise Conflict(f"cannot undo: mask {i} is already back")
        annotate.delete_masks(ctx.con, list(step.added), by=ctx.actor.name, reason="undo")
        annotate.restore_masks(ctx.con, list(step.removed), by=ctx.actor.name)
        history.mark_undone(ctx.con, step.id)
    ctx.record(Action.MASK_UNDO, entity="mask", entity_id=None, frame_id=frame_id,
               undone=step.action, deleted=list(step.added), restored=list(step.removed))
    return step


def redoable(ctx: Ctx, frame_id: int) -> history.MaskAction | None:
    """The acting user's own last undone mask action on ``frame_id`` that redo would re-apply
    (None once they have made a new action there since)."""
    return history.last_undone(ctx.con, frame_id=frame_id, username=ctx.actor.name)


def redo(ctx: Ctx, frame_id: int) -> history.MaskAction | None:
    """Re-apply the acting user's own last undone mask action on ``frame_id`` (None: nothing to
    redo): the masks it created come back and those it deleted go again.  Audited as
    ``mask.undo`` with ``redo=True`` (the same permission as undo); if another user has changed
    those masks since, raises Conflict and changes nothing."""
    ctx.check(Action.MASK_UNDO)
    step = redoable(ctx, frame_id)
    if step is None:
        return None
    with transaction(ctx.con, what="redo"):
        states = store.mask_states(ctx.con, [*step.added, *step.removed])
        for i in step.added:
            if i in states and not states[i]["deleted"]:
                raise Conflict(f"cannot redo: mask {i} is already back")
        for i in step.removed:
            if states.get(i, {}).get("deleted"):
                raise Conflict(f"cannot redo: mask {i} was deleted by "
                               f"{states[i]['deleted_by'] or 'someone'} since")
        annotate.restore_masks(ctx.con, list(step.added), by=ctx.actor.name)
        annotate.delete_masks(ctx.con, list(step.removed), by=ctx.actor.name, reason="redo")
        history.mark_redone(ctx.con, step.id)
    ctx.record(Action.MASK_UNDO, entity="mask", entity_id=None, frame_id=frame_id, redo=True,
               redone=step.action, restored=list(step.added), deleted=list(step.removed))
    return step


def propagate(ctx: Ctx, mask_id: int, *, direction: str = "forward", to_frame_id: int | None = None,
              refine: Any = None, progress: Any = None, replace: bool = True) -> list[Mask]:
    """Carry mask ``mask_id`` through its sequence (see annotate.propagate_mask), storing the
    results as the actor's.  ``replace``: the actor's earlier propagation of the same mask on
    the side(s) walked again (forward: later frames, backward: earlier ones, both: all) is
    deleted in the same transaction, so a re-run replaces its own result instead of stacking a
    second copy on every frame (a forward run and a later backward run both stay; a run that
    reaches nothing leaves the earlier result).  Each frame's
    change (new masks, the replaced ones) is one step of the actor's undo history."""
    source = store.get_mask(ctx.con, mask_id)
    ctx.check(Action.MASK_PROPAGATE, owners=[source.annotator])
    replaced: list[int] = []

    def log(rows: list[dict[str, Any]]) -> None:       # inside the storing transaction
        from endolite.storage import media

        fresh = {r["id"] for r in rows}
        earlier = [m for m in store.masks_of(ctx.con, origin_mask_id=mask_id, annotator=ctx.actor.name)
                   if m.id not in fresh] if replace else []
        if earlier and direction != "both":
            here = media.get_frame(ctx.con, source.frame_id).frame_number
            numbers = {f.id: f.frame_number
                       for f in media.frames_by_ids(ctx.con, sorted({m.frame_id for m in earlier}))}
            sign = 1 if direction == "forward" else -1
            earlier = [m for m in earlier if (numbers.get(m.frame_id, here) - here) * sign > 0]
        replaced.extend(annotate.delete_masks(ctx.con, [m.id for m in earlier], by=ctx.actor.name)
                        if earlier else [])
        gone = {m.id: m.frame_id for m in earlier}
        added: dict[int, list[int]] = {}
        removed: dict[int, list[int]] = {}
        for r in rows:
            added.setdefault(r["frame_id"], []).append(r["id"])
        for i, f in gone.items():
            removed.setdefault(f, []).append(i)
        history.record_many(ctx.con, [(f, added.get(f, []), removed.get(f, []))
                                      for f in sorted(added.keys() | removed.keys())],
                            username=ctx.actor.name, action="create")

    made = annotate.propagate_mask(ctx.con, ctx.settings, mask_id, direction=direction,
                                   to_frame_id=to_frame_id, annotator=ctx.actor.name, refine=refine,
                                   progress=progress, also=log)
    ctx.record(Action.MASK_PROPAGATE, entity="mask", entity_id=mask_id, direction=direction,
               made=[m.id for m in made], replaced=replaced, refined=refine is not None,
               flagged=sum(m.flagged for m in made))
    return made


def import_files(ctx: Ctx, paths: Sequence[str | Path], *, label: str,
                 annotator: str | None = None) -> list[dict[str, Any]]:
    """Mask image files on the server onto the frames whose names match (lead and admin)."""
    who = annotator or ctx.actor.name
    ctx.check(Action.MASK_IMPORT)
    from endolite.services.media import checked_server_paths

    allowed, refused = checked_server_paths(ctx, paths)
    results = annotate.import_mask_files(ctx.con, ctx.settings, allowed, label=label, annotator=who)
    results += [{"path": str(p), "status": "rejected", "frame_id": None, "mask_id": None,
                 "reason": why} for p, why in refused]
    imported = [r["mask_id"] for r in results if r["mask_id"]]
    ctx.record(Action.MASK_IMPORT, entity="mask", mask_ids=imported, label=label, annotator=who,
               rejected=len(results) - len(imported))
    return results
