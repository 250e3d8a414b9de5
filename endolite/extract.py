"""Frame extraction: pick frames of a video with a sampling method and store them.

``extract_frames`` runs, for one video and one range of it:

1. a demux pass (``media.index_video``): every packet's pts and keyframe flag, no decoding.
   Frame numbers are pts ranks (presentation order from 0), timestamps seconds from frame 0;
2. for methods that need pixels (k-means), a thumbnail pass (``media.scan_thumbnails``);
   for ``uncertain`` (active learning), a sparse pass over an even grid of candidates scored
   by a finished training run's model (``endolite.train.active.score_range``);
3. the selector from ``sampling.SELECTORS`` -> picked frame numbers, plus ``context`` frames
   either side of each pick (clipped to the video);
4. a sparse decoding pass (``media.decode_frames``) over the picks and context frames that
   are not stored yet, writing each as ``frames/video_<id>/frame_<frame_id>.<ext>``
   atomically, ids reserved up front;
5. one transaction: the extraction row, the frame rows (one bulk insert), promotions of
   former context frames that are now picked (the service layer writes the audit entry).  On any failure the
   transaction rolls back and the files written by this run are removed.

k-means design and its trade-off.  Writing the picks needs full-resolution frames, but the
picks are known only after every thumbnail is in, and no bounded buffer can hold the frames
until then.  So there are two decoding passes, both made as cheap as they can be without
changing a stored pixel:

* thumbnail pass: reference frames only (skip_frame="NONREF") without the loop filter.
  Candidates are the reference frames (about half the frames with x264's B-frames; like
  DeepLabCut's ``step``); the 32x32 luma area averages do not see the missing deblocking.
  Measured: about 0.7 of a full decode's CPU on a B-frame stream; 1.0 on IPPP streams.
* pick pass: ``media.decode_frames`` over picks + context.  Every pick is a reference frame,
  and non-target packets are sent with NONREF, so reaching a pick decodes reference frames
  only, and the planner seeks wherever that decodes fewer frames.  Its cost depends on the
  keyframe interval and on how densely the picks fall: small with a keyframe every second,
  most of the reference frames up to the last pick of each GOP with x264's default 250.
  Writing runs on a writer thread.

Measured by ``bench/extraction.py --synthetic`` (1500 frames 1280x1024, 50 picks + 2 context
frames each, 2 cores shared with other work, medians of 3, two runs; wall ratio = extraction
frame rate / ``ffmpeg -threads 2``'s): B-frames with a keyframe every 250: wall 0.66-0.92,
CPU 0.88-0.91; every 25: wall 0.71-0.91, CPU 0.90-0.92; IPPP (no non-reference frames): wall
0.69-0.73, CPU 0.63-0.68.  The CPU ratio (steadier under load) stays near 0.9 on B-frame
streams; IPPP streams fall short of 0.8 because neither pass can skip anything there.  The
alternatives were worse: picking cheap-to-reach members near each centroid saved under 2% of
the pick pass on long GOPs (clusters are time segments, so the last pick of a GOP stays
late); JPEG-encoding every candidate during a full-quality first pass would cost, by the
per-frame figures, about as much as the pick pass it saves and still leave the context
frames to decode.  Thumbnails are capped at max(``KMEANS_MAX_CANDIDATES``, 20 x count)
(every s-th decoded frame beyond it), so memory depends on the count, not on the video's
length.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from endolite import media, sampling
from endolite.config import Settings
from endolite.errors import InvalidInput, NotFound
from endolite.records import ExtractionResult, Frame, SampleMethod
from endolite.storage import media as store

KMEANS_MAX_CANDIDATES = 2000    # thumbnails kept for k-means: at least this, or 20 per pick
THUMBNAIL_SIZE = 32
FORMATS = {"jpg": "jpg", "jpeg": "jpg", "png": "png"}

ProgressFn = Callable[[float, str], None]


# --- options ----------------------------------------------------------------------------------

def _method(method: SampleMethod | str) -> str:
    name = str(method.value if isinstance(method, SampleMethod) else method).strip().lower()
    if name not in sampling.SELECTORS:
        raise InvalidInput(f"method: {method!r} is not one of {', '.join(sorted(sampling.SELECTORS))}")
    return name


def _int_option(value: Any, name: str, *, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidInput(f"{name}: {value!r} is not a whole number")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidInput(f"{name}: {value} must be {bounds}")
    return int(value)


def parse_position(value: float | str | None, name: str, index: media.StreamIndex) -> int | None:
    """Frame number for a range bound: a fraction in [0, 1] (float or "0.25") or seconds ("12.5s").

    A fraction f maps to frame round(f * N); seconds s to the first frame whose timestamp is
    >= s (up to a second past the last frame is read as the end, since container durations
    and frame timestamps disagree a little).  None stays None.  Raises InvalidInput naming
    ``name`` for anything else.
    """
    if value is None:
        return None
    n = index.frame_count
    hint = f"{name}: {value!r} is not a fraction in [0, 1] (e.g. 0.25) or a time in seconds (e.g. '12.5s')"
    seconds: float | None = None
    if isinstance(value, bool):
        raise InvalidInput(hint)
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            if text.endswith("s"):
                seconds = float(text[:-1].strip())
            else:
                fraction = float(text)
        except ValueError:
            raise InvalidInput(hint) from None
    elif isinstance(value, (int, float, np.integer, np.floating)):
        fraction = float(value)
    else:
        raise InvalidInput(hint)
    if seconds is not None:
        duration = float(index.timestamps[-1]) + (1.0 / index.fps if index.fps else 0.0)
        slack = max(1.0, 0.01 * duration)    # container durations differ from the frames' by a bit
        if not math.isfinite(seconds) or seconds < 0 or seconds > duration + slack:
            raise InvalidInput(f"{name}: {value!r} lies outside the video (0s to {duration:.3f}s)")
        return int(np.searchsorted(index.timestamps, seconds - 1e-9, side="left"))
    if not math.isfinite(fraction) or not 0.0 <= fraction <= 1.0:
        raise InvalidInput(hint)
    return int(round(fraction * n))


def frame_range(index: media.StreamIndex, start: float | str | None, end: float | str | None) -> tuple[int, int]:
    """``[lo, hi)`` frame numbers for the start / end options (None: the whole video)."""
    lo = parse_position(start, "start", index)
    hi = parse_position(end, "end", index)
    lo = 0 if lo is None else lo
    hi = index.frame_count if hi is None else hi
    if hi <= lo:
        raise InvalidInput(f"start / end: the range {start!r} to {end!r} holds no frames "
                           "(start must come before end)")
    return lo, hi


def context_targets(picks: np.ndarray, context: int, frame_count: int) -> dict[int, int]:
    """Context frame number -> the pick it belongs to (the nearest; the earlier on a tie).

    Frames within ``context`` of a pick, inside ``[0, frame_count)``, that are not picks.
    """
    picked = {int(p) for p in picks}
    out: dict[int, int] = {}
    for p in sorted(picked):
        for offset in sorted(range(-context, context + 1), key=abs):
            n = p + offset
            if offset == 0 or not 0 <= n < frame_count or n in picked:
                continue
            if n not in out or abs(n - p) < abs(n - out[n]):
                out[n] = p
    return out


# --- extraction -------------------------------------------------------------------------------

def extract_frames(con, settings: Settings, video_id: int, *, method: SampleMethod | str, count: int,
                   start: float | str | None = None, end: float | str | None = None,
                   context: int = 2, seed: int = 0, fmt: str = "jpg", quality: int = 90,
                   user: str | None = None, progress: ProgressFn | None = None,
                   step: int | None = None, target_fps: float | None = None,
                   model: int | None = None) -> ExtractionResult:
    """Pick ``count`` frames of video ``video_id`` with ``method`` and store them.

    ``start``/``end``: a fraction in [0, 1] (float or "0.25") or seconds ("12.5s"); None is
    the video's start / end; the range is ``[start, end)``.  ``context``: frames stored on each
    side of every pick (``is_context=True``, ``parent_id`` = the pick's frame id).  ``seed``
    makes random and k-means selections reproducible.  ``fmt``: "jpg" (``quality`` 1-100) or
    "png".  ``step`` / ``target_fps``: uniform sampling every n-th frame / at a frame rate
    (then ``count`` caps the number, 0 = no cap).  ``model``: for method ``uncertain`` (and only
    for it), the id of a done training run whose model scores the candidates; the params record
    the run and the picks' scores.  ``progress(fraction, message)`` is called while decoding.

    A frame number already stored for the video is reused (row and file); a stored context
    frame that is now picked becomes a pick.  Returns the picked and context frames in frame
    order and the number of frames the decoder produced.  Raises InvalidInput for bad options
    (naming the option) and NotFound for an unknown video.
    """
    name = _method(method)
    selector = sampling.SELECTORS[name]
    ext = FORMATS.get(str(fmt).strip().lower())
    if ext is None:
        raise InvalidInput(f"fmt: {fmt!r} is not one of jpg, png")
    if name != "uniform" and (step is not None or target_fps is not None):
        raise InvalidInput(f"step / target_fps: only for method uniform, not {name}")
    if (model is not None) != (name == "uncertain"):
        raise InvalidInput("model: method uncertain needs a training run id (model)" if model is None
                           else f"model: only for method uncertain, not {name}")
    quality = _int_option(quality, "quality", low=1, high=100)
    context = _int_option(context, "context", low=0, high=1000)
    seed = _int_option(seed, "seed", low=0)
    uniform_grid = name == "uniform" and (step is not None or target_fps is not None)
    count = _int_option(count, "count", low=0 if uniform_grid else 1)
    report = _progress(progress)

    video = store.get_video(con, video_id)
    path = settings.absolute(video.path)
    if not path.is_file():
        raise NotFound(f"video {video_id}: file {video.path} is missing from the data directory")
    report(0.0, "reading the video index")
    index = media.index_video(path)
    lo, hi = frame_range(index, start, end)

    counter = media.DecodeCounter()
    rng = np.random.default_rng(seed)
    options: dict[str, Any] = {"step": step, "target_fps": target_fps} if name == "uniform" else {}
    scored = None
    if name == "uncertain":
        from endolite.train.active import score_range

        scored = score_range(con, settings, path, index, lo, hi, run_id=model, count=count,
                             counter=counter, progress=lambda f, m: report(0.02 + 0.58 * f, m))
        # frames already extracted (labelled or waiting) are not picked again
        taken = np.fromiter((f.frame_number for f in store.frames_of(con, video_id=video_id)), np.int64)
        fresh = ~np.isin(scored.candidates.frame_numbers, taken)
        if not fresh.any():
            raise InvalidInput(f"video {video_id}: every candidate frame the model scored is "
                               "already extracted; choose another portion of the video")
        candidates, options["features"] = scored.candidates.subset(fresh), scored.features[fresh]
    else:
        candidates = _candidates(path, index, lo, hi, selector.needs, count, counter, report)
    picks = sampling.select(name, candidates, count=count, rng=rng, **options)
    parents = context_targets(picks, context, index.frame_count)

    existing: dict[int, Frame] = {}
    for frame in store.frames_of(con, video_id=video_id):
        existing.setdefault(frame.frame_number, frame)
    wanted = sorted({int(p) for p in picks} | set(parents))
    to_decode = [n for n in wanted
                 if n not in existing or not settings.absolute(existing[n].path).is_file()]
    new_numbers = [n for n in to_decode if n not in existing]
    ids = dict(zip(new_numbers, store.reserve_frame_ids(con, len(new_numbers))))

    written: list[Path] = []
    try:
        begin = 0.6 if scored is not None else 0.35 if "thumbnails" in selector.needs else 0.05
        rows = _write_frames(settings, video_id, path, index, to_decode, existing, ids, ext, quality,
                             counter, written,
                             lambda f: report(begin + (0.97 - begin) * f, "decoding picked frames"))
        picked_numbers = [int(p) for p in picks if int(p) in rows or int(p) in existing]
        frame_id = {n: existing[n].id if n in existing else rows[n]["id"]
                    for n in wanted if n in existing or n in rows}
        for n in list(rows):
            row = rows[n]
            parent = parents.get(n)
            if parent is not None and parent not in frame_id:   # its pick did not decode
                settings.absolute(row["path"]).unlink(missing_ok=True)
                del rows[n], frame_id[n]
                continue
            row.update(is_context=parent is not None, created_by=user,
                       parent_id=frame_id[parent] if parent is not None else None)
        promote = [existing[n].id for n in picked_numbers if n in existing and existing[n].is_context]
        params = {"start": start, "end": end, "frame_range": [lo, hi], "count": count,
                  "context": context, "seed": seed, "fmt": ext, "quality": quality, "step": step,
                  "target_fps": target_fps, "candidates": len(candidates),
                  "picked": len(picked_numbers), "new_frames": len(rows),
                  "reused": sum(1 for n in wanted if n in existing),
                  "not_decoded": [n for n in new_numbers if n not in rows],
                  **(scored.params(picks) if scored is not None else {})}
        report(0.98, "saving")
        extraction_id = _save(con, video_id=video_id, method=name, params=params, rows=rows,
                              promote=promote, frames_decoded=counter.frames, user=user)
    except BaseException:
        for file in written:
            file.unlink(missing_ok=True)
        raise

    stored = {f.id: f for f in store.frames_by_ids(con, list(frame_id.values()))}
    picked = tuple(stored[frame_id[n]] for n in sorted(picked_numbers))
    context_frames = tuple(stored[frame_id[n]] for n in sorted(parents)
                           if n in frame_id and stored[frame_id[n]].is_context)
    report(1.0, f"stored {len(picked)} frames and {len(context_frames)} context frames")
    return ExtractionResult(extraction_id=extraction_id, video_id=video_id, method=_enum(name),
                            picked=picked, context=context_frames, frames_decoded=counter.frames)


def _write_frames(settings: Settings, video_id: int, path: Path, index: media.StreamIndex,
                  numbers: list[int], existing: dict[int, Frame], ids: dict[int, int], ext: str,
                  quality: int, counter: media.DecodeCounter, written: list[Path],
                  progress: Callable[[float], None]) -> dict[int, dict[str, Any]]:
    """Decode ``numbers`` sparsely and write each file; returns new frame rows by frame number.

    A writer thread converts, encodes, writes (atomically) and hashes each frame while this
    thread keeps the decoder fed (libswscale, OpenCV and hashlib release the GIL); at most
    ``_IN_FLIGHT`` frames wait, so memory stays flat.  Measured: pass 2 about 20% faster
    than doing it inline.  A stored frame whose file is missing is written again under its
    stored name.  Every target is appended to ``written`` before its write starts (for
    clean-up on failure).
    """
    from concurrent.futures import ThreadPoolExecutor

    frames_dir = settings.video_frames_dir(video_id)
    rows: dict[int, dict[str, Any]] = {}
    pending: deque = deque()

    def finish() -> None:
        n, target, width, height, future = pending.popleft()
        sha = future.result()
        if n not in existing:
            rows[n] = {"id": ids[n], "video_id": video_id, "group_id": None, "frame_number": n,
                       "timestamp": float(index.timestamps[n]), "path": settings.relative(target),
                       "original_name": None, "original_path": None, "width": width,
                       "height": height, "sha256": sha}

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="endolite-write") as pool:
        try:
            for n, frame in media.decode_frames(path, index, numbers, counter=counter, progress=progress):
                if n in existing:
                    target = settings.absolute(existing[n].path)
                    fmt = FORMATS.get(target.suffix.lstrip(".").lower(), ext)
                else:
                    target, fmt = frames_dir / f"frame_{ids[n]}.{ext}", ext
                written.append(target)
                future = pool.submit(_write_one, frame, target, fmt, quality)
                pending.append((n, target, frame.width, frame.height, future))
                while len(pending) > _IN_FLIGHT:
                    finish()
            while pending:
                finish()
        finally:
            for item in pending:                # on failure: do not start queued writes
                item[-1].cancel()
    return rows


_IN_FLIGHT = 4


def _write_one(frame, target: Path, fmt: str, quality: int) -> str:
    """Encode one ``av.VideoFrame``, write it atomically, return the file's sha256."""
    data = media.encode_bgr(media.frame_to_bgr(frame), fmt=fmt, quality=quality)
    media.write_bytes_atomic(target, data)
    return media.sha256_bytes(data)


def _save(con, *, video_id: int, method: str, params: dict[str, Any], rows: dict[int, dict[str, Any]],
          promote: list[int], frames_decoded: int, user: str | None) -> int:
    """One transaction: extraction row, frame rows (bulk), promotions (the service layer audits)."""
    con.execute("BEGIN TRANSACTION")
    try:
        extraction_id = store.add_extraction(con, video_id=video_id, method=method, params=params,
                                             frames_decoded=frames_decoded, created_by=user)
        store.insert_frames(con, [{**rows[n], "extraction_id": extraction_id} for n in sorted(rows)])
        if promote:
            store.set_context(con, promote, is_context=False, parent_id=None)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return extraction_id


def _candidates(path: Path, index: media.StreamIndex, lo: int, hi: int, needs: frozenset[str], count: int,
                counter: media.DecodeCounter, report: ProgressFn) -> sampling.Candidates:
    unknown = needs - {"thumbnails", "keyframes"}
    if unknown:
        raise InvalidInput(f"frame extraction cannot provide {', '.join(sorted(unknown))}")
    numbers = np.arange(lo, hi, dtype=np.int64)
    thumbnails = None
    if "thumbnails" in needs:
        cap = max(KMEANS_MAX_CANDIDATES, 20 * count)
        numbers, thumbnails = media.scan_thumbnails(
            path, index, start=lo, stop=hi, size=THUMBNAIL_SIZE, max_candidates=cap, counter=counter,
            progress=lambda f: report(0.02 + 0.33 * f, "scanning thumbnails"))
        if len(numbers) < min(count, hi - lo):
            # Too few reference frames in a short range: scan every frame, so that k-means
            # still returns exactly ``count`` when the range holds that many frames.
            numbers, thumbnails = media.scan_thumbnails(
                path, index, start=lo, stop=hi, size=THUMBNAIL_SIZE, max_candidates=cap,
                fast=False, counter=counter,
                progress=lambda f: report(0.02 + 0.33 * f, "scanning thumbnails"))
    keyframe = np.isin(numbers, index.keyframes) if "keyframes" in needs else None
    return sampling.Candidates(frame_numbers=numbers, thumbnails=thumbnails, keyframe=keyframe,
                               fps=index.fps or None)


def _enum(name: str) -> SampleMethod | str:
    """The SampleMethod of ``name``; the plain name for a selector the enum does not list."""
    return SampleMethod(name) if name in SampleMethod._value2member_map_ else name


def _progress(progress: ProgressFn | None) -> ProgressFn:
    if progress is None:
        return lambda fraction, message: None
    return lambda fraction, message: progress(min(max(float(fraction), 0.0), 1.0), message)


__all__ = ["extract_frames", "frame_range", "parse_position", "context_targets",
           "KMEANS_MAX_CANDIDATES"]
