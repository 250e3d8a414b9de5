"""Labels (tags): create, rename, recolour — leads and admins."""

from __future__ import annotations

from endolite.records import Label, LabelKind
from endolite.services.access import Action, Ctx
from endolite.storage import labels
from endolite.storage.labels import ANNOTATION_TYPES


def add(ctx: Ctx, name: str, *, kind: LabelKind | str = LabelKind.OTHER, color: str | None = None,
        allowed: tuple[str, ...] = ANNOTATION_TYPES) -> Label:
    """A new label; without ``color`` it takes the next palette colour (distinct per label)."""
    ctx.check(Action.LABEL_ADD)
    label = labels.add(ctx.con, name, kind=LabelKind(kind), color=color, allowed=tuple(allowed),
                       created_by=ctx.actor.name)
    ctx.record(Action.LABEL_ADD, entity="label", entity_id=label.id, name=label.name,
               kind=str(label.kind), color=label.color, allowed=list(label.allowed))
    return label


def rename(ctx: Ctx, name: str, new_name: str) -> Label:
    ctx.check(Action.LABEL_RENAME)
    label = labels.rename(ctx.con, name, new_name)
    ctx.record(Action.LABEL_RENAME, entity="label", entity_id=label.id, before=name, after=label.name)
    return label


def recolor(ctx: Ctx, name: str, color: str) -> Label:
    ctx.check(Action.LABEL_RECOLOR)
    before = labels.get_by_name(ctx.con, name)
    label = labels.recolor(ctx.con, name, color)
    ctx.record(Action.LABEL_RECOLOR, entity="label", entity_id=label.id, before=before.color,
               after=label.color)
    return label


def next_color(con) -> str:
    """The colour a new label gets by default (the palette's next one)."""
    return labels.next_color(con)
