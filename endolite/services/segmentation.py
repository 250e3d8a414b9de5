"""Segmentation-engine work a user starts: precomputing SAM image embeddings of a sequence
(any role; the cache is shared, so an embedding made for one user serves everyone)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from endolite.records import Frame
from endolite.services.access import Action, Ctx


def precompute(ctx: Ctx, engine: Any, frames: Sequence[Frame], *, around: int | None = None,
               progress=None):
    """Embed ``frames`` not yet cached, nearest to frame number ``around`` first; returns
    ``segment.sam.PrecomputeResult`` (an engine without a cache has nothing to compute)."""
    from endolite.media import read_image
    from endolite.segment.sam import FrameToEmbed
    from endolite.segment.sam import precompute as run

    ctx.check(Action.EMBED_PRECOMPUTE)
    items = [FrameToEmbed(key=f.sha256, index=f.frame_number,
                          load=lambda p=str(ctx.settings.absolute(f.path)): read_image(p))
             for f in frames]
    result = run(engine, items, progress, around=around)
    ctx.record(Action.EMBED_PRECOMPUTE, entity="frames", engine=getattr(engine, "name", "?"),
               frames=len(items), computed=result.computed, cached=result.cached,
               failed=len(result.failed))
    return result
