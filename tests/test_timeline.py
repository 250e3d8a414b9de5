"""endolite.timeline: bins of a sequence (masks, labels, flags, segments) counted in SQL, the
navigator position of a frame number, segments from two marks."""

from __future__ import annotations

import time

import numpy as np
import pytest

from endolite import annotate, timeline
from endolite.ingest import ingest_paths
from endolite.records import LabelKind, Presence
from endolite.storage import annotations, labels, media
from endolite.synthetic import moving_disc_frames, write_disc_video


@pytest.fixture
def project(con, settings, tmp_path):
    video = write_disc_video(tmp_path / "v.mp4", 40, gop=10)
    [result] = ingest_paths(con, settings, [video], user="u")
    labels.add(con, "polyp", kind=LabelKind.PATHOLOGY)
    from endolite.extract import extract_frames

    extract_frames(con, settings, result.id, method="uniform", count=40, context=0)
    frames = media.frames_of(con, video_id=result.id)
    return result.id, {f.frame_number: f for f in frames}


def test_bins_count_masks_labels_flags_and_carry_segments(con, settings, project):
    video_id, by_number = project
    truth = [m for _, m in moving_disc_frames(40)]
    annotate.save_masks(con, settings, [
        annotate.NewMask(by_number[3].id, truth[3]),
        annotate.NewMask(by_number[3].id, truth[3]),
        annotate.NewMask(by_number[17].id, truth[17], flagged=True, confidence=0.2),
    ], label="polyp", annotator="ann")
    from endolite import frame_labels

    frame_labels.set_frame_labels(con, by_number[5].id, [("polyp", Presence.ABSENT, None)], annotator="ann")
    frame_labels.set_frame_labels(con, by_number[6].id, [("polyp", Presence.UNKNOWN, None)], annotator="ann")
    frame_labels.add_segment(con, video_id, label="polyp", start=10, end=20, annotator="ann")

    tl = timeline.build(con, video_id=video_id)            # 40 frames, 400 bins: one per frame
    assert (tl.length, tl.width, tl.frames) == (40, 1, 40)
    by_start = {b.start: b for b in tl.bins}
    assert (by_start[3].masked, by_start[3].masks, by_start[3].flagged) == (1, 2, 0)
    assert (by_start[17].masked, by_start[17].flagged) == (1, 1)
    assert by_start[5].labelled == 1 and by_start[6].labelled == 0, "unknown is no label"
    assert [(s.start_frame, s.end_frame) for s in tl.segments] == [(10, 20)]

    coarse = timeline.build(con, video_id=video_id, bins=4)  # 10 frames a bin
    assert coarse.width == 10 and [b.start for b in coarse.bins] == [0, 10, 20, 30]
    assert [(b.masked, b.masks, b.labelled, b.flagged) for b in coarse.bins] == [
        (1, 2, 1, 0), (1, 1, 0, 1), (0, 0, 0, 0), (0, 0, 0, 0)]
    assert coarse.bins[1].first_number == 10 and coarse.bins[-1].end == 40
    assert timeline.build(con, video_id=video_id, annotator="someone else").bins[0].masks == 0


def test_position_of_is_the_navigator_index_of_the_nearest_frame(con, project):
    video_id, by_number = project
    frames = media.frames_of(con, video_id=video_id, include_context=False)
    for number in (0, 7, 39):
        assert frames[timeline.position_of(con, number, video_id=video_id,
                                           include_context=False)].frame_number == number
    assert timeline.position_of(con, 10_000, video_id=video_id) == len(frames) - 1
    assert timeline.position_of(con, 0, group_id=12345) is None


def test_segment_from_marks_is_end_exclusive_in_either_order():
    assert timeline.segment_from_marks(5, 9) == (5, 10)
    assert timeline.segment_from_marks(9, 5) == (5, 10)
    assert timeline.segment_from_marks(4, 4) == (4, 5)


def test_a_20000_frame_sequence_is_binned_in_the_database(con, settings):
    """20,000 frames, 2,000 masks: one grouped query (well under a second), 400 bins."""
    con.execute("INSERT INTO frames (group_id, frame_number, path, width, height, sha256) "
                "SELECT 77, i, 'x.png', 4, 4, 'h' || i FROM range(20000) t(i)")
    lab = labels.add(con, "polyp")
    ids = [r[0] for r in con.execute("SELECT id FROM frames WHERE group_id = 77 "
                                     "AND frame_number % 10 = 0 ORDER BY frame_number").fetchall()]
    con.execute("INSERT INTO masks (frame_id, label_id, annotator, source, kind, height, width, rle, "
                "area, bbox, flagged) SELECT unnest(?), ?, 'a', 'propagated', 'mask', 4, 4, '', 1, "
                "[0.0, 0, 1, 1], false", [ids, lab.id])
    start = time.perf_counter()
    tl = timeline.build(con, group_id=77)
    took = time.perf_counter() - start
    assert len(tl.bins) == 400 and tl.width == 50 and tl.frames == 20000
    assert all(b.masked == 5 and b.masks == 5 for b in tl.bins)
    assert took < 1.0, f"{took:.2f} s"
    assert timeline.position_of(con, 12345, group_id=77) == 12345
    assert np.isclose(sum(b.masks for b in tl.bins), 2000)
