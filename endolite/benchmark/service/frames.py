"""A benchmark's frames: parsing id lists, choosing frames (by hand, a sequence, an extraction,
seeded samples) and naming them.

``data_unit_name`` is the frame's title as a person knows it: the original file name of a still
image, ``<video title>#<frame number>`` for a video frame.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

import duckdb
import numpy as np

from endolite.errors import InvalidInput, NotFound
from endolite.records import Frame
from endolite.storage import media

SAMPLE_METHODS = ("random", "stratified")


# --- parsing helpers (CLI and page text fields) -----------------------------------------------

def parse_ids(text: str | Iterable[int] | None, *, what: str = "frames") -> list[int]:
    """``"3,5, 8"`` -> ``[3, 5, 8]`` (order kept, duplicates dropped)."""
    if text is None:
        return []
    if not isinstance(text, str):
        return list(dict.fromkeys(int(v) for v in text))
    out = []
    for part in text.replace(" ", ",").split(","):
        if not part.strip():
            continue
        try:
            out.append(int(part))
        except ValueError:
            raise InvalidInput(f"{what}: {part.strip()!r} is not a number (use ids like 3,5,8)") from None
    return list(dict.fromkeys(out))



# --- frame selection --------------------------------------------------------------------------

def sample_frame_ids(frame_ids: Sequence[int], count: int, *, seed: int = 0,
                     method: str = "random") -> list[int]:
    """Pick ``count`` of ``frame_ids`` (given in sequence order), reproducibly for ``seed``.

    ``random``: a uniform random sample; ``stratified``: the sequence is cut into ``count``
    equal consecutive parts and one frame is drawn from each (covers the whole procedure).
    The result keeps sequence order; ``count >= len(frame_ids)`` returns them all.
    """
    if method not in SAMPLE_METHODS:
        raise InvalidInput(f"sample method {method!r}: use one of {', '.join(SAMPLE_METHODS)}")
    if count < 1:
        raise InvalidInput(f"sample size must be at least 1, got {count}")
    ids = list(frame_ids)
    if count >= len(ids):
        return ids
    rng = random.Random(seed)
    if method == "random":
        picked = sorted(rng.sample(range(len(ids)), count))
    else:
        edges = np.linspace(0, len(ids), count + 1)
        picked = [rng.randrange(int(round(lo)), max(int(round(hi)), int(round(lo)) + 1))
                  for lo, hi in zip(edges[:-1], edges[1:])]
    return [ids[i] for i in picked]


def list_extractions(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Extraction runs with their video title and picked-frame count, newest first."""
    return media.list_extractions(con)


def select_frames(con: duckdb.DuckDBPyConnection, *, frame_ids: Sequence[int] | None = None,
                  group_id: int | None = None, video_id: int | None = None,
                  extraction_id: int | None = None, sample: int | None = None, seed: int = 0,
                  method: str = "random") -> list[int]:
    """Frame ids for a benchmark from exactly one source.

    ``frame_ids``: picked by hand (all must exist); ``group_id`` / ``video_id``: that sequence's
    labeling (non-context) frames; ``extraction_id``: the frames that extraction picked.
    ``sample``: keep a seeded sample of that many (``sample_frame_ids``).
    """
    given = [n for n, v in (("frames", frame_ids), ("group", group_id), ("video", video_id),
                            ("extraction", extraction_id)) if v is not None]
    if len(given) != 1:
        raise InvalidInput("choose the frames from exactly one of: frame ids, an image group, "
                           f"a video, an extraction (got {', '.join(given) or 'none'})")
    if frame_ids is not None:
        ids = list(dict.fromkeys(int(i) for i in frame_ids))
        if not ids:
            raise InvalidInput("choose at least one frame")
        found = {f.id for f in media.frames_by_ids(con, ids)}
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFound(f"no frame with id {', '.join(map(str, missing))}")
    elif extraction_id is not None:
        ids = media.extraction_frame_ids(con, extraction_id)
    else:
        if group_id is not None:
            media.get_group(con, group_id)
        else:
            media.get_video(con, video_id)
        ids = [f.id for f in media.frames_of(con, video_id=video_id, group_id=group_id,
                                             include_context=False)]
    if not ids:
        raise InvalidInput("the chosen source has no frames to label (extract frames first)")
    if sample is not None:
        ids = sample_frame_ids(ids, int(sample), seed=seed, method=method)
    return ids


# --- naming -----------------------------------------------------------------------------------

def data_unit_names(con: duckdb.DuckDBPyConnection, frames: Iterable[Frame]) -> dict[int, str]:
    """``{frame id: name}``: a still image's original file name, ``<video title>#<n>`` for a
    video frame (``<group title>#<n>`` for a group frame without a file name)."""
    out: dict[int, str] = {}
    videos: dict[int, str] = {}
    groups: dict[int, str] = {}
    for f in frames:
        if f.video_id is not None:
            if f.video_id not in videos:
                videos[f.video_id] = media.get_video(con, f.video_id).title
            out[f.id] = f"{videos[f.video_id]}#{f.frame_number}"
        elif f.original_name:
            out[f.id] = f.original_name
        else:
            if f.group_id not in groups:
                groups[f.group_id] = media.get_group(con, f.group_id).title
            out[f.id] = f"{groups[f.group_id]}#{f.frame_number}"
    return out
