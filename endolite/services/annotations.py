"""Frame labels and time segments (annotators: their own), materialising segments (leads)."""

from __future__ import annotations

from collections.abc import Sequence

from endolite import frame_labels
from endolite.records import FrameLabel, Presence, Segment
from endolite.services.access import Action, Ctx
from endolite.storage import annotations as store


class SavedFrameLabels(list):
    """The rows ``set_frame_labels`` stored (a list of FrameLabel) and its ``warnings``: one
    sentence per label set absent on a frame that has masks of that label (saved anyway)."""

    def __init__(self, rows: Sequence[FrameLabel], warnings: Sequence[str] = ()) -> None:
        super().__init__(rows)
        self.warnings: list[str] = list(warnings)


def set_frame_labels(ctx: Ctx, frame_id: int, assignments: Sequence[tuple[str, Presence, float | None]],
                     *, annotator: str | None = None) -> SavedFrameLabels:
    """Set ``(label name, presence, optional value)`` on a frame as ``annotator`` (default: the
    actor; annotators may set only their own).  Returns the rows, with ``.warnings`` for labels
    set absent where the annotator has masks of that label on the frame (also audited)."""
    who = annotator or ctx.actor.name
    ctx.check(Action.FRAME_LABEL_SET, owners=[who])
    rows = frame_labels.set_frame_labels(ctx.con, frame_id, assignments, annotator=who)
    warnings = frame_labels.absent_with_masks(ctx.con, frame_id, assignments, annotator=who)
    ctx.record(Action.FRAME_LABEL_SET, entity="frame", entity_id=frame_id, annotator=who,
               values={r.label: str(r.value) for r in rows},
               row_ids=[r.id for r in rows], **({"warnings": warnings} if warnings else {}))
    return SavedFrameLabels(rows, warnings)


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


def update_segment(ctx: Ctx, segment_id: int, *, label: str | None = None, start: int | None = None,
                   end: int | None = None) -> Segment:
    """Change a segment's label and / or ``[start, end)`` (end exclusive; None: keep); annotators
    only their own.  Audited with the bounds before and after."""
    seg = store.get_segment(ctx.con, segment_id)
    ctx.check(Action.SEGMENT_ADD, owners=[seg.annotator])
    after = frame_labels.update_segment(ctx.con, segment_id, label=label, start=start, end=end)
    ctx.record(Action.SEGMENT_ADD, entity="segment", entity_id=segment_id, video_id=seg.video_id,
               edit=True, before={"label": seg.label, "start": seg.start_frame, "end": seg.end_frame},
               after={"label": after.label, "start": after.start_frame, "end": after.end_frame})
    return after


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
