"""Redo beside undo (services.masks.redo: the user's own last undone action on the frame,
audited as mask.undo with redo=True; a new action clears it) and the per-user preferences
(services.preferences) the Annotate page keeps across logins."""

from __future__ import annotations

import numpy as np
import pytest

from endolite.annotate import NewMask
from endolite.errors import InvalidInput
from endolite.ingest import ingest_paths
from endolite.media import write_image_atomic
from endolite.records import Role
from endolite.services import Actor, Ctx, preferences
from endolite.services import masks as mask_service
from endolite.storage import annotations, audit, labels


def _frame(con, settings, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    write_image_atomic(folder / "a.png", np.zeros((40, 60, 3), dtype=np.uint8), fmt="png")
    [group] = ingest_paths(con, settings, [folder], user="ann")
    labels.add(con, "polyp")
    return group.frame_ids[0]


def _mask(x0: int) -> np.ndarray:
    m = np.zeros((40, 60), dtype=bool)
    m[5:15, x0:x0 + 10] = True
    return m


def test_redo_reapplies_the_last_undone_action_and_a_new_action_clears_it(con, settings, tmp_path):
    frame_id = _frame(con, settings, tmp_path)
    ann = Ctx(con=con, settings=settings, actor=Actor(name="ann", role=Role.ANNOTATOR))
    bob = Ctx(con=con, settings=settings, actor=Actor(name="bob", role=Role.ANNOTATOR))
    live = lambda: [m.id for m in annotations.masks_of(con, frame_ids=[frame_id])]  # noqa: E731
    a = mask_service.save(ann, NewMask(frame_id, _mask(0)), label="polyp")
    b = mask_service.save(ann, NewMask(frame_id, _mask(20)), label="polyp")
    assert mask_service.redoable(ann, frame_id) is None
    mask_service.undo(ann, frame_id)
    mask_service.undo(ann, frame_id)
    assert live() == []
    assert mask_service.redoable(bob, frame_id) is None, "redo is per user"
    assert mask_service.redo(ann, frame_id).added == (a.id,), "the most recently undone first"
    assert live() == [a.id]
    mask_service.redo(ann, frame_id)
    assert live() == [a.id, b.id] and mask_service.redo(ann, frame_id) is None
    [entry, *_] = audit.recent(con, action="mask.undo")
    assert entry.details["redo"] is True and entry.details["restored"] == [b.id]
    mask_service.undo(ann, frame_id)                 # b goes; then a new action clears redo
    mask_service.save(ann, NewMask(frame_id, _mask(40)), label="polyp")
    assert mask_service.redoable(ann, frame_id) is None


def test_preferences_are_per_user_and_named(con, settings):
    ann = Ctx(con=con, settings=settings, actor=Actor(name="ann", role=Role.ANNOTATOR))
    bob = Ctx(con=con, settings=settings, actor=Actor(name="bob", role=Role.ANNOTATOR))
    assert preferences.get(ann, "annotate.label", "x") == "x"
    preferences.put(ann, "annotate.label", "polyp")
    assert preferences.get(ann, "annotate.label") == "polyp"
    assert preferences.get(bob, "annotate.label") is None
    with pytest.raises(InvalidInput):
        preferences.put(ann, "password", "nope")
