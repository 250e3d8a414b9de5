"""Anonymize a stored video or image group, verify the result, and record it.

:func:`anonymize_video_media` (one video):

1. sample ``samples`` raw frames spread over the video; on each, OCR (``find_text``, the whole
   frame: inside and outside the field of view) and FOV detection (``detect_fov_video`` over the
   same frames);
2. one static :class:`~endolite.anonymize.redact.Redaction`: outside the FOV + every text box
   found (padded) + the rectangles a person drew;
3. the anonymized copy ``anonymized/video_<id>/video.mp4`` (``redact.anonymize_video``: H.264,
   same fps and size, every frame, no metadata) and a blanked copy of every frame extracted so
   far, ``anonymized/video_<id>/frame_<frame_id>.<ext>`` (same format as the stored frame);
4. verification: OCR on ``verify_samples`` (>= 50) frames of the *anonymized file*, spread over
   its length.  It reads other frames than step 1 where the video is long enough (bin starts
   instead of bin centres), so it also sees frames the redaction was not built from.  Text it
   still finds (on the real sample: a short "VP:" overlay beside lines that were blanked, which
   OCR reads only once its neighbours are gone) is added to the redaction and steps 3-4 run
   again, up to ``rounds`` times, each check on yet other frames; what the last check finds is
   stored as the residual with its frame numbers.  Blanked frames are written last, with the
   final redaction;
5. sha256 of the anonymized file; ``storage.anonymizations.save`` + ``set_frames`` in one
   transaction (status anonymized; an earlier validation is cleared).

:func:`anonymize_group_media` does the same per image of an image group (each image its own
FOV and OCR); the check reads up to ``verify_samples`` blanked images (all if fewer) back from
disk, and an image where it finds text is blanked again with that text added (up to ``rounds``
checks); the group's hash is ``storage.anonymizations.group_digest``.

:func:`blank_new_frames` blanks frames extracted after a video's anonymization with the stored
redaction, so the validated state (the video file's hash) still holds for them.

OCR boxes taller than ``line_limit(H)`` (12% of the frame height, at least 32 px) are not taken
for text: on the real sample the detector draws a blue rectangle around a polyp that OCR reads as
the glyph "四" in a 177 px box, which would black out the lesion in every frame.  They are
stored with an ``ignored`` reason (visible in the report), not blanked and not counted as
residual.

Files are written under temporary names and moved into place before the rows commit; if the
commit fails, the stored hash no longer matches the file, so validation and export refuse it.
Text boxes and residual entries are ``{"frame": n, "box": [x0, y0, x1, y1], "text": s,
"score": f}`` (images also ``"frame_id"``), pixel coordinates, x right, y down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from endolite.anonymize.redact import (DEFAULT_PAD, Redaction, anonymize_video, apply_redaction,
                                       build_redaction, redaction_from_json)
from endolite.config import Settings
from endolite.errors import InvalidInput
from endolite.storage import anonymizations as anon
from endolite.storage import media as store
from endolite.storage.tx import transaction

Progress = Callable[[float, str], None]
MIN_VERIFY = 50
MAX_LINE_FRACTION, MIN_LINE_LIMIT = 0.12, 32   # taller "text" boxes are shapes (see docstring)
VERIFY_PHASES = (0.0, 0.25, 0.75)   # check round k reads frames at these bin offsets (raw: 0.5)
OCR_MAX_SIDE = 1280          # larger frames are downsampled for OCR (boxes map back)


def _noop(fraction: float, message: str = "") -> None:
    return None


def _count(value: Any, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InvalidInput(f"{name}: {value!r} is not a whole number >= {low}")
    return int(value)


def positions(n: int, count: int, *, phase: float = 0.5) -> list[int]:
    """``min(count, n)`` frame numbers spread over ``range(n)``: ``floor((k + phase) * n / count)``
    (phase 0.5: bin centres, as ``sampling.spread_indices``; 0: bin starts); all if n <= count."""
    if n <= 0 or count <= 0:
        return []
    if count >= n:
        return list(range(n))
    return sorted({min(n - 1, int(np.floor((k + phase) * n / count))) for k in range(count)})


def _scale(width: int, height: int) -> float:
    return min(1.0, OCR_MAX_SIDE / max(width, height, 1))


def line_limit(height: int) -> int:
    """Tallest box (pixels) taken for a text line in a frame ``height`` pixels high."""
    return max(MIN_LINE_LIMIT, round(MAX_LINE_FRACTION * height))


def _boxes(found, frame: int, *, limit: int, **extra: Any) -> list[dict[str, Any]]:
    """TextBoxes -> entries; a box taller than ``limit`` pixels is kept but marked ``ignored``."""
    out = []
    for b in found:
        entry = {"frame": int(frame), **extra, "box": list(b.bbox), "text": b.text,
                 "score": round(float(b.score), 4)}
        if b.y1 - b.y0 > limit:
            entry["ignored"] = f"{b.y1 - b.y0} px tall: taller than a text line (> {limit} px)"
        out.append(entry)
    return out


def _text(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries taken for text (not ``ignored``)."""
    return [e for e in entries if "ignored" not in e]


def _fov_json(fov, redaction: Redaction) -> dict[str, Any]:
    return {"bbox": list(fov.bbox), "area_fraction": round(float(fov.area_fraction), 4),
            "redaction": redaction.to_json()}


def _write_frame(target: Path, rgb: np.ndarray) -> str:
    """Write a blanked frame (format from the suffix: .png lossless, else JPEG quality 95);
    returns its sha256."""
    from endolite.media import encode_image, sha256_bytes, write_bytes_atomic

    fmt = "png" if target.suffix.lower() == ".png" else "jpg"
    data = encode_image(rgb, fmt=fmt, quality=95)
    write_bytes_atomic(target, data)
    return sha256_bytes(data)


def _blank_frames(settings: Settings, frames, redaction: Redaction, folder: Path
                  ) -> list[tuple[int, str, str]]:
    """Blank stored frames ``frames`` (records.Frame) into ``folder`` -> (frame_id, rel, sha256)."""
    from endolite.media import read_image

    mask = redaction.mask()
    rows = []
    for frame in frames:
        source = settings.absolute(frame.path)
        image = read_image(source)
        if image.shape[:2] != mask.shape:
            raise InvalidInput(f"{frame.path}: {image.shape[1]}x{image.shape[0]} differs from the "
                               f"video's {mask.shape[1]}x{mask.shape[0]}")
        target = folder / f"frame_{frame.id}{Path(frame.path).suffix.lower()}"
        sha = _write_frame(target, apply_redaction(image, mask))
        rows.append((frame.id, settings.relative(target), sha))
    return rows


def _ocr_video(path: Path, targets: Sequence[int], *, min_score: float, progress: Progress,
               keep: list[np.ndarray] | None = None) -> list[tuple[int, list]]:
    """OCR the frames ``targets`` of the video at ``path`` -> [(frame number, [TextBox])];
    ``keep``: also append each decoded frame ``(H, W, 3) uint8`` RGB (for FOV detection)."""
    from endolite.anonymize.ocr import find_text
    from endolite.media import decode_frames, index_video

    index = index_video(path)
    found = []
    for number, frame in decode_frames(path, index, targets):
        rgb = frame.to_ndarray(format="rgb24")
        boxes = find_text(rgb, min_score=min_score, scale=_scale(rgb.shape[1], rgb.shape[0]))
        found.append((int(number), boxes))
        if keep is not None:
            keep.append(rgb)
        progress(len(found) / max(len(targets), 1), f"OCR {len(found)} of {len(targets)} frames")
    return found


def _part(progress: Progress, low: float, high: float) -> Progress:
    return lambda f, m="": progress(low + (high - low) * min(max(f, 0.0), 1.0), m)


def anonymize_video_media(con: duckdb.DuckDBPyConnection, settings: Settings, video_id: int, *,
                          redactions: Iterable[Any] = (), samples: int = 50,
                          verify_samples: int | None = None, min_score: float = 0.5,
                          pad: int = DEFAULT_PAD, rounds: int = 3, created_by: str | None = None,
                          progress: Progress | None = None) -> anon.Anonymization:
    """Anonymize video ``video_id`` (steps in the module docstring); returns the stored row.

    ``redactions``: rectangles ``[x0, y0, x1, y1]`` (or "x0,y0,x1,y1") in video pixels to black
    out as well.  ``samples``: raw frames read for OCR and FOV.  ``verify_samples``: frames of
    the anonymized file OCR'd for the residual check (default ``max(50, samples)``; at least 50).
    ``min_score``: OCR confidence threshold for both.  ``pad``: pixels around each text box.
    ``rounds``: at most this many encode + check rounds; text a check finds is added to the
    redaction (entries marked ``"round": k``) and the next round checks other frames.
    Raises NotFound for an unknown video, InvalidInput for bad options or rectangles.
    """
    from endolite.anonymize.fov import detect_fov_video
    from endolite.media import index_video, sha256_file

    progress = progress or _noop
    samples = _count(samples, "samples")
    verify = _count(max(MIN_VERIFY, samples) if verify_samples is None else verify_samples,
                    "verify_samples", MIN_VERIFY)
    video = store.get_video(con, video_id)
    src = settings.absolute(video.path)
    rectangles = [r for r in redactions]
    build_redaction(video.width, video.height, rectangles=rectangles)   # bad input fails first

    n = index_video(src).frame_count
    kept: list[np.ndarray] = []
    raw = _ocr_video(src, positions(n, samples), min_score=min_score, keep=kept,
                     progress=_part(progress, 0.0, 0.4))
    if not kept:
        raise InvalidInput(f"video {video_id} ({video.title}): no frame could be decoded")
    fov = detect_fov_video(kept)
    del kept
    limit = line_limit(video.height)
    text_boxes = [entry for number, boxes in raw for entry in _boxes(boxes, number, limit=limit)]
    redaction = build_redaction(video.width, video.height, fov_polygon=fov.polygon,
                                text_boxes=[e["box"] for e in _text(text_boxes)],
                                rectangles=rectangles, pad=pad)

    folder = settings.anonymized_media_dir(video_id=video_id)
    target = folder / "video.mp4"
    rounds = _count(rounds, "rounds")
    for k in range(rounds):
        low, high = 0.4 + 0.55 * k / rounds, 0.4 + 0.55 * (k + 1) / rounds
        progress(low, f"re-encoding the video with the redaction (round {k + 1})")
        anonymize_video(src, target, redaction, progress=_part(progress, low, (2 * low + high) / 3))
        phase = VERIFY_PHASES[k % len(VERIFY_PHASES)]
        checked = _ocr_video(target, positions(n, verify, phase=phase), min_score=min_score,
                             progress=_part(progress, (2 * low + high) / 3, high))
        entries = [{**e, "round": k + 1} for number, boxes in checked
                   for e in _boxes(boxes, number, limit=limit)]
        text_boxes += [e for e in entries if "ignored" in e]
        residual = _text(entries)
        if not residual or k == rounds - 1:
            break
        # text the redaction missed (often beside a blanked line): add it, encode and check again
        text_boxes += residual
        redaction = build_redaction(video.width, video.height, fov_polygon=fov.polygon,
                                    text_boxes=[e["box"] for e in _text(text_boxes)],
                                    rectangles=rectangles, pad=pad)
    progress(0.95, "blanking the extracted frames")
    rows = _blank_frames(settings, store.frames_of(con, video_id=video_id), redaction, folder)
    sha = sha256_file(target)
    with transaction(con, what=f"anonymization of video {video_id}"):
        row = anon.save(con, video_id=video_id, fov={**_fov_json(fov, redaction), "rounds": k + 1},
                        text_boxes=text_boxes,
                        redactions=[list(r) for r in redaction.rectangles],
                        residual=[{k: v for k, v in e.items() if k != "round"} for e in residual],
                        sampled_frames=len(checked), path=settings.relative(target),
                        sha256=sha, created_by=created_by)
        anon.set_frames(con, rows)
    progress(1.0, f"anonymized in {k + 1} rounds; {len(residual)} text boxes left on "
                  f"{len(checked)} frames read")
    return row


def _group_rectangles(redactions: Iterable[Any], frame_ids: set[int]) -> list[tuple[int | None, Any]]:
    """Group redactions -> [(frame_id or None for every image, rectangle)]."""
    from endolite.anonymize.redact import check_rectangle

    out = []
    for i, item in enumerate(redactions):
        fid = None
        if isinstance(item, dict):
            fid, item = item.get("frame_id"), item.get("box")
            if fid not in frame_ids:
                raise InvalidInput(f"redaction {i + 1}: frame {fid!r} is not an image of this group")
        # the format now (clipped to each image later); any size fits here
        out.append((fid, check_rectangle(item, width=2**31, height=2**31, name=f"redaction {i + 1}")))
    return out


def anonymize_group_media(con: duckdb.DuckDBPyConnection, settings: Settings, group_id: int, *,
                          redactions: Iterable[Any] = (), verify_samples: int = 50,
                          min_score: float = 0.5, pad: int = DEFAULT_PAD, rounds: int = 3,
                          created_by: str | None = None,
                          progress: Progress | None = None) -> anon.Anonymization:
    """Anonymize every image of image group ``group_id``: per image FOV + OCR + blanking into
    ``anonymized/group_<id>/frame_<frame_id>.<ext>``.  Up to ``verify_samples`` images spread
    over the group (all if fewer) are read back from disk and OCR'd again; text found there is
    added to that image's redaction and the image blanked and checked again (up to ``rounds``
    checks); what the last check finds is the residual.  ``redactions``: rectangles for every
    image, or ``{"frame_id": id, "box": [x0, y0, x1, y1]}`` for one image.  Returns the row."""
    from endolite.anonymize.fov import detect_fov
    from endolite.anonymize.ocr import find_text
    from endolite.media import read_image

    progress = progress or _noop
    verify = _count(verify_samples, "verify_samples")
    rounds = _count(rounds, "rounds")
    group = store.get_group(con, group_id)
    frames = store.frames_of(con, group_id=group_id)
    if not frames:
        raise InvalidInput(f"image group {group_id} ({group.title}): it has no images")
    wanted = _group_rectangles(redactions, {f.id for f in frames})
    folder = settings.anonymized_media_dir(group_id=group_id)
    checked = set(positions(len(frames), verify))
    fovs: dict[str, Any] = {}
    text_boxes: list[dict[str, Any]] = []
    residual: list[dict[str, Any]] = []
    rows: list[tuple[int, str, str]] = []
    for i, frame in enumerate(frames):
        image = read_image(settings.absolute(frame.path))
        height, width = image.shape[:2]
        limit = line_limit(height)
        found = _boxes(find_text(image, min_score=min_score, scale=_scale(width, height)),
                       frame.frame_number, limit=limit, frame_id=frame.id)
        fov = detect_fov(image)
        rects = [r for fid, r in wanted          # a rectangle for every image may miss a small one
                 if fid in (None, frame.id) and r[0] < width and r[1] < height]
        target = folder / f"frame_{frame.id}{Path(frame.path).suffix.lower()}"
        for k in range(rounds if i in checked else 1):
            text_boxes += found
            boxes = [e["box"] for e in _text(text_boxes) if e["frame_id"] == frame.id]
            redaction = build_redaction(width, height, fov_polygon=fov.polygon, text_boxes=boxes,
                                        rectangles=rects, pad=pad)
            sha = _write_frame(target, apply_redaction(image, redaction.mask()))
            if i not in checked:
                break
            blanked = read_image(target)          # what is on disk is what is checked
            entries = [{**e, "round": k + 1} for e in _boxes(
                find_text(blanked, min_score=min_score, scale=_scale(width, height)),
                frame.frame_number, limit=limit, frame_id=frame.id)]
            text_boxes += [e for e in entries if "ignored" in e]
            found = _text(entries)
            if not found:
                break
        if i in checked:
            residual += found
        fovs[str(frame.id)] = _fov_json(fov, redaction)
        rows.append((frame.id, settings.relative(target), sha))
        progress(0.98 * (i + 1) / len(frames), f"blanked {i + 1} of {len(frames)} images")
    with transaction(con, what=f"anonymization of image group {group_id}"):
        row = anon.save(con, group_id=group_id, fov=fovs, text_boxes=text_boxes,
                        redactions=[{"frame_id": fid, "box": list(r)} if fid is not None else
                                    list(r) for fid, r in wanted],
                        residual=[{k: v for k, v in e.items() if k != "round"} for e in residual],
                        sampled_frames=len(checked), path=None,
                        sha256=anon.group_digest((fid, sha) for fid, _, sha in rows),
                        created_by=created_by)
        anon.set_frames(con, rows)
    progress(1.0, f"anonymized; {len(residual)} text boxes left on {len(checked)} images read")
    return row


def stored_redaction(row: anon.Anonymization) -> Redaction:
    """The redaction a video's anonymization used (from its ``fov`` JSON)."""
    if row.video_id is None or not isinstance(row.fov, dict) or "redaction" not in row.fov:
        raise InvalidInput(f"{row.media}: no stored redaction; anonymize it again")
    return redaction_from_json(row.fov["redaction"])


def blank_new_frames(con: duckdb.DuckDBPyConnection, settings: Settings, video_id: int,
                     frame_ids: Iterable[int]) -> list[tuple[int, str, str]]:
    """Blank frames of an anonymized video that have no blanked copy yet, with the redaction the
    anonymization used; returns the ``(frame_id, path, sha256)`` rows written (none when the
    video was never anonymized, or its row holds no redaction: such frames stay unblanked and the
    export gate refuses them).  The anonymization's status and hash are unchanged."""
    row = anon.get(con, video_id=video_id)
    ids = sorted({int(i) for i in frame_ids})
    if row is None or not ids or not isinstance(row.fov, dict) or "redaction" not in row.fov:
        return []               # never anonymized here (or recorded without a redaction)
    have = anon.frames(con, ids)
    todo = [f for f in store.frames_by_ids(con, [i for i in ids if i not in have])
            if f.video_id == video_id]
    if not todo:
        return []
    rows = _blank_frames(settings, todo, stored_redaction(row),
                         settings.anonymized_media_dir(video_id=video_id))
    with transaction(con, what=f"blanked frames of video {video_id}"):
        anon.set_frames(con, rows)
    return rows


__all__ = ["anonymize_group_media", "anonymize_video_media", "blank_new_frames", "positions",
           "stored_redaction"]
