"""Annotate page server time: switching frame, and a + click's preview with a cached SAM
embedding, with 0 and with 100 masks on the sequence (issue #11 targets: < 0.3 s and < 0.2 s).

    python bench/annotate_speed.py [--frames 30] [--masks 100] [--repeat 9]
                                   [--width 1280 --height 1024] [--model vit_b|tiny]
                                   [--box 640x480]

Measures the server-side calls one rerun of views/annotate.py makes, through the core
functions it calls (not the page itself; Streamlit's own element serialisation is not
counted), in one process on one data directory:

* ``switch_frame``: what a "Next ▶" rerun does: the benchmark queue and blind-frame set, the
  frame list (``media.FramePages``: count + the page of the frame), labels, the frame's masks
  (``annotations.masks_of``), the canvas picture as the page sends it
  (``render.render_view_jpeg``: the view at canvas size with the masks, JPEG-encoded, then the
  component's md5 + base64 data URL; the PNG the component made of a PIL image before 11a625f
  is timed beside it, not counted), undo / redo state, the frame's tags, the sequence timeline
  (``endolite.timeline.build`` + ``position_of``), the review strip's counts and, with SAM
  active, the page's "N of M frames embedded" count (``engine.is_cached`` over the sequence);
* ``click_preview``: a + click on a frame already on screen (shown once before, not timed)
  whose embedding is in the disk cache, all the server does for it: the run the canvas event
  causes (``click_run_s``: the page's reads down to the canvas, whose picture is the one the run
  before sent, then the prompt code), loading the embedding (``SamSegmenter.cached``; the page
  keeps it in memory afterwards), SAM's prompt encoder + mask decoder keeping the best mask
  (``best_mask``; ``decoder_only_s``), then the rerun the page makes to draw the preview
  (``rerun_with_preview_s``: ``switch_frame``'s work with the preview drawn, less the reads the
  page reuses from the click's run: ``REUSED``, see ``annotate_panels.memo``).

``--box`` is the canvas box the frame is fitted into (the page's "Auto" fits the window:
about 616 x 562 at 1366x768, 1170 x 901 at 1920x1080; 640 x 480 is its fallback).

Each figure is the median of ``--repeat`` runs after one warm-up, each run on the next frame
of the sequence; ``parts`` gives each call's median so the slow one shows.  The reference
measured in the same run is reading the frame's image file (``image_read_s``; every rerun
does it) and ratios are given against it, and between 100 and 0 masks.  The SAM decoder uses
random ``--model`` weights (vit_b: the real decoder's cost) with a random float16 embedding
stored in the cache, so no encoder runs.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from endolite import annotate, render  # noqa: E402
from endolite.segment.base import best_mask  # noqa: E402
from endolite import timeline as tl_data  # noqa: E402
from endolite.benchmark import service as bench  # noqa: E402
from endolite.config import Settings  # noqa: E402
from endolite.ingest import ingest_paths  # noqa: E402
from endolite.media import read_image, write_image_atomic  # noqa: E402
from endolite.records import MaskSource, Role  # noqa: E402
from endolite.services import Actor, Ctx  # noqa: E402
from endolite.services import masks as mask_service  # noqa: E402
from endolite.storage import annotations, benchmarks, connect, labels, media, users  # noqa: E402
from endolite.storage import tags as tag_store  # noqa: E402
from endolite.synthetic import disc_mask  # noqa: E402
from endolite.zoom import Viewport, fit_size  # noqa: E402

USER = "bench"
CANVAS_BOX = (640, 480)          # views/annotate.py FALLBACK_BOX (Auto fits ~616 x 562 at 1366x768)
# what the preview-only rerun reuses from the click's run (views/annotate.py, annotate_panels.memo)
REUSED = frozenset({"tasks_for", "blind_frames", "sam_is_cached_count", "undo_redo", "tags",
                    "timeline", "review_counts"})
REAL = ROOT.parent / "shared" / "data" / "real" / "images"


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def canvas_data_url(raw: bytes) -> str:
    """The page's JPEG bytes (``render.render_view_jpeg``) as streamlit-drawable-canvas sends
    them (its ``_encode_bytes_to_data_url``: md5 for its cache, base64 data URL; written out here
    because the component cannot be imported outside a Streamlit server)."""
    hashlib.md5(raw).hexdigest()
    return "data:image/jpeg;base64," + base64.b64encode(raw).decode("ascii")


def png_data_url(background: np.ndarray) -> str:
    """What the component did with a PIL image (the page before 11a625f): RGBA PNG, base64."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(background).convert("RGBA").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def sample_frames(count: int, *, width: int, height: int):
    """``count`` RGB frames: the real polyp images of ../shared/data/real/images resized (PNG
    cost depends on content: noise would be the worst case), else a smooth synthetic scene."""
    import cv2

    real = sorted(REAL.glob("*.jpg")) + sorted(REAL.glob("*.tif")) if REAL.is_dir() else []
    for i in range(count):
        if real:
            image = read_image(real[i % len(real)])
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
            if i >= len(real):                # distinct files (identical ones are one frame)
                image = np.roll(image, i, axis=1)
        else:
            from endolite.synthetic import moving_disc_frames

            image = next(moving_disc_frames(1, height=height, width=width, seed=i))[0]
        yield image


def make_project(tmp: Path, *, frames: int, width: int, height: int):
    """A data dir with one image group of ``frames`` distinct JPEG frames and four labels."""
    settings = Settings.resolve(tmp / "data")
    con = connect(settings)
    users.add(con, USER, Role.ANNOTATOR, "x")
    folder = tmp / "frames"
    folder.mkdir()
    for i, image in enumerate(sample_frames(frames, width=width, height=height)):
        write_image_atomic(folder / f"frame{i:04d}.jpg", image)
    [group] = ingest_paths(con, settings, [folder], user=USER)
    for i, colour in enumerate(("#e6194b", "#3cb44b", "#4363d8", "#f58231")):
        labels.add(con, f"label{i}", color=colour)
    return settings, con, group.id


def add_masks(con, settings, frame_ids: list[int], count: int, *, width: int, height: int) -> None:
    """``count`` masks spread over the frames; every third one propagated (some flagged), as
    the review strip and the timeline count them."""
    rng = np.random.default_rng(1)
    for i in range(count):
        cx, cy = rng.uniform(100, width - 100), rng.uniform(100, height - 100)
        mask = disc_mask(height, width, cx, cy, rng.uniform(30, 150))
        propagated = i % 3 == 2
        item = annotate.NewMask(frame_id=frame_ids[i % len(frame_ids)], mask=mask,
                                source=MaskSource.PROPAGATED if propagated else MaskSource.MANUAL,
                                confidence=0.8 if propagated else None,
                                flagged=propagated and i % 2 == 0)
        annotate.save_mask(con, settings, item, label=f"label{i % 4}", annotator=USER)


class Page:
    """The page's server calls for one frame, each timed into ``parts``."""

    def __init__(self, ctx: Ctx, group_id: int, engine=None, *, box: tuple[int, int] = CANVAS_BOX):
        self.ctx, self.group_id, self.engine, self.box = ctx, group_id, engine, box
        self.parts: dict[str, list[float]] = {}
        self.alternative: list[float] = []      # the background as PNG (not in the total)

    def _t(self, name: str, work: Callable):
        start = time.perf_counter()
        out = work()
        self.parts.setdefault(name, []).append(time.perf_counter() - start)
        return out

    def rerun(self, index: int, *, preview: np.ndarray | None = None, reuse: bool = False,
              until_canvas: bool = False) -> float:
        """One rerun of the page showing frame ``index``; returns its seconds.  ``reuse``: the
        rerun that only draws a click's preview, which reuses the run before's task queue,
        blind set, embedded count, undo / redo state, tags, timeline and review counts
        (``annotate_panels.memo``; the embedded count still checks the frame's own file).
        ``until_canvas``: the run a canvas click causes, which stops after the canvas (the page
        decodes the click and calls ``st.rerun()`` there)."""
        con, settings, name = self.ctx.con, self.ctx.settings, self.ctx.actor.name
        start = time.perf_counter()

        def t(part: str, work: Callable):
            return None if reuse and part in REUSED else self._t(part, work)

        t("tasks_for", lambda: bench.tasks_for(con, name))
        frames = t("frame_pages", lambda: media.FramePages(con, group_id=self.group_id,
                                                             include_context=False))
        frame = t("frame_pages", lambda: (len(frames), frames[index])[1])
        if self.engine is not None:      # "N of M frames embedded" (SAM only)
            self._t("sam_is_cached_frame", lambda: self.engine.is_cached(frame.sha256))
            t("sam_is_cached_count", lambda: sum(self.engine.is_cached(f.sha256) for f in frames))
        t("blind_frames", lambda: benchmarks.benchmark_frames_for(con, name))
        t("labels", lambda: labels.list_all(con))
        shown = t("masks_of", lambda: annotations.masks_of(con, frame_ids=[frame.id]))
        cw, ch = fit_size(frame.width, frame.height, box_width=self.box[0], box_height=self.box[1])
        view = Viewport(frame.width, frame.height, cw, ch)
        options = {"preview": preview, "preview_color": "#ffffff", "opacity": 0.45,
                   "outline_only": False, "show_ids": True}
        t("canvas_picture", lambda: canvas_data_url(
            render.render_view_jpeg(settings, frame, shown, view, **options)))
        aside = _seconds(lambda: png_data_url(render.render_view(settings, frame, shown, view,
                                                                 **options)))
        self.alternative.append(aside)          # the PNG way, not part of the rerun
        if until_canvas:
            return time.perf_counter() - start - aside
        t("undo_redo", lambda: (mask_service.undoable(self.ctx, frame.id),
                                mask_service.redoable(self.ctx, frame.id)))
        t("tags", lambda: (tag_store.tags_of(con, [frame.id]), tag_store.tag_names(con)))
        t("timeline", lambda: (tl_data.build(con, group_id=self.group_id, include_context=False),
                               tl_data.position_of(con, frame.frame_number, group_id=self.group_id,
                                                   include_context=False)))
        t("review_counts", lambda: annotations.review_counts(con, group_id=self.group_id))
        return time.perf_counter() - start - aside


def _seconds(work: Callable) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)


def measure(ctx: Ctx, group_id: int, frames: list, engine, embeddings: dict, *, repeat: int,
            masks: int, box: tuple[int, int] = CANVAS_BOX) -> dict[str, float]:
    """switch_frame and click_preview medians (one warm-up run each, then ``repeat``)."""
    settings = ctx.settings
    page = Page(ctx, group_id, engine, box=box)
    switch, reads = [], []
    for run in range(repeat + 1):
        index = run % len(frames)
        seconds = page.rerun(index)
        start = time.perf_counter()
        read_image(settings.absolute(frames[index].path))
        if run:
            switch.append(seconds)
            reads.append(time.perf_counter() - start)
    switch_parts = {k: round(median(v[1:]), 4) for k, v in page.parts.items()}
    png_s = median(page.alternative[1:])

    rng = np.random.default_rng(2)
    before, click_page, preview_page = (Page(ctx, group_id, engine, box=box) for _ in range(3))
    clicks, runs, loads, decodes, redraws = [], [], [], [], []
    for run in range(repeat + 1):
        index = run % len(frames)
        frame = frames[index]
        x, y = rng.uniform(0, frame.width), rng.uniform(0, frame.height)
        before.rerun(index)                              # the frame on screen before the click
        click_run = click_page.rerun(index, until_canvas=True)     # the click's own run
        start = time.perf_counter()
        embedding = engine.cached(frame.sha256)          # first click on this frame
        loaded = time.perf_counter()
        preview, _ = best_mask(engine, embedding, [[x, y]], [1])      # as the page does
        decoded = time.perf_counter()
        redraw = preview_page.rerun(index, preview=preview, reuse=True)   # st.rerun() to draw it
        if run:
            runs.append(click_run)
            loads.append(loaded - start)
            decodes.append(decoded - loaded)
            redraws.append(redraw)
            clicks.append(click_run + (decoded - start) + redraw)
    click_parts = {k: round(median(v[1:]), 4) for k, v in click_page.parts.items()}
    redraw_parts = {k: round(median(v[1:]), 4) for k, v in preview_page.parts.items()}
    image_read = median(reads)
    out = {"switch_frame_s": median(switch), "click_preview_s": median(clicks),
           "image_read_s": image_read}
    emit(measure="switch_frame", masks_on_sequence=masks, frames=len(frames),
         median_s=round(out["switch_frame_s"], 4),
         p95_s=round(sorted(switch)[int(0.95 * (len(switch) - 1))], 4),
         over_image_read=round(out["switch_frame_s"] / image_read, 2),
         image_read_s=round(image_read, 4), target_s=0.3,
         within_target=out["switch_frame_s"] < 0.3, parts=switch_parts,
         canvas_as_png_s=round(png_s, 4),
         canvas_picture_over_png=round(switch_parts["canvas_picture"] / png_s, 3))
    emit(measure="click_preview", masks_on_sequence=masks, model=engine.model_type,
         median_s=round(out["click_preview_s"], 4),
         p95_s=round(sorted(clicks)[int(0.95 * (len(clicks) - 1))], 4),
         click_run_s=round(median(runs), 4),
         embedding_load_s=round(median(loads), 4), decoder_only_s=round(median(decodes), 4),
         rerun_with_preview_s=round(median(redraws), 4),
         over_image_read=round(out["click_preview_s"] / image_read, 2), target_s=0.2,
         within_target=out["click_preview_s"] < 0.2, click_run_parts=click_parts,
         rerun_with_preview_parts=redraw_parts)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--masks", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--model", default="vit_b", choices=("vit_b", "tiny"))
    parser.add_argument("--box", default="x".join(map(str, CANVAS_BOX)),
                        help="canvas box WxH in CSS px (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        box = tuple(int(v) for v in args.box.lower().split("x"))
        assert len(box) == 2 and min(box) > 0
    except (ValueError, AssertionError):
        parser.error(f"--box {args.box!r}: give WxH in px, e.g. 640x480")
    import torch

    from endolite.segment.sam import SamSegmenter, build_tiny_sam, load_sam

    with tempfile.TemporaryDirectory() as tmp:
        settings, con, group_id = make_project(Path(tmp), frames=args.frames, width=args.width,
                                               height=args.height)
        actor = Actor.of(users.get_by_name(con, USER))
        ctx = Ctx(con=con, settings=settings, actor=actor)
        frames = media.frames_of(con, group_id=group_id)
        model = build_tiny_sam() if args.model == "tiny" else load_sam(args.model, None)
        engine = SamSegmenter(args.model, model=model, cache_dir=settings.cache_dir, precision="fp32")
        channels, side = (32, 16) if args.model == "tiny" else (256, 64)
        rng = np.random.default_rng(3)
        input_size = tuple(round(v * engine.img_size / max(args.height, args.width))
                           for v in (args.height, args.width))
        from endolite.segment.base import Embedding

        for frame in frames:                     # what precompute leaves in the cache
            features = rng.normal(0, 0.5, (channels, side, side)).astype(np.float16)
            engine._store(Embedding(engine.name, frame.sha256, (frame.height, frame.width),
                                    input_size, features, "fp32"))
        results = {}
        for count in (0, args.masks):
            if count:
                add_masks(con, settings, [f.id for f in frames], count, width=args.width,
                          height=args.height)
            results[count] = measure(ctx, group_id, frames, engine, {}, repeat=args.repeat,
                                     masks=count, box=box)
        zero, many = results[0], results[args.masks]
        emit(measure="masks_effect", masks=args.masks, torch_threads=torch.get_num_threads(),
             switch_frame_ratio=round(many["switch_frame_s"] / zero["switch_frame_s"], 2),
             click_preview_ratio=round(many["click_preview_s"] / zero["click_preview_s"], 2),
             size=f"{args.width}x{args.height}", canvas_box=args.box)
        con.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
