"""Likely mislabels of a training run, and a lead's review of them.

``likely_mislabels`` (a read: no role check, as the lists of the other pages) gives the
(frame, label) pairs where a done run's model confidently disagrees with the labels it trained
against (``endolite.train.mislabels``: confident learning on its held-out predictions), most
confident first, each with its review decision.  ``review`` (``Action.MISLABEL_REVIEW``: leads
and admins) records ``confirmed`` (the annotation is wrong) or ``dismissed`` (it stands) and
audits it; a dismissed pair stays out of the Visual Layer export's ``mislabels`` issues.
Fixing a confirmed label is a separate frame-label edit (the Frame labels page).
"""

from __future__ import annotations

from endolite.errors import InvalidInput
from endolite.services.access import Action, Ctx
from endolite.storage import mislabels as store
from endolite.storage.tx import transaction
from endolite.train.mislabels import ReviewedMislabel, latest_run, run_mislabels

DEFAULT_LIMIT = 200


def likely_mislabels(con, settings, run_id: int | None = None, *, limit: int | None = DEFAULT_LIMIT,
                     include_dismissed: bool = True) -> list[ReviewedMislabel]:
    """The run's likely mislabels, most confident first, at most ``limit`` (None: all).
    ``run_id`` None: the newest done run with held-out predictions ([] when there is none).
    ``include_dismissed=False`` leaves out the pairs a lead dismissed.  NotFound for an unknown
    run or a run directory without ``heldout.json`` / ``manifest.json``; InvalidInput for a run
    that is not done."""
    if run_id is None:
        run_id = latest_run(con, settings)
        if run_id is None:
            return []
    if limit is not None and (isinstance(limit, bool) or int(limit) < 0):
        raise InvalidInput(f"limit: {limit!r} must be a whole number >= 0")
    rows = run_mislabels(con, settings, run_id)
    if not include_dismissed:
        rows = [r for r in rows if r.decision != "dismissed"]
    return rows if limit is None else rows[:int(limit)]


def review(ctx: Ctx, run_id: int, frame_id: int, label: str, decision: str) -> ReviewedMislabel:
    """Record a lead's ``decision`` (``confirmed`` | ``dismissed``) on the likely mislabel
    (``run_id``, ``frame_id``, ``label`` name), replacing an earlier decision; audited.
    PermissionDenied for annotators (nothing changes); InvalidInput for another decision or a
    pair the run does not list; NotFound for an unknown run."""
    ctx.check(Action.MISLABEL_REVIEW)
    decision = str(decision).strip().lower()
    if decision not in store.DECISIONS:
        raise InvalidInput(f"decision: {decision!r} is not one of {', '.join(store.DECISIONS)}")
    listed = [m for m in run_mislabels(ctx.con, ctx.settings, run_id, frame_ids=[frame_id])
              if m.label == label]
    if not listed:
        raise InvalidInput(f"frame {frame_id}, label {label!r}: not a likely mislabel of training "
                           f"run {run_id}")
    item = listed[0]
    with transaction(ctx.con, what="the mislabel review"):
        store.set_decision(ctx.con, run_id=item.run_id, frame_id=item.frame_id,
                           label_id=item.label_id, decision=decision, decided_by=ctx.actor.name)
    ctx.record(Action.MISLABEL_REVIEW, entity="frame", entity_id=int(frame_id), run_id=item.run_id,
               label=item.label, label_id=item.label_id, given=item.given,
               suggested=item.suggested, confidence=item.confidence, decision=decision)
    return ReviewedMislabel(**{**item.__dict__, "decision": decision,
                               "decided_by": ctx.actor.name})


__all__ = ["likely_mislabels", "review", "DEFAULT_LIMIT"]
