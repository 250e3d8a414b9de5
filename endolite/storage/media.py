"""Repository for videos, image groups, frames and extractions.

Frames are inserted in bulk through a DataFrame with ids reserved up front, so their files
can be named ``frame_<id>`` and written before the rows are committed.  A sequence's frames
are read whole (``frames_of``) or a page at a time (``count_frames`` + ``frames_page``, or the
lazy ``FramePages``), which is what the pages use: a sequence may hold 100,000 frames.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import duckdb

from endolite.errors import NotFound
from endolite.records import Frame, ImageGroup, Video
from endolite.storage.db import insert_rows, reserve_ids
from endolite.storage.rows import dumps, fetch_dicts, loads

_VIDEO_FIELDS = ("sha256", "title", "original_name", "path", "container", "codec", "fps",
                 "frame_count", "duration", "width", "height", "size_bytes")
FRAME_FIELDS = ("id", "video_id", "group_id", "frame_number", "timestamp", "path", "original_name",
                "original_path", "width", "height", "sha256", "is_context", "parent_id",
                "extraction_id", "created_by")


# --- videos -----------------------------------------------------------------------------------

def _video(r: dict) -> Video:
    return Video(id=r["id"], **{k: r[k] for k in _VIDEO_FIELDS},
                 client_metadata=loads(r["client_metadata"]),
                 created_at=r["created_at"], created_by=r["created_by"])


def add_video(con: duckdb.DuckDBPyConnection, *, client_metadata: dict[str, Any] | None = None,
              source_url: str | None = None, created_by: str | None = None, **fields: Any) -> Video:
    """Insert a video row; ``fields`` are the Video fields from sha256 to size_bytes."""
    values = [fields[k] for k in _VIDEO_FIELDS]
    cols = ", ".join(_VIDEO_FIELDS)
    marks = ", ".join("?" for _ in _VIDEO_FIELDS)
    row = con.execute(
        f"INSERT INTO videos ({cols}, client_metadata, source_url, created_by) "
        f"VALUES ({marks}, ?, ?, ?) RETURNING id",
        [*values, dumps(client_metadata), source_url, created_by],
    ).fetchone()
    return get_video(con, row[0])


def get_video(con: duckdb.DuckDBPyConnection, video_id: int) -> Video:
    rows = fetch_dicts(con, "SELECT * FROM videos WHERE id = ?", [video_id])
    if not rows:
        raise NotFound(f"no video with id {video_id}")
    return _video(rows[0])


def find_video_by_sha(con: duckdb.DuckDBPyConnection, sha256: str) -> Video | None:
    rows = fetch_dicts(con, "SELECT * FROM videos WHERE sha256 = ?", [sha256])
    return _video(rows[0]) if rows else None


def find_by_source_url(con: duckdb.DuckDBPyConnection, url: str) -> tuple[str, int] | None:
    """("video"|"image_group", id) of an item registered from ``url``, if any."""
    for table, kind in (("videos", "video"), ("image_groups", "image_group")):
        row = con.execute(f"SELECT id FROM {table} WHERE source_url = ? LIMIT 1", [url]).fetchone()
        if row:
            return kind, row[0]
    return None


def find_image_by_source_url(con: duckdb.DuckDBPyConnection, url: str) -> tuple[int, int | None] | None:
    """(group id, frame id) of a still image registered from ``url`` by a manifest's ``images``
    list, if any.  Ingest records those in the group's client_metadata as
    ``{"images": [{"objectUrl": url, "frame_number": n, ...}, ...]}``."""
    rows = con.execute("SELECT id, client_metadata FROM image_groups "
                       "WHERE contains(client_metadata, ?) ORDER BY id", [dumps(url)]).fetchall()
    for group_id, text in rows:
        images = loads(text).get("images")
        for entry in images if isinstance(images, list) else []:
            if isinstance(entry, dict) and entry.get("objectUrl") == url:
                frame = con.execute("SELECT id FROM frames WHERE group_id = ? AND frame_number = ? "
                                    "ORDER BY id LIMIT 1", [group_id, entry.get("frame_number")]
                                    ).fetchone()
                return group_id, (frame[0] if frame else None)
    return None


def list_videos(con: duckdb.DuckDBPyConnection) -> list[Video]:
    return [_video(r) for r in fetch_dicts(con, "SELECT * FROM videos ORDER BY id")]


# --- image groups -----------------------------------------------------------------------------

def _group(r: dict) -> ImageGroup:
    return ImageGroup(id=r["id"], title=r["title"], source=r["source"], sha256=r["sha256"],
                      frame_count=r.get("frame_count") or 0,
                      client_metadata=loads(r["client_metadata"]),
                      created_at=r["created_at"], created_by=r["created_by"])


_GROUP_SELECT = ("SELECT g.*, (SELECT count(*) FROM frames f WHERE f.group_id = g.id) AS frame_count "
                 "FROM image_groups g")


def reserve_group_id(con: duckdb.DuckDBPyConnection) -> int:
    return reserve_ids(con, "seq_image_groups", 1)[0]


def add_group(con: duckdb.DuckDBPyConnection, *, group_id: int, title: str, source: str, sha256: str,
              client_metadata: dict[str, Any] | None = None, source_url: str | None = None,
              created_by: str | None = None) -> None:
    con.execute(
        "INSERT INTO image_groups (id, title, source, sha256, client_metadata, source_url, created_by) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [group_id, title, source, sha256, dumps(client_metadata), source_url, created_by],
    )


def get_group(con: duckdb.DuckDBPyConnection, group_id: int) -> ImageGroup:
    rows = fetch_dicts(con, _GROUP_SELECT + " WHERE g.id = ?", [group_id])
    if not rows:
        raise NotFound(f"no image group with id {group_id}")
    return _group(rows[0])


def find_group_by_sha(con: duckdb.DuckDBPyConnection, sha256: str) -> ImageGroup | None:
    rows = fetch_dicts(con, _GROUP_SELECT + " WHERE g.sha256 = ? ORDER BY g.id LIMIT 1", [sha256])
    return _group(rows[0]) if rows else None


def list_groups(con: duckdb.DuckDBPyConnection) -> list[ImageGroup]:
    return [_group(r) for r in fetch_dicts(con, _GROUP_SELECT + " ORDER BY g.id")]


# --- frames -----------------------------------------------------------------------------------

def _frame(r: dict) -> Frame:
    return Frame(id=r["id"], video_id=r["video_id"], group_id=r["group_id"],
                 frame_number=r["frame_number"], timestamp=r["timestamp"], path=r["path"],
                 original_name=r["original_name"], original_path=r["original_path"],
                 width=r["width"], height=r["height"], sha256=r["sha256"],
                 is_context=bool(r["is_context"]), parent_id=r["parent_id"],
                 created_at=r["created_at"], created_by=r["created_by"])


def reserve_frame_ids(con: duckdb.DuckDBPyConnection, count: int) -> list[int]:
    return reserve_ids(con, "seq_frames", count)


def insert_frames(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    """Bulk insert frame rows (dicts with every name in FRAME_FIELDS; ids from reserve_frame_ids)."""
    insert_rows(con, "frames", [{k: row.get(k) for k in FRAME_FIELDS} for row in rows])


def get_frame(con: duckdb.DuckDBPyConnection, frame_id: int) -> Frame:
    rows = fetch_dicts(con, "SELECT * FROM frames WHERE id = ?", [frame_id])
    if not rows:
        raise NotFound(f"no frame with id {frame_id}")
    return _frame(rows[0])


def _sequence_where(video_id: int | None, group_id: int | None,
                    include_context: bool) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameter) selecting one video's or image group's frames."""
    if (video_id is None) == (group_id is None):
        raise ValueError("give exactly one of video_id / group_id")
    column, value = ("video_id", video_id) if video_id is not None else ("group_id", group_id)
    where = f"WHERE {column} = ?" + ("" if include_context else " AND NOT is_context")
    return where, [value]


_SEQUENCE_ORDER = " ORDER BY frame_number, id"


def frames_of(con: duckdb.DuckDBPyConnection, *, video_id: int | None = None,
              group_id: int | None = None, include_context: bool = True) -> list[Frame]:
    """Frames of one video or one image group, in frame-number order (every one of them: pages
    showing a sequence read it a page at a time with ``frames_page`` / ``FramePages``)."""
    where, params = _sequence_where(video_id, group_id, include_context)
    return [_frame(r) for r in fetch_dicts(con, f"SELECT * FROM frames {where}{_SEQUENCE_ORDER}", params)]


def count_frames(con: duckdb.DuckDBPyConnection, *, video_id: int | None = None,
                 group_id: int | None = None, include_context: bool = True) -> int:
    """How many frames ``frames_of`` would return, without reading them."""
    where, params = _sequence_where(video_id, group_id, include_context)
    return int(con.execute(f"SELECT count(*) FROM frames {where}", params).fetchone()[0])


def frames_page(con: duckdb.DuckDBPyConnection, *, video_id: int | None = None,
                group_id: int | None = None, include_context: bool = True, limit: int,
                offset: int = 0) -> list[Frame]:
    """Frames ``offset`` .. ``offset + limit - 1`` of ``frames_of`` (same filter, same order:
    frame number, then id); fewer (or none) past the end.  ``limit`` >= 0, ``offset`` >= 0."""
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must be >= 0 (got {limit}, {offset})")
    where, params = _sequence_where(video_id, group_id, include_context)
    if limit == 0:
        return []
    rows = fetch_dicts(con, f"SELECT * FROM frames {where}{_SEQUENCE_ORDER} LIMIT ? OFFSET ?",
                       [*params, int(limit), int(offset)])
    return [_frame(r) for r in rows]


class FramePages(Sequence[Frame]):
    """One video's or image group's frames (``frames_of`` order) read only as far as they are
    used: ``len()`` is one count query, ``pages[i]`` reads the page of ``page_size`` frames
    holding ``i`` (kept for the next look-up), ``pages[a:b]`` one LIMIT / OFFSET query; iterating
    reads them all at once, as ``frames_of`` does.  Works on the cursor it was made with, for the
    one rerun / request that made it (it does not notice frames added meanwhile)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, *, video_id: int | None = None,
                 group_id: int | None = None, include_context: bool = True,
                 page_size: int = 100) -> None:
        _sequence_where(video_id, group_id, include_context)          # exactly one of the two
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1 (got {page_size})")
        self.con, self.page_size = con, int(page_size)
        self.query = {"video_id": video_id, "group_id": group_id, "include_context": include_context}
        self._len: int | None = None
        self._pages: dict[int, list[Frame]] = {}

    def __len__(self) -> int:
        if self._len is None:
            self._len = count_frames(self.con, **self.query)
        return self._len

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return frames_page(self.con, **self.query, limit=max(stop - start, 0), offset=start)
        i = int(index)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"frame index {index} out of range (0..{len(self) - 1})")
        page = i // self.page_size
        if page not in self._pages:
            self._pages[page] = frames_page(self.con, **self.query, limit=self.page_size,
                                            offset=page * self.page_size)
        return self._pages[page][i - page * self.page_size]

    def __iter__(self) -> Iterator[Frame]:
        return iter(frames_of(self.con, **self.query))


def frames_by_ids(con: duckdb.DuckDBPyConnection, frame_ids: list[int]) -> list[Frame]:
    if not frame_ids:
        return []
    rows = fetch_dicts(con, "SELECT * FROM frames WHERE list_contains(?, id)", [list(frame_ids)])
    by_id = {r["id"]: _frame(r) for r in rows}
    return [by_id[i] for i in frame_ids if i in by_id]


def set_context(con: duckdb.DuckDBPyConnection, frame_ids: list[int], *, is_context: bool,
                parent_id: int | None = None) -> None:
    if frame_ids:
        con.execute("UPDATE frames SET is_context = ?, parent_id = ? WHERE list_contains(?, id)",
                    [is_context, parent_id, list(frame_ids)])


# --- extractions ------------------------------------------------------------------------------

def add_extraction(con: duckdb.DuckDBPyConnection, *, video_id: int, method: str,
                   params: dict[str, Any], frames_decoded: int, created_by: str | None) -> int:
    row = con.execute(
        "INSERT INTO extractions (video_id, method, params, frames_decoded, created_by) "
        "VALUES (?, ?, ?, ?, ?) RETURNING id",
        [video_id, method, dumps(params), frames_decoded, created_by],
    ).fetchone()
    return row[0]


def list_extractions(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Extraction runs with their video title and picked-frame count, newest first."""
    return fetch_dicts(con, """
        SELECT e.id, e.video_id, v.title AS video_title, e.method, e.created_at,
               (SELECT count(*) FROM frames f WHERE f.extraction_id = e.id AND NOT f.is_context) AS frames
        FROM extractions e JOIN videos v ON v.id = e.video_id ORDER BY e.id DESC""")


def extraction_frame_ids(con: duckdb.DuckDBPyConnection, extraction_id: int) -> list[int]:
    """The (non-context) frames an extraction picked, in frame order; NotFound if no such run."""
    if not con.execute("SELECT 1 FROM extractions WHERE id = ?", [extraction_id]).fetchone():
        raise NotFound(f"no extraction with id {extraction_id}")
    return [r[0] for r in con.execute(
        "SELECT id FROM frames WHERE extraction_id = ? AND NOT is_context ORDER BY frame_number, id",
        [extraction_id]).fetchall()]


def reserve_extraction_id(con: duckdb.DuckDBPyConnection) -> int:
    return reserve_ids(con, "seq_extractions", 1)[0]
