"""Anonymization (endolite/anonymize/redact.py, pipeline.py, services/anonymization.py, the CLI):
a synthetic screen capture -- a round field of view on black with patient text drawn outside it
and an id drawn inside it -- is anonymized and verified with real OCR (RapidOCR), real encoding
(PyAV / libx264) and a real data directory; no mocks.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from endolite.anonymize.ocr import find_text
from endolite.anonymize.pipeline import positions
from endolite.anonymize.redact import (anonymize_video, apply_redaction, build_redaction,
                                       check_rectangle, redaction_from_json)
from endolite.cli import main as cli_main
from endolite.errors import InvalidInput, PermissionDenied
from endolite.media import read_image, sha256_file
from endolite.records import Role
from endolite.services import Actor, Ctx
from endolite.services import anonymization as service
from endolite.services import media as media_service
from endolite.storage import anonymizations as anon
from endolite.storage import audit
from endolite.storage import media as store
from endolite.storage.anonymizations import AnonStatus

H, W, R = 288, 384, 130              # frame size and the FOV disc's radius (centre W/2, H/2)
META = {"title": "DOE JOHN colonoscopy", "comment": "patient 4711", "date": "2024-01-02",
        "creation_time": "2024-01-02T03:04:05Z"}
OUTSIDE = ("DOE JOHN", (4, 26)), ("AGE 54", (4, 278))     # (text, cv2 origin) outside the disc
INSIDE = ("ID 4711", (140, 150))                          # inside the disc


def fov_mask() -> np.ndarray:
    """``(H, W) bool``: the synthetic field of view (the disc)."""
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx - W / 2) ** 2 + (yy - H / 2) ** 2 <= R ** 2


def screen_frame(i: int, *, text: bool = True) -> np.ndarray:
    """Frame ``i``: ``(H, W, 3) uint8`` RGB, moving smooth "tissue" inside the disc, black around
    it, light text outside (name, age) and inside (an id)."""
    yy, xx = np.mgrid[0:H, 0:W]
    inside = fov_mask()
    frame = np.zeros((H, W, 3), np.uint8)
    tissue = np.stack([150 + 40 * np.sin((xx + 2 * i) / 25.0), 70 + 20 * np.cos((yy - i) / 30.0),
                       np.full_like(xx, 60.0)], -1).astype(np.uint8)
    frame[inside] = tissue[inside]
    if text:
        for label, origin in (*OUTSIDE, INSIDE):
            cv2.putText(frame, label, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.8, (235, 235, 235), 2,
                        cv2.LINE_AA)
    return frame


def write_screen_video(path: Path, count: int) -> Path:
    """An H.264 MP4 of ``count`` screen frames carrying container and stream metadata (title,
    comment, date, creation_time) and an audio track, as a recorder might write."""
    with av.open(str(path), mode="w") as container:
        for key, value in META.items():
            container.metadata[key] = value
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        stream.metadata["title"] = "camera of DOE JOHN"
        audio = container.add_stream("aac", rate=8000)
        for i in range(count):
            for packet in stream.encode(av.VideoFrame.from_ndarray(screen_frame(i), format="rgb24")):
                container.mux(packet)
        for k in range(count * 8000 // 25 // 1024 + 1):
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                                 layout="mono")
            samples.sample_rate, samples.pts = 8000, k * 1024
            for packet in audio.encode(samples):
                container.mux(packet)
        for s in (stream, audio):
            for packet in s.encode():
                container.mux(packet)
    return path


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    return write_screen_video(tmp_path_factory.mktemp("anon") / "screen.mp4", 60)


@pytest.fixture(scope="module")
def short_video(tmp_path_factory) -> Path:
    return write_screen_video(tmp_path_factory.mktemp("anon") / "short.mp4", 8)


def lead(con, settings, name: str = "lena") -> Ctx:
    return Ctx(con=con, settings=settings, actor=Actor(name=name, role=Role.LEAD))


def ingest(con, settings, path: Path) -> int:
    [result] = media_service.import_server(Ctx(con=con, settings=settings,
                                               actor=Actor.server_shell()), [path])
    assert result.id is not None, result
    return result.id


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


# --- pure parts -------------------------------------------------------------------------------

def test_redaction_mask_is_outside_fov_plus_padded_boxes_plus_rectangles():
    polygon = [(10, 10), (50, 10), (50, 40), (10, 40)]
    red = build_redaction(64, 48, fov_polygon=polygon, text_boxes=[(20, 20, 30, 25)],
                          rectangles=["40,0,45,5"], pad=2)
    mask = red.mask()
    assert mask.shape == (48, 64) and mask.dtype == bool
    assert mask[0, 0] and mask[47, 63] and not mask[15, 15]            # outside / inside the FOV
    assert mask[18:27, 18:32].all() and not mask[17, 25] and not mask[25, 33]   # box padded by 2
    assert mask[0:5, 40:45].all()
    assert redaction_from_json(json.loads(json.dumps(red.to_json()))) == red
    image = np.full((48, 64, 3), 200, np.uint8)
    out = apply_redaction(image, mask)
    assert (out[mask] == 0).all() and (out[~mask] == 200).all() and (image == 200).all()
    # no FOV found: everything is outside it
    assert build_redaction(8, 8).mask().all()


def test_bad_rectangles_and_sizes_are_refused_with_their_name():
    for bad, words in [("1,2,3", "four numbers"), ("5,5,2,8", "x0 < x1"), ("a,b,c,d", "four numbers"),
                       ([100, 100, 120, 120], "outside the 64x48 frame")]:
        with pytest.raises(InvalidInput, match=words):
            build_redaction(64, 48, rectangles=[(0, 0, 4, 4), bad])
    with pytest.raises(InvalidInput, match="redaction 2"):
        build_redaction(64, 48, rectangles=[(0, 0, 4, 4), "1,2,3"])
    assert check_rectangle([-5, -5, 10.5, 99], width=64, height=48) == (0, 0, 11, 48)
    with pytest.raises(InvalidInput, match="differs from the redaction"):
        apply_redaction(np.zeros((10, 10, 3), np.uint8), np.zeros((8, 8), bool))


def test_positions_spread_and_cover_short_videos():
    assert positions(10, 50) == list(range(10))
    centres, starts = positions(884, 50), positions(884, 50, phase=0.0)
    assert len(centres) == len(starts) == 50 and starts[0] == 0 and centres[-1] < 884
    assert not set(centres) & set(starts)          # the check reads other frames than detection


def test_reencode_strips_metadata_and_audio_and_keeps_frames(short_video, tmp_path):
    with av.open(str(short_video)) as c:           # the source really carries the metadata
        assert c.metadata["title"] == META["title"] and c.metadata["comment"] == META["comment"]
        assert "creation_time" in c.metadata and c.streams.audio
    dst = tmp_path / "out" / "clean.mp4"
    info = anonymize_video(short_video, dst, build_redaction(W, H, fov_polygon=[(0, 0), (W, 0),
                                                                                  (W, H), (0, H)]))
    assert info["frames"] == 8 and (info["width"], info["height"]) == (W, H) and info["fps"] == 25
    with av.open(str(dst)) as c:
        tags = {**c.metadata, **c.streams.video[0].metadata}
        assert not c.streams.audio and len(c.streams) == 1
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
    for key in ("title", "comment", "date", "creation_time", "encoder"):
        assert key not in tags, tags
    raw = dst.read_bytes()
    assert b"DOE" not in raw and b"4711" not in raw and b"x264" not in raw and b"Lavf" not in raw
    assert [p.name for p in dst.parent.iterdir()] == ["clean.mp4"]       # no temporary left


# --- the pipeline on a video --------------------------------------------------------------------

def test_video_anonymization_blanks_text_and_outside_and_verifies(con, settings, long_video):
    video_id = ingest(con, settings, long_video)
    ctx = lead(con, settings)
    early = media_service.extract(ctx, video_id, method="uniform", count=3, context=0)
    steps: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    row = service.anonymize(ctx, video_id=video_id, samples=10,
                            progress=lambda f, m: steps.append((f, m)))
    print(f"\nanonymize 60 frames {W}x{H} (10 raw + 50 verify OCR): {time.perf_counter() - t0:.1f} s")
    assert row.status == AnonStatus.ANONYMIZED and row.created_by == "lena"
    assert steps[-1][0] == 1.0 and all(0 <= f <= 1 for f, _ in steps)

    # OCR found every drawn text on the raw frames, outside and inside the field of view
    texts = {e["text"].replace(" ", "").upper() for e in row.text_boxes}
    assert {"DOEJOHN", "AGE54", "ID4711"} <= texts, texts
    assert {e["frame"] for e in row.text_boxes} == set(positions(60, 10))
    # ... and none is left on >= 50 frames of the anonymized copy
    assert row.residual == [] and row.sampled_frames == 50

    target = settings.anonymized_media_dir(video_id=video_id) / "video.mp4"
    assert row.path == settings.relative(target) and row.sha256 == sha256_file(target)
    frames = decoded(target)
    assert len(frames) == 60 and frames[0].shape == (H, W, 3)
    near = cv2.dilate(fov_mask().astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    for i in (0, 31, 59):
        frame = frames[i]
        assert frame[~near].max() <= 12, i                       # outside the FOV: black
        x0, y0 = INSIDE[1][0], INSIDE[1][1] - 18
        assert frame[y0 + 4:y0 + 18, x0 + 4:x0 + 80].max() <= 12     # the id inside: black
        assert frame[200, 192].mean() > 40                       # tissue kept
        assert find_text(frame) == []                            # independent spot check

    # frames extracted before and after the anonymization are blanked with the same redaction
    late = media_service.extract(ctx, video_id, method="uniform", count=6, context=1)
    ids = [f.id for f in (*early.picked, *late.picked, *late.context)]
    copies = anon.frames(con, ids)
    assert set(copies) == set(ids)
    for frame in store.frames_by_ids(con, ids):
        path, sha = copies[frame.id]
        assert path == f"anonymized/video_{video_id}/frame_{frame.id}.jpg"
        assert sha == sha256_file(settings.absolute(path))
        blank = read_image(settings.absolute(path))
        assert blank[~near].max() <= 20 and find_text(blank) == []
    assert anon.get(con, video_id=video_id).sha256 == row.sha256       # unchanged by extraction
    [entry] = [e for e in audit.recent(con, action="media.extract") if e.details["blanked"]]
    assert entry.details["blanked"] == len(late.picked) + len(late.context)

    report = service.report(ctx, video_id=video_id)
    assert report["status"] == "anonymized" and report["residual_by_frame"] == {}
    x0, y0, x1, y1 = report["fov"]["bbox"]
    assert abs(x0 - (W / 2 - R)) <= 3 and abs(y1 - (H / 2 + R)) <= 3
    assert len(report["fov"]["polygon"]) >= 8


def test_status_flow_validation_rejection_and_audit(con, settings, short_video):
    video_id = ingest(con, settings, short_video)
    ctx = lead(con, settings)
    with pytest.raises(InvalidInput, match=f"video {video_id}: not anonymized"):
        service.validate(ctx, video_id=video_id)
    assert service.report(ctx, video_id=video_id)["status"] == "raw"

    first = service.anonymize(ctx, video_id=video_id, samples=4)
    assert first.status == AnonStatus.ANONYMIZED and first.sampled_frames == 8   # all 8 frames
    validated = service.validate(ctx, video_id=video_id)
    assert validated.status == AnonStatus.VALIDATED and validated.validated_sha256 == first.sha256
    assert validated.decided_by == "lena"

    again = service.anonymize(ctx, video_id=video_id, samples=4, redactions=["300,200,384,288"])
    assert again.status == AnonStatus.ANONYMIZED and again.validated_sha256 is None
    assert again.redactions == [[300, 200, 384, 288]]
    frame = decoded(settings.absolute(again.path))[3]
    assert frame[205:285, 305:380].max() <= 12                  # the drawn rectangle is black

    rejected = service.reject(ctx, video_id=video_id, reason="blank the clock too")
    assert (rejected.status, rejected.reason) == (AnonStatus.REJECTED, "blank the clock too")
    assert service.report(ctx, video_id=video_id)["reason"] == "blank the clock too"
    with pytest.raises(InvalidInput, match="reason"):
        service.reject(ctx, video_id=video_id, reason="  ")

    target = settings.absolute(again.path)                      # changed after the check
    target.write_bytes(target.read_bytes() + b"\0")
    with pytest.raises(InvalidInput, match="changed on disk"):
        service.validate(ctx, video_id=video_id)
    assert anon.status_of(con, video_id=video_id) == AnonStatus.REJECTED

    annotator = Ctx(con=con, settings=settings, actor=Actor(name="ann", role=Role.ANNOTATOR))
    with pytest.raises(PermissionDenied):
        service.anonymize(annotator, video_id=video_id)
    with pytest.raises(PermissionDenied):
        service.validate(annotator, video_id=video_id)
    with pytest.raises(PermissionDenied):
        service.reject(annotator, video_id=video_id, reason="no")

    log = [(e.username, e.action, e.entity, e.entity_id, (e.details or {}).get("status"))
           for e in reversed(audit.search(con, action="media."))]
    assert [x for x in log if x[1] != "media.import_server"] == [
        ("lena", "media.anonymize", "video", video_id, None),
        ("lena", "media.validate", "video", video_id, "validated"),
        ("lena", "media.anonymize", "video", video_id, None),
        ("lena", "media.validate", "video", video_id, "rejected")]
    denied = [e.entity for e in audit.search(con, action="denied") if e.username == "ann"]
    assert sorted(denied) == ["media.anonymize", "media.validate", "media.validate"]
    entry = audit.search(con, action="media.validate")[0]
    assert entry.details["reason"] == "blank the clock too"


def test_image_group_anonymization(con, settings, tmp_path):
    from PIL import Image

    folder = tmp_path / "stills"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(screen_frame(i * 7)).save(folder / f"{i}.png")
    [result] = media_service.import_server(Ctx(con=con, settings=settings,
                                               actor=Actor.server_shell()), [folder])
    group_id = result.id
    ctx = lead(con, settings)
    frames = store.frames_of(con, group_id=group_id)
    row = service.anonymize(ctx, group_id=group_id,
                            redactions=[{"frame_id": frames[0].id, "box": [300, 0, 384, 40]}])
    assert row.status == AnonStatus.ANONYMIZED and row.path is None
    assert row.residual == [] and row.sampled_frames == 3
    texts = {(e["frame_id"], e["text"].replace(" ", "").upper()) for e in row.text_boxes}
    assert {(f.id, t) for f in frames for t in ("DOEJOHN", "AGE54", "ID4711")} <= texts
    copies = anon.frames(con, [f.id for f in frames])
    assert row.sha256 == anon.group_digest((fid, sha) for fid, (_, sha) in copies.items())
    near = cv2.dilate(fov_mask().astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    for frame in frames:
        path, sha = copies[frame.id]
        assert path == f"anonymized/group_{group_id}/frame_{frame.id}.png"
        image = read_image(settings.absolute(path))
        assert image[~near].max() == 0 and sha == sha256_file(settings.absolute(path))
    assert set(row.fov) == {str(f.id) for f in frames}
    assert service.validate(ctx, group_id=group_id).status == AnonStatus.VALIDATED
    settings.absolute(copies[frames[1].id][0]).write_bytes(b"changed")
    with pytest.raises(InvalidInput, match=f"image group {group_id}: .*changed on disk"):
        service.validate(ctx, group_id=group_id)
    with pytest.raises(InvalidInput, match="not an image of this group"):
        service.anonymize(ctx, group_id=group_id, redactions=[{"frame_id": 999, "box": [0, 0, 1, 1]}])
    [entry] = audit.search(con, action="media.anonymize")
    assert (entry.entity, entry.entity_id) == ("image_group", group_id)


def test_cli_anonymize_report_validate_and_backup(con, settings, short_video, tmp_path, capsys):
    video_id = ingest(con, settings, short_video)
    con.close()
    data = ["--data", str(settings.data_dir)]
    assert cli_main([*data, "anonymize", str(video_id), "--samples", "4",
                     "--redact", "0,0,20,20"]) == 0
    out = capsys.readouterr().out
    assert f"video {video_id}: anonymized" in out and "0 left on 8 frames" in out
    assert cli_main([*data, "--json", "anonymization-report", str(video_id)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["status"] == "anonymized" and rep["redactions"] == [[0, 0, 20, 20]]
    assert rep["residual"] == [] and rep["sampled_frames"] == 8
    assert any("DOE" in e["text"] for e in rep["text_boxes"])
    assert cli_main([*data, "anonymization-report", str(video_id)]) == 0
    out = capsys.readouterr().out
    assert "field of view: bbox" in out and "residual text on the anonymized copy: 0 boxes" in out
    assert cli_main([*data, "validate", str(video_id), "--reject", "check the corner"]) == 0
    assert "rejected by" in capsys.readouterr().out
    assert cli_main([*data, "--user", "nobody", "validate", str(video_id)]) == 2
    assert cli_main([*data, "validate", str(video_id)]) == 0
    assert "validated by shell:" in capsys.readouterr().out
    assert cli_main([*data, "validate"]) == 2
    assert "name a video id or --group" in capsys.readouterr().err

    # a backup carries the anonymized copy, so a restore still holds the validated file
    from endolite.maintenance.backup import backup
    from endolite.storage import connect

    again = connect(settings)
    try:
        result = backup(again, settings, tmp_path / "backup")
    finally:
        again.close()
    copy = tmp_path / "backup" / "anonymized" / f"video_{video_id}" / "video.mp4"
    assert copy.is_file() and sha256_file(copy) == rep["sha256"] and not result.missing


def test_text_regions_merge_overlapping_boxes():
    entries = [{"frame": f, "box": box, "text": text, "score": 0.9}
               for f, box, text in [(0, [0, 0, 10, 10], "Age:"), (5, [2, 1, 11, 10], "Age"),
                                    (5, [0, 50, 30, 60], "Name"), (9, [9, 9, 20, 12], "Age:")]]
    regions = service.text_regions(entries)
    assert [r["box"] for r in regions] == [[0, 0, 20, 12], [0, 50, 30, 60]]
    assert regions[0]["texts"] == ["Age:", "Age"] and regions[0]["frames"] == 3
    assert regions[0]["boxes"] == 3 and regions[1]["frames"] == 1
    assert service.text_regions([]) == []


def test_boxes_taller_than_a_text_line_are_not_taken_for_text():
    from endolite.anonymize.ocr import TextBox
    from endolite.anonymize.pipeline import _boxes, _text, line_limit

    assert line_limit(410) == 49 and line_limit(100) == 32
    found = [TextBox(0, 0, 40, 20, "Age:", 0.9), TextBox(200, 150, 380, 330, "四", 0.6)]
    entries = _boxes(found, 7, limit=line_limit(410))
    assert [e["text"] for e in _text(entries)] == ["Age:"]
    assert "taller than a text line" in entries[1]["ignored"] and entries[1]["frame"] == 7
    assert service.text_regions(entries) == [{"box": [0, 0, 40, 20], "texts": ["Age:"],
                                              "boxes": 1, "frames": 1}]
