"""Anonymization of the real screen capture ../shared/data/real/videos/video_coloscopy.mp4
(470x410, 884 frames; read in place, copied only into the test's temporary data directory).

The processor's text panel shows "Age:", "Physician:" (cut by the left edge) and "Comment"
(cut by the bottom edge) beside the endoscope image; OCR must find them on the raw frames and
find no text at all on 50 frames of the anonymized copy (after the checks of earlier rounds
added what they found to the redaction).  Takes about 1-2 minutes on 2 cores (OCR is ~0.35 s
per frame with text, more when other work shares the cores).
"""

from __future__ import annotations

import time

import av
import cv2
import numpy as np
import pytest

from endolite.media import sha256_file
from endolite.records import Role
from endolite.services import Actor, Ctx
from endolite.services import anonymization as service
from endolite.services import media as media_service
from endolite.storage import anonymizations as anon
from endolite.storage.anonymizations import AnonStatus

pytestmark = pytest.mark.slow


def test_real_video_text_found_on_raw_and_none_left(con, settings, real):
    source = real / "videos" / "video_coloscopy.mp4"
    shell = Ctx(con=con, settings=settings, actor=Actor.server_shell())
    [imported] = media_service.import_server(shell, [source])
    video_id = imported.id
    ctx = Ctx(con=con, settings=settings, actor=Actor(name="lena", role=Role.LEAD))
    extraction = media_service.extract(ctx, video_id, method="uniform", count=4, context=0)

    marks: list[tuple[float, str]] = []
    t0 = time.perf_counter()

    def progress(fraction: float, message: str) -> None:
        step = message.split(" ")[0]
        if not marks or marks[-1][1] != step:
            marks.append((time.perf_counter(), step))

    row = service.anonymize(ctx, video_id=video_id, samples=50, progress=progress)
    total = time.perf_counter() - t0
    ends = [t for t, _ in marks[1:]] + [t0 + total]
    print(f"\nreal video anonymized in {total:.1f} s: " + ", ".join(
        f"{name} {end - start:.1f} s" for (start, name), end in zip(marks, ends)))
    raw = [e for e in row.text_boxes if "round" not in e]
    print(f"raw: {len(raw)} boxes on {len({e['frame'] for e in raw})} frames; "
          f"distinct texts {sorted({e['text'] for e in raw})}")
    for k in sorted({e["round"] for e in row.text_boxes if "round" in e}):
        later = [e for e in row.text_boxes if e.get("round") == k]
        print(f"check {k} found on the anonymized copy: {len(later)} boxes on "
              f"{len({e['frame'] for e in later})} frames: {sorted({(e['text'], tuple(e['box'])) for e in later})[:12]}")
    print(f"residual: {len(row.residual)} boxes on {row.sampled_frames} frames read "
          f"after {row.fov['rounds']} rounds")
    rep = service.report(ctx, video_id=video_id)
    for region in rep["regions"]:
        print(f"  region {region['box']} on {region['frames']} frames: {region['texts']}")
    print("ignored:", [(e["frame"], e["box"], e["text"]) for e in rep["ignored"]])
    # no region of blanked "text" covers the lesion (the detector's blue rectangle, 177 px tall)
    assert all(r["box"][3] - r["box"][1] <= 60 for r in rep["regions"]), rep["regions"]

    # OCR found the patient fields on the raw frames
    texts = raw
    age = [e for e in texts if "age" in e["text"].lower()]
    physician = [e for e in texts if "ysici" in e["text"].lower()]
    comment = [e for e in texts if e["box"][0] <= 8 and e["box"][1] >= 394 and e["box"][3] == 410]
    assert len({e["frame"] for e in age}) >= 40, age[:3]
    assert physician and comment, texts[:10]

    # the anonymized copy: none left on 50 frames spread over it, same frame count, black around
    assert row.status == AnonStatus.ANONYMIZED and row.residual == [] and row.sampled_frames == 50
    target = settings.absolute(row.path)
    assert row.sha256 == sha256_file(target)
    frames, count = [], 0
    with av.open(str(target)) as container:
        assert not container.metadata.get("title") and not container.metadata.get("encoder")
        for frame in container.decode(video=0):
            if count in (0, 300, 600, 883):
                frames.append(frame.to_ndarray(format="rgb24"))
            count += 1
    assert count == imported_frames(con, video_id) == 884
    polygon = np.asarray(service.report(ctx, video_id=video_id)["fov"]["polygon"], np.int32)
    inside = np.zeros((410, 470), np.uint8)
    cv2.fillConvexPoly(inside, polygon, 1)
    near = cv2.dilate(inside, np.ones((9, 9), np.uint8)).astype(bool)
    for frame in frames:
        assert frame.shape == (410, 470, 3)
        assert frame[~near].max() <= 16
        for e in age[:1] + physician[:1] + comment[:1]:
            x0, y0, x1, y1 = e["box"]
            assert frame[y0:y1, x0:x1].max() <= 16, e
    # frames extracted before the anonymization have blanked copies
    ids = [f.id for f in extraction.picked]
    assert set(anon.frames(con, ids)) == set(ids)


def imported_frames(con, video_id: int) -> int:
    return int(con.execute("SELECT frame_count FROM videos WHERE id = ?", [video_id]).fetchone()[0])
