"""Who may do what: the permission matrix, the acting user, and the one place that checks a
role and writes the audit entry.

Every state-changing action of the pages and the CLI goes through a function in
``endolite.services`` that calls ``ctx.check(Action.X, owners=...)`` before any work and
``ctx.record(Action.X, ...)`` after it.  A refused action raises ``PermissionDenied`` naming the
user, the role and the action, changes nothing, and is itself written to the audit log.

Roles are ordered annotator < lead < admin; a higher role may do everything a lower one may.
Rules marked *own*: an annotator may act only on records that are theirs (masks they made,
their own benchmark tasks, segments they drew, annotations attributed to themselves); a lead
or admin may act on anyone's.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import duckdb

from endolite.config import Settings
from endolite.errors import PermissionDenied
from endolite.records import Role
from endolite.storage import audit


class Action(StrEnum):
    # annotation (annotator: own records only)
    MASK_CREATE = "mask.create"
    MASK_EDIT = "mask.edit"
    MASK_DELETE = "mask.delete"
    MASK_UNDO = "mask.undo"
    MASK_PROPAGATE = "mask.propagate"
    FRAME_LABEL_SET = "frame_label.set"
    SEGMENT_ADD = "segment.add"
    SEGMENT_EXPORT_FLAG = "segment.export_flag"
    SEGMENT_DELETE = "segment.delete"
    BENCHMARK_TASK = "benchmark.task"
    EMBED_PRECOMPUTE = "embedding.precompute"
    MEDIA_UPLOAD = "media.upload"
    PASSWORD_CHANGE = "user.password_change"
    FRAME_TAG = "frame.tag"
    SUGGESTION_DECIDE = "model.suggestion"
    PREDICTED_SEGMENT_DECIDE = "model.predicted_segment"
    # lead
    MASK_IMPORT = "mask.import"
    SEGMENT_MATERIALIZE = "segment.materialize"
    LABEL_ADD = "label.add"
    LABEL_RENAME = "label.rename"
    LABEL_RECOLOR = "label.recolor"
    MEDIA_IMPORT_SERVER = "media.import_server"
    EXTRACT = "media.extract"
    BENCHMARK_CREATE = "benchmark.create"
    BENCHMARK_ASSIGN = "benchmark.assign"
    BENCHMARK_REPORT = "benchmark.report"
    AUDIT_VIEW = "audit.view"
    ANONYMIZE = "media.anonymize"
    ANONYMIZATION_DECIDE = "media.validate"
    EXPORT = "export.write"
    IMPORT_COCO = "import.coco"
    TRAIN = "model.train"
    TRAIN_CANCEL = "model.cancel"
    PREDICT = "model.predict"
    MISLABEL_REVIEW = "model.mislabel_review"
    # admin
    USER_ADD = "user.add"
    USER_ROLE = "user.role"
    USER_ACTIVE = "user.active"
    USER_RESET_PASSWORD = "user.reset_password"
    SETTINGS = "settings.change"
    BACKUP = "maintenance.backup"
    CHECK = "maintenance.check"


@dataclass(frozen=True)
class Rule:
    """The least role an action needs; ``own``: below lead, only on one's own records."""

    role: Role
    own: bool = False
    what: str = ""


MATRIX: dict[Action, Rule] = {
    Action.MASK_CREATE: Rule(Role.ANNOTATOR, own=True, what="save a mask, box or polygon"),
    Action.MASK_EDIT: Rule(Role.ANNOTATOR, own=True, what="erase from / replace a mask"),
    Action.MASK_DELETE: Rule(Role.ANNOTATOR, own=True, what="delete masks"),
    Action.MASK_UNDO: Rule(Role.ANNOTATOR, own=True, what="undo one's own last mask action on a frame"),
    Action.MASK_PROPAGATE: Rule(Role.ANNOTATOR, own=True, what="carry a mask through the sequence"),
    Action.FRAME_LABEL_SET: Rule(Role.ANNOTATOR, own=True, what="set frame labels"),
    Action.SEGMENT_ADD: Rule(Role.ANNOTATOR, own=True, what="add a time segment"),
    Action.SEGMENT_EXPORT_FLAG: Rule(Role.ANNOTATOR, own=True, what="flip a segment's export flag"),
    Action.SEGMENT_DELETE: Rule(Role.ANNOTATOR, own=True, what="delete a time segment"),
    Action.BENCHMARK_TASK: Rule(Role.ANNOTATOR, own=True, what="start / complete benchmark tasks"),
    Action.EMBED_PRECOMPUTE: Rule(Role.ANNOTATOR, what="precompute SAM embeddings"),
    Action.MEDIA_UPLOAD: Rule(Role.ANNOTATOR, what="upload files from the browser"),
    Action.PASSWORD_CHANGE: Rule(Role.ANNOTATOR, what="change one's own password"),
    Action.FRAME_TAG: Rule(Role.ANNOTATOR, own=True, what="set / remove one's tags on frames"),
    Action.SUGGESTION_DECIDE: Rule(Role.ANNOTATOR, what="accept / reject a model's frame-label suggestion (accepting sets one's own frame label)"),
    Action.PREDICTED_SEGMENT_DECIDE: Rule(Role.ANNOTATOR, what="accept / reject a predicted segment (accepting adds one's own segment)"),
    Action.MASK_IMPORT: Rule(Role.LEAD, what="import mask files from the server"),
    Action.SEGMENT_MATERIALIZE: Rule(Role.LEAD, what="materialise segments into frame labels"),
    Action.LABEL_ADD: Rule(Role.LEAD, what="create labels"),
    Action.LABEL_RENAME: Rule(Role.LEAD, what="rename labels"),
    Action.LABEL_RECOLOR: Rule(Role.LEAD, what="recolour labels"),
    Action.MEDIA_IMPORT_SERVER: Rule(Role.LEAD, what="import paths on the server (import folders only)"),
    Action.EXTRACT: Rule(Role.LEAD, what="extract frames"),
    Action.BENCHMARK_CREATE: Rule(Role.LEAD, what="create benchmarks"),
    Action.BENCHMARK_ASSIGN: Rule(Role.LEAD, what="add frames / assign annotators to a benchmark"),
    Action.BENCHMARK_REPORT: Rule(Role.LEAD, what="run and save benchmark reports"),
    Action.AUDIT_VIEW: Rule(Role.LEAD, what="read and download the audit log"),
    Action.ANONYMIZE: Rule(Role.LEAD, what="anonymize videos and image groups"),
    Action.ANONYMIZATION_DECIDE: Rule(Role.LEAD, what="validate or reject an anonymization"),
    Action.EXPORT: Rule(Role.LEAD, what="export validated media and annotations"),
    Action.IMPORT_COCO: Rule(Role.LEAD, what="import COCO annotations from another tool"),
    Action.TRAIN: Rule(Role.LEAD, what="start a training run"),
    Action.TRAIN_CANCEL: Rule(Role.LEAD, what="cancel a training run"),
    Action.PREDICT: Rule(Role.LEAD, what="run a trained model over videos / image groups"),
    Action.MISLABEL_REVIEW: Rule(Role.LEAD, what="review likely mislabels a model found"),
    Action.USER_ADD: Rule(Role.ADMIN, what="create users"),
    Action.USER_ROLE: Rule(Role.ADMIN, what="change a user's role"),
    Action.USER_ACTIVE: Rule(Role.ADMIN, what="deactivate / reactivate users"),
    Action.USER_RESET_PASSWORD: Rule(Role.ADMIN, what="reset another user's password"),
    Action.SETTINGS: Rule(Role.ADMIN, what="change settings (session timeout, import folders)"),
    Action.BACKUP: Rule(Role.ADMIN, what="back up the data directory"),
    Action.CHECK: Rule(Role.ADMIN, what="check and repair the data directory"),
}

_RANK = {Role.ANNOTATOR: 0, Role.LEAD: 1, Role.ADMIN: 2}


def allowed(role: Role | str, action: Action, *, own: bool = True) -> bool:
    """Pure: may ``role`` do ``action`` (``own``: on records that are the actor's own)?"""
    rule = MATRIX[Action(action)]
    rank = _RANK[Role(role)]
    if rank < _RANK[rule.role]:
        return False
    return own or not rule.own or rank >= _RANK[Role.LEAD]


def matrix_markdown() -> str:
    """The permission matrix as a Markdown table (docs/PERMISSIONS.md embeds it)."""
    head = "| action | what | annotator | lead | admin |\n|---|---|---|---|---|"
    rows = []
    for action, rule in MATRIX.items():
        cells = []
        for role in (Role.ANNOTATOR, Role.LEAD, Role.ADMIN):
            if not allowed(role, action):
                cells.append("—")
            elif rule.own and not allowed(role, action, own=False):
                cells.append("own")
            else:
                cells.append("yes")
        rows.append(f"| `{action}` | {rule.what} | " + " | ".join(cells) + " |")
    return "\n".join([head, *rows])


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user of the database, or the server's shell user (``shell``; CLI without
    ``--user``: administrator rights, since shell access already reads the database)."""

    name: str
    role: Role
    shell: bool = False

    @classmethod
    def of(cls, user) -> "Actor":
        return cls(name=user.name, role=Role(user.role))

    @classmethod
    def server_shell(cls) -> "Actor":
        try:
            login = getpass.getuser()
        except Exception:  # noqa: BLE001 - no passwd entry for this uid
            login = "unknown"
        return cls(name=f"shell:{login}", role=Role.ADMIN, shell=True)


@dataclass(frozen=True)
class Ctx:
    """What every service call takes: the database cursor, the data directory and the actor."""

    con: duckdb.DuckDBPyConnection
    settings: Settings
    actor: Actor
    client: str = field(default="", compare=False)

    def may(self, action: Action, *, owners: Iterable[str | None] = ()) -> bool:
        own = all(o is None or o == self.actor.name for o in owners)
        return allowed(self.actor.role, action, own=own)

    def may_others(self, action: Action) -> bool:
        """May the actor do ``action`` on other people's records (a lead's reach)?"""
        return allowed(self.actor.role, action, own=False)

    def check(self, action: Action, *, owners: Iterable[str | None] = ()) -> None:
        """Raise PermissionDenied (and audit the refusal) unless the actor may do ``action`` on
        records owned by ``owners`` (user names; None = nobody's)."""
        owners = list(owners)
        if self.may(action, owners=owners):
            return
        others = sorted({o for o in owners if o is not None and o != self.actor.name})
        detail = f" on records of {', '.join(others)}" if others else ""
        audit.record(self.con, username=self.actor.name, action="denied", entity=str(action),
                     details={"role": str(self.actor.role), "owners": others})
        rule = MATRIX[action]
        need = f"needs {rule.role}" if _RANK[self.actor.role] < _RANK[rule.role] else \
            "only their own records"
        raise PermissionDenied(f"{self.actor.name} ({self.actor.role}) may not {action}{detail}: "
                               f"{need}")

    def record(self, action: Action, *, entity: str, entity_id: int | None = None,
               **details: Any) -> None:
        """The audit entry of a done action: who, what, which ids, when (the row's time)."""
        if self.actor.shell:
            details = {**details, "via": "server shell"}
        audit.record(self.con, username=self.actor.name, action=str(action), entity=entity,
                     entity_id=entity_id, details=details or None)
