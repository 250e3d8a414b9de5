"""Exports: the gate, the format, the zip, the record — for leads and admins.

``export`` is the only way the pages and the CLI write an export: it checks the role
(``Action.EXPORT``), asks the gate (``endolite.export.gate.approve``: validated, unchanged
anonymized media only; there is no switch for raw media), builds the format's contents, streams
the zip to ``data/exports/`` (encrypted when asked) and records it in ``exports`` and the audit
log.  A refusal by the gate or a pre-handover check is audited too (``export.refused``) and
raises ``ExportRefused`` with the reason.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from endolite.errors import ExportRefused
from endolite.export import gate
from endolite.export.bundle import Written, write_zip
from endolite.export.formats import ExportOptions, contents
from endolite.services.access import Action, Ctx
from endolite.storage import audit
from endolite.storage.rows import dumps, fetch_dicts


@dataclass(frozen=True)
class ExportRecord:
    """A written export (row of ``exports``); ``path`` relative to the data dir."""

    id: int
    format: str
    path: str
    size_bytes: int
    sha256: str
    encrypted_to: str | None
    video_ids: tuple[int, ...]
    group_ids: tuple[int, ...]
    created_at: datetime
    created_by: str | None


def _name(fmt: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{fmt}-{stamp}-{uuid.uuid4().hex[:6]}")


def export(ctx: Ctx, fmt: str, *, video_ids: Sequence[int] = (), group_ids: Sequence[int] = (),
           options: ExportOptions | None = None, encrypt_to: str | None = None,
           progress: Callable[[float, str], None] | None = None) -> ExportRecord:
    """Write one export zip of ``fmt`` for these media; the record of the written file."""
    ctx.check(Action.EXPORT)
    options = options or ExportOptions()
    try:
        plan = gate.approve(ctx.con, ctx.settings, video_ids=video_ids, group_ids=group_ids)
        body = contents(ctx.con, ctx.settings, plan, fmt, options, exported_by=ctx.actor.name)
        written: Written = write_zip(ctx.settings, body, name=_name(fmt), encrypt_to=encrypt_to,
                                     progress=progress)
    except ExportRefused as exc:
        audit.record(ctx.con, username=ctx.actor.name, action="export.refused", entity="export",
                     details={"format": fmt, "video_ids": list(video_ids),
                              "group_ids": list(group_ids), "reason": str(exc)})
        raise
    rel = ctx.settings.relative(written.path)
    row = ctx.con.execute(
        "INSERT INTO exports (format, path, size_bytes, sha256, encrypted_to, video_ids, group_ids, "
        "options, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [fmt, rel, written.size_bytes, written.sha256, written.encrypted_to, list(plan.video_ids),
         list(plan.group_ids), dumps(options.as_dict()), ctx.actor.name]).fetchone()
    ctx.record(Action.EXPORT, entity="export", entity_id=int(row[0]), format=fmt, path=rel,
               video_ids=list(plan.video_ids), group_ids=list(plan.group_ids),
               size_bytes=written.size_bytes, sha256=written.sha256,
               encrypted=written.encrypted_to is not None, members=written.members)
    return get(ctx, int(row[0]))


def _record(r: dict) -> ExportRecord:
    return ExportRecord(id=r["id"], format=r["format"], path=r["path"], size_bytes=r["size_bytes"],
                        sha256=r["sha256"], encrypted_to=r["encrypted_to"],
                        video_ids=tuple(r["video_ids"]), group_ids=tuple(r["group_ids"]),
                        created_at=r["created_at"], created_by=r["created_by"])


def get(ctx: Ctx, export_id: int) -> ExportRecord:
    rows = fetch_dicts(ctx.con, "SELECT * FROM exports WHERE id = ?", [export_id])
    if not rows:
        from endolite.errors import NotFound

        raise NotFound(f"export {export_id}: no such export")
    return _record(rows[0])


def recent(ctx: Ctx, limit: int = 20) -> list[ExportRecord]:
    """The newest exports (leads and admins: the Export page lists them)."""
    ctx.check(Action.EXPORT)
    return [_record(r) for r in fetch_dicts(
        ctx.con, "SELECT * FROM exports ORDER BY id DESC LIMIT ?", [int(limit)])]


def file_of(ctx: Ctx, record: ExportRecord) -> Path:
    """The export's file on the server (absolute)."""
    return ctx.settings.absolute(record.path)


DOWNLOAD_ROUTE = "download/export"


def download_link(ctx: Ctx, record: ExportRecord) -> str:
    """A relative URL (``download/export/<token>``) that streams ``record``'s file from disk
    through the dashboard's download route (``web.py``), valid ``tickets.TTL_S`` seconds.
    Audited as ``export.download`` (the link is the download: only its holder can fetch it)."""
    from endolite.errors import NotFound
    from endolite.export import tickets

    ctx.check(Action.EXPORT)
    path = file_of(ctx, record)
    if not path.is_file() or ctx.settings.exports_dir.resolve() not in path.resolve().parents:
        raise NotFound(f"export {record.id}: its file is no longer in {ctx.settings.exports_dir}")
    token = tickets.issue(path, user=ctx.actor.name)
    audit.record(ctx.con, username=ctx.actor.name, action="export.download", entity="export",
                 entity_id=record.id, details={"path": record.path, "sha256": record.sha256})
    return f"{DOWNLOAD_ROUTE}/{token}"
