"""Labels (tags): name, kind, colour and the annotation types they allow.

Annotations refer to labels by id, so renaming or recolouring keeps them attached.
"""

from __future__ import annotations

import re

import duckdb

from endolite.errors import InvalidInput, NotFound
from endolite.records import Label, LabelKind
from endolite.storage.rows import fetch_dicts

ANNOTATION_TYPES = ("mask", "box", "frame_label", "segment")
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_PALETTE = ("#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0",
            "#f032e6", "#bcf60c", "#fabebe", "#008080", "#e6beff")


def _record(r: dict) -> Label:
    return Label(id=r["id"], name=r["name"], kind=LabelKind(r["kind"]), color=r["color"],
                 allowed=tuple(r["allowed"]), created_at=r["created_at"], created_by=r["created_by"])


def _check_color(color: str) -> str:
    if not _COLOR.fullmatch(color):
        raise InvalidInput(f"colour {color!r}: use #RRGGBB")
    return color.lower()


def add(con: duckdb.DuckDBPyConnection, name: str, *, kind: LabelKind = LabelKind.OTHER,
        color: str | None = None, allowed: tuple[str, ...] = ANNOTATION_TYPES,
        created_by: str | None = None) -> Label:
    name = name.strip()
    if not name:
        raise InvalidInput("label name: empty")
    if get_by_name(con, name, missing_ok=True):
        raise InvalidInput(f"label {name!r} already exists")
    bad = [a for a in allowed if a not in ANNOTATION_TYPES]
    if bad or not allowed:
        raise InvalidInput(f"label {name!r}: allowed types must be among {', '.join(ANNOTATION_TYPES)}")
    if color is None:
        color = next_color(con)
    row = con.execute(
        "INSERT INTO labels (name, kind, color, allowed, created_by) VALUES (?, ?, ?, ?, ?) RETURNING id",
        [name, str(LabelKind(kind)), _check_color(color), list(allowed), created_by],
    ).fetchone()
    return get(con, row[0])


def next_color(con: duckdb.DuckDBPyConnection) -> str:
    """The first palette colour no label uses yet (cycling when all are taken)."""
    used = {r[0].lower() for r in con.execute("SELECT color FROM labels").fetchall()}
    free = [c for c in _PALETTE if c not in used]
    if free:
        return free[0]
    n = con.execute("SELECT count(*) FROM labels").fetchone()[0]
    return _PALETTE[n % len(_PALETTE)]


def get(con: duckdb.DuckDBPyConnection, label_id: int) -> Label:
    rows = fetch_dicts(con, "SELECT * FROM labels WHERE id = ?", [label_id])
    if not rows:
        raise NotFound(f"no label with id {label_id}")
    return _record(rows[0])


def get_by_name(con: duckdb.DuckDBPyConnection, name: str, *, missing_ok: bool = False) -> Label | None:
    rows = fetch_dicts(con, "SELECT * FROM labels WHERE name = ?", [name])
    if not rows:
        if missing_ok:
            return None
        raise NotFound(f"no label named {name!r}")
    return _record(rows[0])


def list_all(con: duckdb.DuckDBPyConnection) -> list[Label]:
    return [_record(r) for r in fetch_dicts(con, "SELECT * FROM labels ORDER BY name")]


def rename(con: duckdb.DuckDBPyConnection, name: str, new_name: str) -> Label:
    label = get_by_name(con, name)
    new_name = new_name.strip()
    if not new_name:
        raise InvalidInput("label name: empty")
    if new_name != name and get_by_name(con, new_name, missing_ok=True):
        raise InvalidInput(f"label {new_name!r} already exists")
    con.execute("UPDATE labels SET name = ? WHERE id = ?", [new_name, label.id])
    return get(con, label.id)


def recolor(con: duckdb.DuckDBPyConnection, name: str, color: str) -> Label:
    label = get_by_name(con, name)
    con.execute("UPDATE labels SET color = ? WHERE id = ?", [_check_color(color), label.id])
    return get(con, label.id)
