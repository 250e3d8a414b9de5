"""A small project for the export-format tests (AI dataset, YOLO, Visual Layer): two videos
and an image group whose titles / file names carry a patient-like name (``SECRET``), frame
labels, segments, masks, frame tags, and an ``ExportPlan`` built directly from its frames
(source = the stored frame file; no anonymization needed for format tests)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from PIL import Image

from endolite.annotate import NewMask, save_mask
from endolite.export.plan import ExportFrame, ExportPlan, ExportVideo
from endolite.extract import extract_frames
from endolite.frame_labels import add_segment, set_frame_labels
from endolite.ingest import ingest_paths
from endolite.records import LabelKind, Presence
from endolite.storage import labels, media, tags
from endolite.synthetic import disc_mask, moving_disc_frames, write_disc_video

SECRET = "Jane Doe 1970"
SECRET_FILE = "jane_doe_1970"
GH, GW = 96, 128          # image group pictures (H != W catches transposes)


def _ingest(con, settings, path) -> int:
    [result] = ingest_paths(con, settings, [path], user="t")
    assert result.id is not None, result.reason
    return result.id


def _two_blobs(h: int, w: int) -> np.ndarray:
    """Two separate blobs: a disc and a rectangle."""
    out = disc_mask(h, w, 30.0, 40.0, 14.0)
    out[10:30, 80:118] = True
    return out


def build(con, settings, tmp_path) -> SimpleNamespace:
    folder = tmp_path / SECRET
    folder.mkdir()
    v1 = _ingest(con, settings, write_disc_video(folder / f"{SECRET_FILE} colonoscopy.mp4", 20, seed=0))
    v2 = _ingest(con, settings, write_disc_video(folder / f"{SECRET_FILE} gastroscopy.mp4", 12, seed=1))
    con.execute("UPDATE videos SET source_url = ?, client_metadata = ? WHERE id = ?",
                [f"https://example.org/{SECRET_FILE}", f'{{"patient": "{SECRET}"}}', v1])
    f = extract_frames(con, settings, v1, method="uniform", count=4, context=0, fmt="png").picked
    g = extract_frames(con, settings, v2, method="uniform", count=2, context=0).picked

    pics = folder / "stills"
    pics.mkdir()
    base = next(iter(moving_disc_frames(1, height=GH, width=GW, seed=3)))[0]
    brighter = np.clip(base.astype(np.int16) + 6, 0, 255).astype(np.uint8)
    other = next(iter(moving_disc_frames(1, height=GH, width=GW, seed=11)))[0][:, ::-1].copy()
    for name, rgb in (("a", base), ("b", brighter), ("c", other)):
        Image.fromarray(rgb).save(pics / f"{SECRET_FILE}_{name}.png")
    group_id = _ingest(con, settings, pics)
    stills = {fr.original_name.rsplit("_", 1)[-1].split(".")[0]: fr
              for fr in media.frames_of(con, group_id=group_id)}
    assert set(stills) == {"a", "b", "c"}

    polyp = labels.add(con, "polyp", kind=LabelKind.PATHOLOGY)
    blood = labels.add(con, "blood")
    fl = {}
    fl["polyp_f1"], fl["blood_f1"] = set_frame_labels(
        con, f[1].id, [("polyp", Presence.PRESENT, 0.75), ("blood", Presence.ABSENT, None)],
        annotator="ann")
    (fl["polyp_f0"],) = set_frame_labels(con, f[0].id, [("polyp", Presence.ABSENT, None)], annotator="ann")
    (fl["unknown_f2"],) = set_frame_labels(con, f[2].id, [("polyp", Presence.UNKNOWN, None)], annotator="ann")
    (fl["polyp_g0"],) = set_frame_labels(con, g[0].id, [("polyp", Presence.PRESENT, None)], annotator="bob")
    (fl["blood_sa"],) = set_frame_labels(con, stills["a"].id, [("blood", Presence.PRESENT, None)],
                                         annotator="ann")
    seg_export = add_segment(con, v1, label="polyp", start=f[1].frame_number,
                             end=f[1].frame_number + 2, annotator="seg")
    seg_hidden = add_segment(con, v1, label="blood", start=0, end=5, annotator="seg",
                             for_export=False)

    h, w = f[0].height, f[0].width
    masks = {
        "video_disc": save_mask(con, settings, NewMask(frame_id=f[0].id, mask=disc_mask(h, w, 60.0, 50.0, 20.0)),
                                label=polyp, annotator="ann"),
        "still_blobs": save_mask(con, settings, NewMask(frame_id=stills["c"].id, mask=_two_blobs(GH, GW)),
                                 label=blood, annotator="ann"),
        "still_disc": save_mask(con, settings, NewMask(frame_id=stills["c"].id,
                                                       mask=disc_mask(GH, GW, 90.0, 70.0, 10.0)),
                                label=polyp, annotator="ann"),
    }
    tags.add(con, stills["a"].id, "reviewed", username="lena")
    tags.add(con, f[0].id, "needs-second-look", username="ann")

    videos = {v.id: v for v in (media.get_video(con, v1), media.get_video(con, v2))}
    frames = [*f, *g, *(stills[k] for k in "abc")]
    plan = ExportPlan(
        videos=tuple(ExportVideo(video_id=v.id, source=settings.absolute(v.path), sha256=v.sha256,
                                 fps=v.fps, frame_count=v.frame_count, width=v.width, height=v.height)
                     for v in videos.values()),
        group_ids=(group_id,),
        frames=tuple(ExportFrame(frame_id=fr.id, video_id=fr.video_id, group_id=fr.group_id,
                                 frame_number=fr.frame_number, timestamp=fr.timestamp,
                                 width=fr.width, height=fr.height, is_context=fr.is_context,
                                 source=settings.absolute(fr.path), sha256=fr.sha256)
                     for fr in frames))
    return SimpleNamespace(con=con, settings=settings, v1=v1, v2=v2, group_id=group_id, f=f, g=g,
                           stills=stills, polyp=polyp, blood=blood, fl=fl, seg_export=seg_export,
                           seg_hidden=seg_hidden, masks=masks, plan=plan, videos=videos)


def assert_no_secret(data: bytes) -> None:
    """Neither the patient-like name nor its file form appears, in any case."""
    text = data.decode("utf-8", errors="replace").lower()
    for needle in (SECRET.lower(), SECRET_FILE.lower(), "jane", "doe"):
        assert needle not in text, f"{needle!r} leaked into the export"
