"""Paging of a sequence's frames (count_frames, frames_page, FramePages), of the review strip's
propagated masks (review_counts, review_page), and the library's paged thumbnail grid."""

from __future__ import annotations

import numpy as np
import pytest

from endolite import annotate
from endolite.media import write_image_atomic
from endolite.records import MaskSource, Role
from endolite.storage import annotations, labels, media
from endolite.synthetic import disc_mask
from tests.support import make_user, page

H, W = 24, 32


def _sequence(con, settings, numbers: list[int], *, context_every: int = 0, video: bool = False):
    """A group (or video) whose frames have ``numbers`` (inserted in that order, so ids do not
    follow frame numbers); every ``context_every``-th row is a context frame.  All rows point
    at one small image file.  Returns the sequence's keyword ({"group_id": id} / {"video_id": id})."""
    path = write_image_atomic(settings.frames_dir / "paging" / "one.png",
                              np.full((H, W, 3), 90, np.uint8), fmt="png")
    if video:
        owner = {"video_id": media.add_video(
            con, sha256=f"{len(numbers):064d}", title="v", original_name="v.mp4", path="videos/v.mp4",
            container="mp4", codec="h264", fps=25.0, frame_count=max(numbers) + 1, duration=1.0,
            width=W, height=H, size_bytes=0).id}
    else:
        owner = {"group_id": media.reserve_group_id(con)}
        media.add_group(con, group_id=owner["group_id"], title="g", source="folder", sha256="0" * 64)
    ids = media.reserve_frame_ids(con, len(numbers))
    media.insert_frames(con, [
        {"id": i, **owner, "frame_number": n, "path": settings.relative(path), "width": W,
         "height": H, "sha256": "a" * 64, "original_name": f"f{n}.png",
         "is_context": bool(context_every and k % context_every == context_every - 1)}
        for k, (i, n) in enumerate(zip(reversed(ids), numbers))])
    return owner


@pytest.mark.parametrize("include_context", [True, False])
@pytest.mark.parametrize("video", [False, True])
def test_pages_tile_frames_of_in_its_order_and_count_matches(con, settings, include_context, video):
    numbers = [7, 3, 3, 0, 12, 5, 5, 9, 1, 4, 11, 2, 8]          # repeats: ordered by id then
    seq = _sequence(con, settings, numbers, context_every=3, video=video)
    whole = media.frames_of(con, **seq, include_context=include_context)
    assert media.count_frames(con, **seq, include_context=include_context) == len(whole)
    assert len(whole) == (13 if include_context else 9)
    assert [(f.frame_number, f.id) for f in whole] == sorted((f.frame_number, f.id) for f in whole)
    for size in (1, 4, 5, len(whole), len(whole) + 3):
        tiles = []
        for offset in range(0, len(whole), size):
            part = media.frames_page(con, **seq, include_context=include_context, limit=size, offset=offset)
            assert len(part) == min(size, len(whole) - offset)
            tiles += part
        assert tiles == whole
    assert media.frames_page(con, **seq, include_context=include_context, limit=5, offset=len(whole)) == []
    assert media.frames_page(con, **seq, include_context=include_context, limit=0) == []


def test_paging_arguments_are_checked(con, settings):
    seq = _sequence(con, settings, [0, 1])
    with pytest.raises(ValueError):
        media.frames_page(con, **seq, limit=-1)
    with pytest.raises(ValueError):
        media.frames_page(con, **seq, limit=2, offset=-1)
    with pytest.raises(ValueError):
        media.count_frames(con)
    with pytest.raises(ValueError):
        media.frames_page(con, video_id=1, group_id=1, limit=2)
    with pytest.raises(ValueError):
        media.FramePages(con, **seq, page_size=0)
    empty = media.reserve_group_id(con)
    media.add_group(con, group_id=empty, title="empty", source="folder", sha256="1" * 64)
    assert media.count_frames(con, group_id=empty) == 0
    assert len(media.FramePages(con, group_id=empty)) == 0 and not media.FramePages(con, group_id=empty)


def test_frame_pages_reads_only_the_page_it_needs(con, settings, monkeypatch):
    seq = _sequence(con, settings, list(range(20)), context_every=4)
    whole = media.frames_of(con, **seq, include_context=False)
    calls = []
    real = media.frames_page
    monkeypatch.setattr(media, "frames_page", lambda *a, **k: calls.append((k["limit"], k["offset"]))
                        or real(*a, **k))
    pages = media.FramePages(con, **seq, include_context=False, page_size=4)
    assert len(pages) == len(whole) == 15
    assert pages[5] == whole[5] and pages[6] == whole[6] and pages[4] == whole[4]
    assert calls == [(4, 4)], "one page read, then kept"
    assert pages[-1] == whole[-1] and calls[-1] == (4, 12)
    assert pages[3:9] == whole[3:9] and calls[-1] == (6, 3)
    assert pages[::4] == whole[::4]
    assert pages[20:30] == []
    with pytest.raises(IndexError):
        pages[15]
    with pytest.raises(IndexError):
        pages[-16]
    assert list(pages) == whole
    assert whole[7] in pages and pages.index(whole[7]) == 7


def _propagated(con, settings, frame_ids, specs):
    """Store masks per (frame index, annotator, confidence, flagged); returns their ids."""
    ids = []
    for k, who, conf, flagged in specs:
        m = annotate.save_mask(con, settings, annotate.NewMask(
            frame_ids[k], disc_mask(H, W, 10 + k, 10, 5), source=MaskSource.PROPAGATED,
            confidence=conf, flagged=flagged), label="polyp", annotator=who)
        ids.append(m.id)
    return ids


def test_review_page_and_counts_match_the_whole_review_queue(con, settings):
    labels.add(con, "polyp")
    seq = _sequence(con, settings, list(range(8)))
    other = _sequence(con, settings, list(range(3)), video=True)
    frames = [f.id for f in media.frames_of(con, **seq)]
    specs = [(0, "ann", 0.9, False), (1, "bob", 0.2, True), (2, "ann", 0.4, True),
             (3, "ann", 0.4, True), (4, "bob", None, False), (5, "ann", 0.1, False),
             (6, "bob", 0.7, False), (7, "ann", 0.2, True)]
    ids = _propagated(con, settings, frames, specs)
    _propagated(con, settings, [f.id for f in media.frames_of(con, **other)], [(0, "ann", 0.1, True)])
    annotate.save_mask(con, settings, annotate.NewMask(frames[0], disc_mask(H, W, 9, 9, 4)),
                       label="polyp", annotator="ann")                     # manual: not reviewed
    annotate.delete_masks(con, [ids[3]], by="ann")                         # deleted: not reviewed
    for who in (None, "ann", "bob"):
        whole = annotate.review_queue(con, video_id=None, group_id=seq["group_id"], annotator=who)
        flagged, total = annotations.review_counts(con, **seq, annotator=who)
        assert (flagged, total) == (sum(m.flagged for m in whole), len(whole))
        pages = [annotations.review_page(con, **seq, annotator=who, limit=3, offset=o)
                 for o in range(0, total + 3, 3)]
        assert [m.id for p in pages for m in p] == [m.id for m in whole]
    assert annotations.review_counts(con, **seq) == (3, 7)
    first = annotations.review_page(con, **seq, limit=2)
    assert {m.id for m in first} == {ids[1], ids[7]}, "flagged, lowest confidence first"
    assert annotations.review_counts(con, **other) == (1, 1)
    with pytest.raises(ValueError):
        annotations.review_page(con, **seq, limit=-1)


def test_library_grid_shows_one_page_of_thumbnails_at_a_time(app_env):
    from endolite.storage import connect

    con = connect(app_env)
    lead = make_user(con, "lena", Role.LEAD, "lead-pass-1")
    seq = _sequence(con, app_env, list(range(100)))
    at = page("views/library.py", lead).run()
    assert not at.exception, at.exception
    captions = [img.proto.imgs[0].caption for img in at.get("image")]
    assert len(captions) == 48 and captions[0].endswith("f0.png") and captions[-1].endswith("f47.png")
    picker = at.number_input(key=f"lib_group_{seq['group_id']}_grid_page")
    assert picker.max == 3
    picker.set_value(3).run()
    captions = [img.proto.imgs[0].caption for img in at.get("image")]
    assert [c.split(": ", 1)[1] for c in captions] == [f"f{n}.png" for n in range(96, 100)]
    assert any("97–100 of 100" in c.value for c in at.caption)
