"""On-screen text detection (endolite/anonymize/ocr.py): drawn text, blank frames, a real video.

The real video (../shared/data/real/videos/video_coloscopy.mp4, read in place) is a 470x410
screen capture cropped through the processor's text panel: "Age:" is whole, "Physician:" is cut
by the left edge (visible "hysician:") and the "Comment" line by the bottom edge (only the top
half of "omment" shows), so the last two are checked by what is visible and where it is.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from endolite.anonymize.ocr import TextBox, find_text, find_text_in_video
from endolite.errors import InvalidInput
from endolite.sampling import spread_indices


def _text_frame(height: int, width: int, label: str, origin: tuple[int, int], font_scale: float,
                thickness: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Dark (H, W, 3) uint8 RGB frame with ``label`` in light grey; returns (frame, text bbox)."""
    frame = np.full((height, width, 3), 12, np.uint8)
    cv2.putText(frame, label, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, (230, 230, 230),
                thickness, cv2.LINE_AA)
    ys, xs = np.nonzero(frame[..., 0] > 100)
    return frame, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _covers(box: TextBox, ink: tuple[int, int, int, int], slack: int) -> bool:
    x0, y0, x1, y1 = ink
    return (box.x0 <= x0 + slack and box.y0 <= y0 + slack
            and box.x1 >= x1 - slack and box.y1 >= y1 - slack)


def _near(box: TextBox, ink: tuple[int, int, int, int], margin: int) -> bool:
    x0, y0, x1, y1 = ink
    return (box.x0 >= x0 - margin and box.y0 >= y0 - margin
            and box.x1 <= x1 + margin and box.y1 <= y1 + margin)


def test_drawn_text_is_found_with_a_box_around_it():
    frame, ink = _text_frame(240, 320, "PATIENT 12345", (30, 120), 0.9, 2)
    t0 = time.perf_counter()
    boxes = find_text(frame)
    print(f"\nfind_text 320x240: {time.perf_counter() - t0:.2f} s (first call, engine included)")
    assert len(boxes) == 1, boxes
    box = boxes[0]
    assert "PATIENT" in box.text.upper() and "12345" in box.text
    assert 0.5 <= box.score <= 1.0
    assert _covers(box, ink, slack=3) and _near(box, ink, margin=12), (box, ink)
    assert box.bbox == (box.x0, box.y0, box.x1, box.y1)


def test_blank_dark_frame_gives_no_boxes():
    rng = np.random.default_rng(0)
    frame = np.clip(rng.normal(15, 4, (240, 320, 3)), 0, 255).astype(np.uint8)
    assert find_text(frame) == []
    assert find_text(np.zeros((64, 64, 3), np.uint8)) == []


def test_scale_maps_boxes_back_to_input_pixels():
    frame, ink = _text_frame(720, 1280, "DOE JOHN 1962", (700, 600), 1.6, 3)
    t0 = time.perf_counter()
    boxes = find_text(frame, scale=0.5)
    print(f"\nfind_text 1280x720 at scale 0.5: {time.perf_counter() - t0:.2f} s")
    assert len(boxes) == 1, boxes
    assert "DOE" in boxes[0].text.upper()
    assert _covers(boxes[0], ink, slack=4) and _near(boxes[0], ink, margin=20), (boxes[0], ink)


def test_bad_input_is_refused():
    with pytest.raises(InvalidInput):
        find_text(np.zeros((32, 32), np.uint8))
    with pytest.raises(InvalidInput):
        find_text(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(InvalidInput):
        find_text(np.zeros((32, 32, 3), np.uint8), scale=2.0)
    with pytest.raises(InvalidInput):
        find_text(np.zeros((32, 32, 3), np.uint8), pad=-1)


def test_video_sampling_without_text(disc_video):
    found = find_text_in_video(disc_video, samples=3)
    assert [n for n, _ in found] == spread_indices(100, 3).tolist()
    assert all(boxes == [] for _, boxes in found)
    with pytest.raises(InvalidInput):
        find_text_in_video(disc_video, samples=0)


def test_real_video_processor_text_fields(real):
    path = real / "videos" / "video_coloscopy.mp4"
    samples = 6
    find_text(np.zeros((64, 64, 3), np.uint8))   # build the engine outside the timing
    t0 = time.perf_counter()
    found = find_text_in_video(path, samples=samples)
    elapsed = time.perf_counter() - t0
    print(f"\nreal video 470x410: {samples} frames in {elapsed:.2f} s, "
          f"{elapsed / samples:.2f} s per frame (decode + OCR)")
    assert [n for n, _ in found] == spread_indices(884, samples).tolist()
    boxes = [b for _, frame_boxes in found for b in frame_boxes]
    for n, frame_boxes in found:
        print(n, [(b.text, round(b.score, 2), b.bbox) for b in frame_boxes])
    assert all(0 <= b.x0 < b.x1 <= 470 and 0 <= b.y0 < b.y1 <= 410 for b in boxes)

    # "Age:" left of the image's top, below the detector's caption (ink about x 47-90, y 99-120)
    age = [b for b in boxes if "age" in b.text.lower()]
    assert len(age) >= samples - 1, age
    assert all(40 <= b.x0 <= 52 and 92 <= b.y0 <= 104 and 86 <= b.x1 <= 100 and 116 <= b.y1 <= 128
               for b in age), age
    # "Physician:" cut by the left edge at y about 381-403
    physician = [b for b in boxes if "ysici" in b.text.lower()]
    assert physician, boxes
    assert all(b.x0 <= 8 and 374 <= b.y0 <= 390 and 395 <= b.y1 <= 408
               for b in physician), physician
    # "Comment" cut by the bottom edge: a line on the left reaching the last row
    comment = [b for b in boxes if b.x0 <= 8 and b.y0 >= 394 and b.y1 == 410]
    assert comment, boxes
    assert any("mm" in b.text.lower() for b in comment), comment
    # the detector's yellow caption at the top
    assert any(b.text.startswith("Probability") and b.y0 < 60 for b in boxes)
