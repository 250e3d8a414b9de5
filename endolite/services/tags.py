"""Frame tags (annotators: their own; leads and admins may remove anyone's).

``add_tag`` / ``remove_tag`` check ``Action.FRAME_TAG`` first and write an audit entry when
something changed (an ``add`` of a tag the user already set, changes and records nothing).
Reads (``tags_of``, ``frames_with_tag``, ``tag_names``) are in ``endolite.storage.tags``.
"""

from __future__ import annotations

import re

from endolite.errors import InvalidInput, NotFound
from endolite.services.access import Action, Ctx
from endolite.storage import media
from endolite.storage import tags as store

# Offered on the pages and in ``endolite tag --help`` before any tag is in use; any valid
# name may be used.
DEFAULT_TAGS: tuple[str, ...] = ("reviewed", "accepted", "needs-second-look")

MAX_TAG_LENGTH = 40
_TAG_RE = re.compile(r"[^\W_]|[ _-]")   # one allowed character: a letter or digit, space, - or _


def clean_tag(tag: str) -> str:
    """``tag`` stripped of surrounding white space; raises InvalidInput naming the tag unless it
    is 1..40 characters of letters, digits, spaces, ``-`` and ``_``."""
    text = str(tag).strip()
    if not text:
        raise InvalidInput(f"tag {tag!r}: empty; use 1 to {MAX_TAG_LENGTH} characters")
    if len(text) > MAX_TAG_LENGTH:
        raise InvalidInput(f"tag {text!r}: {len(text)} characters; at most {MAX_TAG_LENGTH}")
    bad = sorted({c for c in text if not _TAG_RE.fullmatch(c)})
    if bad:
        raise InvalidInput(f"tag {text!r}: {''.join(bad)!r} not allowed; use letters, digits, "
                           "spaces, '-' and '_'")
    return text


def add_tag(ctx: Ctx, frame_id: int, tag: str) -> bool:
    """Tag frame ``frame_id`` with ``tag`` as the acting user; True if added, False if the actor
    had already set it (idempotent: nothing changes, nothing is recorded).  Raises InvalidInput
    for a bad name, NotFound for an unknown frame."""
    ctx.check(Action.FRAME_TAG, owners=[ctx.actor.name])
    name = clean_tag(tag)
    media.get_frame(ctx.con, frame_id)
    added = store.add(ctx.con, frame_id, name, username=ctx.actor.name)
    if added:
        ctx.record(Action.FRAME_TAG, entity="frame", entity_id=int(frame_id), op="add", tag=name,
                   username=ctx.actor.name)
    return added


def remove_tag(ctx: Ctx, frame_id: int, tag: str, *, username: str | None = None) -> None:
    """Remove ``username``'s (default: the actor's) ``tag`` from frame ``frame_id``.

    Annotators may remove only their own tags (PermissionDenied otherwise, nothing changes);
    leads and admins anyone's.  Raises NotFound if that user has not set that tag there.  The
    name is only stripped, not checked, so a tag stored under older rules can still go.
    """
    who = username or ctx.actor.name
    ctx.check(Action.FRAME_TAG, owners=[who])
    name = str(tag).strip()
    if not store.remove(ctx.con, frame_id, name, username=who):
        raise NotFound(f"frame {frame_id} has no tag {name!r} set by {who}")
    ctx.record(Action.FRAME_TAG, entity="frame", entity_id=int(frame_id), op="remove", tag=name,
               username=who)


def set_own_tags(ctx: Ctx, frame_id: int, wanted: list[str]) -> tuple[list[str], list[str]]:
    """Make the actor's tags on ``frame_id`` exactly ``wanted`` (the page's multiselect): adds
    and removes through ``add_tag`` / ``remove_tag``; returns (added, removed) names.  Every name
    is checked before anything changes."""
    names = list(dict.fromkeys(clean_tag(t) for t in wanted))
    have = [t.tag for t in store.tags_of(ctx.con, [frame_id]).get(int(frame_id), [])
            if t.username == ctx.actor.name]
    added = [t for t in names if t not in have and add_tag(ctx, frame_id, t)]
    removed = [t for t in have if t not in names]
    for t in removed:
        remove_tag(ctx, frame_id, t)
    return added, removed
