"""Reading the audit log (leads and admins): filtered, paged, and as CSV."""

from __future__ import annotations

import csv
import io
from datetime import datetime

from endolite.records import AuditEntry
from endolite.services.access import Action, Ctx
from endolite.storage import audit


def entries(ctx: Ctx, *, username: str | None = None, action: str | None = None,
            entity: str | None = None, since: datetime | None = None, until: datetime | None = None,
            limit: int = 200, offset: int = 0) -> list[AuditEntry]:
    ctx.check(Action.AUDIT_VIEW)
    return audit.search(ctx.con, username=username, action=action, entity=entity, since=since,
                        until=until, limit=limit, offset=offset)


def as_csv(rows: list[AuditEntry]) -> bytes:
    """CSV (excel dialect, header) of audit entries: id, at, username, action, entity,
    entity_id, details (JSON)."""
    import json

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "at", "username", "action", "entity", "entity_id", "details"])
    for e in rows:
        writer.writerow([e.id, e.at.isoformat(timespec="seconds") if e.at else "", e.username or "",
                         e.action, e.entity, "" if e.entity_id is None else e.entity_id,
                         json.dumps(e.details, sort_keys=True)])
    return out.getvalue().encode("utf-8")
