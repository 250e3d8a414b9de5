"""Frame labels and time segments (annotators: their own), materialising segments (leads)."""

from __future__ import annotations

from collections.abc import Sequence

from endolite import frame_labels
from endolite.records import FrameLabel, Presence, Segment
from endolite.services.access import Action, Ctx
from endolite.storage import annotations as store


def set_frame_labels(ctx: Ctx, frame_id: int, assignments: Sequence[tuple[str, Presence, float | None]],
                     *, annotator: str | None = None) -> list[FrameLabel]:
    """Set ``(label name, presence, optional value)`` on a frame as ``annotator`` (default: the
    actor; annotators may set only their own)."""
    who = annotator or ctx.actor.name
    ctx.check(Action.FRAME_LABEL_SET, owners=[who])
    rows = frame_labels.set_frame_labels(ctx.con, frame_id, assignments, annotator=who)
    ctx.record(Action.FRAME_LABEL_SET, entity="frame", entity_id=frame_id, annotator=who,
               values={r.label: str(r.value) for r in rows},
               row_ids=[r.id for r in rows])
    return rows


def add_segment(ctx: Ctx, video_id: int, *, label: str, start: int, end: int,
                annotator: str | None = None, for_export: bool = True) -> Segment:
    """A segment of frames ``start <= n < end`` (``end`` exclusive) as ``annotator`` (default:
    the actor; annotators may add only their own)."""
    who = annotator or ctx.actor.name
    ctx.check(Action.SEGMENT_ADD, owners=[who])
    seg = frame_labels.add_segment(ctx.con, video_id, label=label, start=start, end=end, annotator=who,
                               for_export=for_export)
    ctx.record(Action.SEGMENT_ADD, entity="segment", entity_id=seg.id, video_id=video_id,
               label=seg.label, start=seg.start_frame, end=seg.end_frame, annotator=who)
    return seg


def set_segment_export(ctx: Ctx, segment_id: int, for_export: bool) -> Segment:
    seg = store.get_segment(ctx.con, segment_id)
    ctx.check(Action.SEGMENT_EXPORT_FLAG, owners=[seg.annotator])
    store.set_segment_export(ctx.con, segment_id, bool(for_export))
    ctx.record(Action.SEGMENT_EXPORT_FLAG, entity="segment", entity_id=segment_id,
               video_id=seg.video_id, before=seg.for_export, after=bool(for_export))
    return store.get_segment(ctx.con, segment_id)


def delete_segment(ctx: Ctx, segment_id: int) -> None:
    seg = store.get_segment(ctx.con, segment_id)
    ctx.check(Action.SEGMENT_DELETE, owners=[seg.annotator])
    store.delete_segment(ctx.con, segment_id)
    ctx.record(Action.SEGMENT_DELETE, entity="segment", entity_id=segment_id, video_id=seg.video_id,
               label=seg.label, start=seg.start_frame, end=seg.end_frame, annotator=seg.annotator)


def materialize(ctx: Ctx, video_id: int, *, dry_run: bool = False) -> int:
    """Create the missing frame-label rows of the video's exported segments (leads): value
    present on every extracted frame in ``[start, end)`` (end exclusive) that has no row of that
    label and annotator yet; idempotent (see ``frame_labels.materialize_segments``).  A dry run
    only counts them (and needs no more than reading)."""
    if dry_run:
        return frame_labels.materialize_segments(ctx.con, video_id, dry_run=True)
    ctx.check(Action.SEGMENT_MATERIALIZE)
    n = frame_labels.materialize_segments(ctx.con, video_id)
    ctx.record(Action.SEGMENT_MATERIALIZE, entity="video", entity_id=video_id, rows=n)
    return n
