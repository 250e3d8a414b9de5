"""Many users at once on one database, as the dashboard runs them: every thread works on its own
cursor of ONE connection (``con.cursor()``) through the mask services, started together by a
barrier.  Every save lands and none overwrites another; two edits of the same mask version:
exactly one wins, the other gets Conflict; undo is per user and per frame and never touches
another user's masks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from endolite.annotate import NewMask, load_mask
from endolite.errors import Conflict
from endolite.media import encode_image
from endolite.records import Role
from endolite.services import Actor, Ctx, labels, masks, media
from endolite.storage import annotations as store
from endolite.storage import media as media_store
from endolite.synthetic import disc_mask

H, W = 60, 80                    # H != W
THREADS, SAVES = 12, 20


def run_together(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Run ``jobs`` in threads released at the same moment; returns each one's result or the
    exception it raised."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = jobs[i]()
        except BaseException as exc:  # noqa: BLE001 - handed to the test to assert on
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return results


def as_user(con, settings, name: str, role: Role = Role.ANNOTATOR) -> Ctx:
    """A context on a cursor of its own, as each dashboard session has."""
    return Ctx(con=con.cursor(), settings=settings, actor=Actor(name=name, role=role))


def disc(t: int, i: int) -> np.ndarray:
    """A different disc for every (user, save)."""
    return disc_mask(H, W, 8 + 5 * t, 8 + 2 * i, 4 + i % 3)


@pytest.fixture
def frames(con, settings, tmp_path: Path) -> list[int]:
    folder = tmp_path / "shots"
    folder.mkdir()
    for i in range(4):
        rgb = np.random.default_rng(i).integers(0, 255, size=(H, W, 3), dtype=np.uint8)
        (folder / f"shot_{i}.png").write_bytes(encode_image(rgb, fmt="png"))
    shell = Ctx(con=con, settings=settings, actor=Actor.server_shell())
    [group] = media.import_server(shell, [folder])
    labels.add(shell, "polyp")
    return [f.id for f in media_store.frames_of(con, group_id=group.id)]


def live(con, frame_id: int, annotator: str | None = None) -> list[int]:
    return [m.id for m in store.masks_of(con, frame_ids=[frame_id], annotator=annotator)]


def test_concurrent_saves_all_land_with_their_own_pixels(con, settings, frames):
    def annotator(t: int) -> Callable[[], list[int]]:
        ctx = as_user(con, settings, f"ann{t}")

        def save_all() -> list[int]:
            # thread t saves on frames t, t+1, ...: several users on each frame at each moment
            return [masks.save(ctx, NewMask(frames[(t + i) % len(frames)], disc(t, i)),
                               label="polyp").id for i in range(SAVES)]
        return save_all

    results = run_together([annotator(t) for t in range(THREADS)])
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    ids = [i for r in results for i in r]
    assert len(set(ids)) == THREADS * SAVES
    assert con.execute("SELECT count(*) FROM masks WHERE deleted_at IS NULL").fetchone()[0] == THREADS * SAVES
    for t in range(THREADS):
        mine = sorted(store.masks_of(con, annotator=f"ann{t}"), key=lambda m: m.id)
        assert [m.id for m in mine] == results[t]
        for i, m in enumerate(mine):
            assert m.frame_id == frames[(t + i) % len(frames)] and m.version == 1
            assert np.array_equal(load_mask(m), disc(t, i)), (t, i)
    # every save is in its user's undo history and in the audit log
    assert con.execute("SELECT count(*) FROM mask_history WHERE action = 'create'").fetchone()[0] == THREADS * SAVES
    per_user = dict(con.execute("SELECT username, count(*) FROM audit_log WHERE action = 'mask.create' "
                                "GROUP BY username").fetchall())
    assert per_user == {f"ann{t}": SAVES for t in range(THREADS)}


def test_two_users_editing_the_same_mask_version_one_wins(con, settings, frames):
    ann = as_user(con, settings, "ann")
    for _ in range(3):
        m = masks.save(ann, NewMask(frames[0], disc_mask(H, W, 40, 30, 20)), label="polyp")
        editors = [as_user(con, settings, "lena", Role.LEAD), as_user(con, settings, "leo", Role.LEAD)]
        cuts = [load_mask(m) & (np.arange(W) < 30 + 10 * k)[None, :] for k in range(2)]
        results = run_together([lambda k=k: masks.edit(editors[k], m.id, cuts[k], version=m.version)
                                for k in range(2)])
        wins = [k for k, r in enumerate(results) if isinstance(r, int)]
        losses = [k for k, r in enumerate(results) if isinstance(r, Conflict)]
        assert len(wins) == 1 and len(losses) == 1, results
        [winner] = wins
        [stored] = store.masks_of(con, frame_ids=[frames[0]])
        assert stored.id == results[winner] and stored.annotator == ("lena", "leo")[winner]
        assert np.array_equal(load_mask(stored), cuts[winner])
        state = store.mask_states(con, [m.id])[m.id]
        assert state["deleted"] and state["deleted_by"] == ("lena", "leo")[winner]
        assert state["version"] == m.version + 1, "the loser did not bump the version"
        edits = con.execute("SELECT username FROM audit_log WHERE action = 'mask.edit' AND entity_id = ?",
                            [m.id]).fetchall()
        assert edits == [(("lena", "leo")[winner],)]
        masks.delete(editors[winner], [stored.id])       # next round starts on an empty frame


def test_two_users_deleting_the_same_mask_one_wins(con, settings, frames):
    m = masks.save(as_user(con, settings, "ann"), NewMask(frames[1], disc(0, 0)), label="polyp")
    leads = [as_user(con, settings, "lena", Role.LEAD), as_user(con, settings, "leo", Role.LEAD)]
    results = run_together([lambda k=k: masks.delete(leads[k], [m.id], versions={m.id: m.version})
                            for k in range(2)])
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "list"], results
    assert live(con, frames[1]) == []
    assert con.execute("SELECT count(*) FROM audit_log WHERE action = 'mask.delete'").fetchone()[0] == 1


def test_deleting_a_mask_someone_edited_since_is_a_conflict(con, settings, frames):
    ann, lena = as_user(con, settings, "ann"), as_user(con, settings, "lena", Role.LEAD)
    m = masks.save(ann, NewMask(frames[2], disc(1, 1)), label="polyp")
    new_id = masks.edit(lena, m.id, load_mask(m) & (np.arange(W) < 12)[None, :], version=m.version)
    with pytest.raises(Conflict, match=f"mask {m.id} was deleted by lena"):
        masks.delete(ann, [m.id], versions={m.id: m.version})
    with pytest.raises(Conflict):       # the same for an edit from the stale version
        masks.edit(ann, m.id, load_mask(m), version=m.version)
    assert live(con, frames[2]) == [new_id]
    # a live mask whose version moved on since it was read (deleted, then restored by undo) is
    # stale too: the delete is refused and deletes nothing
    fresh = store.get_mask(con, new_id)
    masks.delete(lena, [new_id])
    masks.undo(lena, frames[2])
    assert store.get_mask(con, new_id).version == fresh.version + 2
    leo = as_user(con, settings, "leo", Role.LEAD)
    with pytest.raises(Conflict, match=rf"changed by someone else .*version {fresh.version} -> "
                                       rf"{fresh.version + 2}"):
        masks.delete(leo, [new_id], versions={new_id: fresh.version})
    assert live(con, frames[2]) == [new_id]


def test_undo_is_per_user_and_steps_back_through_their_own_actions(con, settings, frames):
    frame = frames[3]
    a, b = as_user(con, settings, "ann"), as_user(con, settings, "bob")
    a1 = masks.save(a, NewMask(frame, disc(0, 1)), label="polyp")
    b1 = masks.save(b, NewMask(frame, disc(1, 1)), label="polyp")
    a2 = masks.save(a, NewMask(frame, disc(0, 2)), label="polyp")
    b2 = masks.save(b, NewMask(frame, disc(1, 2)), label="polyp")

    assert masks.undo(a, frame).added == (a2.id,)                 # ann's last, not bob's newer one
    assert live(con, frame) == [a1.id, b1.id, b2.id]
    assert masks.undo(a, frame).added == (a1.id,)                 # a second undo goes further back
    assert live(con, frame) == [b1.id, b2.id]
    assert masks.undo(a, frame) is None and masks.undoable(a, frame) is None
    assert live(con, frame, "bob") == [b1.id, b2.id]

    b3 = masks.save(b, NewMask(frame, disc(1, 3)), label="polyp")
    masks.delete(b, [b1.id])
    assert masks.undoable(b, frame).action == "delete"
    assert masks.undo(b, frame).removed == (b1.id,)               # undo of a delete restores it
    assert live(con, frame) == [b1.id, b2.id, b3.id]
    assert np.array_equal(load_mask(store.get_mask(con, b1.id)), disc(1, 1))
    assert masks.undo(b, frame).added == (b3.id,)
    assert live(con, frame) == [b1.id, b2.id]
    undone = con.execute("SELECT username, details FROM audit_log WHERE action = 'mask.undo' "
                         "ORDER BY id").fetchall()
    assert [u for u, _ in undone] == ["ann", "ann", "bob", "bob"]


def test_undo_of_an_edit_brings_the_old_mask_back(con, settings, frames):
    a = as_user(con, settings, "ann")
    m = masks.save(a, NewMask(frames[0], disc(2, 2)), label="polyp")
    new_id = masks.edit(a, m.id, load_mask(m) & (np.arange(W) < 16)[None, :], version=m.version)
    assert live(con, frames[0]) == [new_id]
    step = masks.undo(a, frames[0])
    assert (step.action, step.added, step.removed) == ("edit", (new_id,), (m.id,))
    assert live(con, frames[0]) == [m.id]
    assert np.array_equal(load_mask(store.get_mask(con, m.id)), disc(2, 2))


def test_undo_refuses_when_someone_else_changed_the_mask_since(con, settings, frames):
    a, lena = as_user(con, settings, "ann"), as_user(con, settings, "lena", Role.LEAD)
    m = masks.save(a, NewMask(frames[1], disc(3, 3)), label="polyp")
    edited = masks.edit(lena, m.id, load_mask(m) & (np.arange(W) < 22)[None, :], version=m.version)
    with pytest.raises(Conflict, match="deleted by lena"):
        masks.undo(a, frames[1])
    assert live(con, frames[1]) == [edited]
    assert masks.undoable(a, frames[1]).added == (m.id,), "the refused undo stays to be undone"


def test_concurrent_saves_and_undos_on_one_frame(con, settings, frames):
    frame = frames[2]

    def annotator(t: int) -> Callable[[], list[int]]:
        ctx = as_user(con, settings, f"ann{t}")

        def work() -> list[int]:
            kept = []
            for i in range(4):
                keep = masks.save(ctx, NewMask(frame, disc(t, 2 * i)), label="polyp")
                masks.save(ctx, NewMask(frame, disc(t, 2 * i + 1)), label="polyp")
                masks.undo(ctx, frame)                     # removes the second, never another's
                kept.append(keep.id)
            return kept
        return work

    results = run_together([annotator(t) for t in range(THREADS)])
    assert [r for r in results if isinstance(r, BaseException)] == []
    for t in range(THREADS):
        assert live(con, frame, f"ann{t}") == results[t]
    assert len(live(con, frame)) == THREADS * 4
