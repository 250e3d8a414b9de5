"""Many annotators at once on one dashboard process: latencies, and whether every save is kept.

Builds a small project in a fresh data dir (a synthetic moving-disc video, ingested, ~200
frames extracted; ``--annotators`` annotator accounts; the label ``polyp``), then runs one thread
per annotator for ``--seconds``, each on its own cursor of ONE connection (as the dashboard's
reruns do).  Each thread loops: open a random frame the way views/annotate.py does (the
navigator's ``media.FramePages`` count + page, ``masks_of`` the frame, ``render_frame`` the
overlay, the user's undo step), then save a random disc through ``services.masks.save``;
sometimes instead erase from (``services.masks.edit`` with the version read) or delete
(``services.masks.delete``) one of its own masks on the frame.

The reference, measured in the same run first: one annotator alone for a few seconds.

Afterwards every successful save's id (and every mask an edit made) is looked up in the
database: present, live unless this bench deleted / edited it, deleted if it did, with its PNG
mirror on disk and its audit entry.

``--browsers B`` then closes the database, starts ``endolite serve`` on a free loopback
port and drives B Chromium sessions (Debian's /usr/bin/chromium through playwright; never
``playwright install``) that log in as annotators, open Annotate and click 'Next ▶' through
frames, timing each click until the navigator's caption shows the next frame.

Prints one JSON line per figure; the goal ("10 annotators, every save found, p95 save < 0.5 s")
is checked in the last line.  No assertions on time.
Run: ``python bench/load.py --annotators 10 --seconds 20 [--browsers 3] [--data DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from endolite import annotate, auth, render  # noqa: E402
from endolite.config import Settings  # noqa: E402
from endolite.errors import Conflict, EndoliteError  # noqa: E402
from endolite.records import LabelKind, MaskSource, Role  # noqa: E402
from endolite.services import Actor, Ctx  # noqa: E402
from endolite.services import masks as mask_service  # noqa: E402
from endolite.storage import annotations, connect, history, labels, media, users  # noqa: E402
from endolite.synthetic import disc_mask, write_disc_video  # noqa: E402
from tests.e2e_support import CHROMIUM, CHROMIUM_ARGS, running_dashboard  # noqa: E402

PASSWORD = "bench-password"
LABEL = "polyp"
GOAL = "10 annotators, every save found, p95 save < 0.5 s"


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 4) if values else None


# --- the project --------------------------------------------------------------------------------

def build(con, settings: Settings, *, annotators: int, frames: int, height: int, width: int,
          work: Path) -> tuple[int, list[str]]:
    """Video ingested and ``frames`` frames extracted; returns (video id, annotator names)."""
    from endolite.ingest import ingest_paths
    from endolite.services import media as media_service

    digest = auth.hash_password(PASSWORD, n=2**10)          # cheap hash (upgraded at a real login)
    lead = users.add(con, "lead", Role.LEAD, digest, created_by="bench")
    names = [users.add(con, f"ann{i:02d}", Role.ANNOTATOR, digest, created_by="bench").name
             for i in range(1, annotators + 1)]
    labels.add(con, LABEL, kind=LabelKind.PATHOLOGY, color="#ff0000")
    video_path = write_disc_video(work / "procedure.mp4", frames + frames // 4, height=height,
                                  width=width, gop=25)
    [result] = ingest_paths(con, settings, [video_path], user=lead.name)
    ctx = Ctx(con=con, settings=settings, actor=Actor.of(lead))
    media_service.extract(ctx, result.id, method="uniform", count=frames, context=0)
    return result.id, names


# --- simulated annotators (threads) -----------------------------------------------------------

@dataclass
class Tally:
    open_s: list[float] = field(default_factory=list)
    save_s: list[float] = field(default_factory=list)
    edit_s: list[float] = field(default_factory=list)
    delete_s: list[float] = field(default_factory=list)
    saves_attempted: int = 0
    saved: list[int] = field(default_factory=list)            # ids of successful saves
    edits_attempted: int = 0
    edited_new: list[int] = field(default_factory=list)       # ids an edit made
    deletes_attempted: int = 0
    removed: list[int] = field(default_factory=list)          # ids deleted or edited away
    conflicts: int = 0
    errors: list[str] = field(default_factory=list)

    def merge(self, other: "Tally") -> None:
        for name, value in vars(other).items():
            if isinstance(value, list):
                getattr(self, name).extend(value)
            else:
                setattr(self, name, getattr(self, name) + value)


def annotator(con, settings: Settings, name: str, video_id: int, deadline: float, seed: int,
              tally: Tally, *, think: float) -> None:
    """One annotator: open a frame, then save / edit / delete, until ``deadline``."""
    cur = con.cursor()
    ctx = Ctx(con=cur, settings=settings, actor=Actor(name=name, role=Role.ANNOTATOR))
    rng = random.Random(seed)
    label = labels.get_by_name(cur, LABEL)
    try:
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            pages = media.FramePages(cur, video_id=video_id, include_context=False)
            frame = pages[rng.randrange(len(pages))]
            shown = annotations.masks_of(cur, frame_ids=[frame.id])
            render.render_frame(settings, frame, shown)
            history.last(cur, frame_id=frame.id, username=name)
            tally.open_s.append(time.perf_counter() - t0)
            own = [m for m in shown if m.annotator == name]
            roll = rng.random()
            try:
                if own and roll < 0.15:
                    target = rng.choice(own)
                    tally.deletes_attempted += 1
                    t0 = time.perf_counter()
                    mask_service.delete(ctx, [target.id], versions={target.id: target.version})
                    tally.delete_s.append(time.perf_counter() - t0)
                    tally.removed.append(target.id)
                elif own and roll < 0.30:
                    target = rng.choice(own)
                    x, y, w, h = target.bbox
                    eraser = disc_mask(frame.height, frame.width, x + rng.uniform(0, w),
                                       y + rng.uniform(0, h), max(w, h) / 4)
                    tally.edits_attempted += 1
                    t0 = time.perf_counter()
                    new_id = mask_service.edit(ctx, target.id, annotate.load_mask(target) & ~eraser,
                                               version=target.version)
                    tally.edit_s.append(time.perf_counter() - t0)
                    tally.removed.append(target.id)
                    if new_id is not None:
                        tally.edited_new.append(new_id)
                else:
                    r = rng.uniform(0.04, 0.15) * min(frame.height, frame.width)
                    cx, cy = rng.uniform(r, frame.width - r), rng.uniform(r, frame.height - r)
                    mask = disc_mask(frame.height, frame.width, cx, cy, r)
                    tally.saves_attempted += 1
                    t0 = time.perf_counter()
                    saved = mask_service.save(ctx, annotate.NewMask(
                        frame.id, mask, source=MaskSource.MANUAL,
                        prompt={"points": [[cx, cy, 1]], "engine": "bench"}), label=label)
                    tally.save_s.append(time.perf_counter() - t0)
                    tally.saved.append(saved.id)
            except Conflict:
                tally.conflicts += 1
            except EndoliteError as exc:
                tally.errors.append(f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # noqa: BLE001 - counted and shown, the run goes on
                tally.errors.append(f"{type(exc).__name__}: {exc}")
            if think:
                time.sleep(think)
    finally:
        cur.close()


def run_threads(con, settings: Settings, names: list[str], video_id: int, seconds: float, *,
                seed: int, think: float) -> tuple[Tally, float]:
    tallies = [Tally() for _ in names]
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=annotator, name=n, daemon=True,
                                args=(con, settings, n, video_id, deadline, seed + i, tallies[i]),
                                kwargs={"think": think})
               for i, n in enumerate(names)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 120)          # a thread finishes its current step, then stops
    stuck = [t.name for t in threads if t.is_alive()]
    total = Tally()
    for t in tallies:
        total.merge(t)
    if stuck:
        total.errors.append(f"threads still running after the deadline: {stuck}")
    return total, time.perf_counter() - t0


def verify(con, settings: Settings, tally: Tally) -> dict:
    """Look every saved / edit-made mask up: present, deleted exactly when this bench removed it,
    PNG mirror on disk; and the audit log's create entries."""
    removed = set(tally.removed)
    ids = tally.saved + tally.edited_new
    rows = {r[0]: r for r in con.execute(
        "SELECT id, frame_id, deleted_at IS NOT NULL FROM masks WHERE list_contains(?, id)",
        [ids]).fetchall()} if ids else {}

    def ok(i: int) -> bool:
        row = rows.get(i)
        return row is not None and bool(row[2]) == (i in removed)

    missing = [i for i in ids if i not in rows]
    wrong_state = [i for i in ids if i in rows and not ok(i)]
    no_png = [i for i in ids if i in rows
              and not annotate.mask_png_path(settings, rows[i][1], i).is_file()]
    audited = con.execute("SELECT count(*) FROM audit_log WHERE action = 'mask.create'").fetchone()[0]
    return {"saves_found": sum(ok(i) for i in tally.saved),
            "edits_found": sum(ok(i) for i in tally.edited_new),
            "missing": missing[:20], "wrong_state": wrong_state[:20], "no_png": no_png[:20],
            "audit_creates": int(audited)}


def report_phase(phase: str, tally: Tally, wall: float, annotators: int) -> None:
    emit(phase=phase, measure="actions", annotators=annotators, seconds=round(wall, 2),
         saves_attempted=tally.saves_attempted, saves_ok=len(tally.saved),
         edits_attempted=tally.edits_attempted, edits_ok=len(tally.edit_s),
         deletes_attempted=tally.deletes_attempted, deletes_ok=len(tally.delete_s),
         conflicts=tally.conflicts, errors=len(tally.errors), first_errors=tally.errors[:3],
         saves_per_s=round(len(tally.saved) / wall, 2) if wall else None)
    for name, values in (("open_frame", tally.open_s), ("save_mask", tally.save_s),
                         ("edit_mask", tally.edit_s), ("delete_mask", tally.delete_s)):
        emit(phase=phase, measure=name, n=len(values), p50_s=pct(values, 50), p95_s=pct(values, 95),
             max_s=round(max(values), 4) if values else None)


def canvas_background(con, settings: Settings, video_id: int, *, repeat: int = 5) -> None:
    """What every rerun of the annotation page does after the queries: the rendered frame
    becomes the drawing canvas's background, which streamlit-drawable-canvas PNG-encodes
    (RGBA, PIL defaults) at full size; beside it, JPEG bytes of the same picture at the canvas's
    display size (640 px wide), measured in the same run."""
    import io
    import statistics

    from PIL import Image

    from endolite.media import encode_image

    frame = media.FramePages(con, video_id=video_id, include_context=False)[0]
    rgb = render.render_frame(settings, frame, annotations.masks_of(con, frame_ids=[frame.id]))
    shown = (640, round(frame.height * 640 / frame.width))

    def png() -> int:
        buf = io.BytesIO()
        Image.fromarray(rgb).convert("RGBA").save(buf, format="PNG")
        return buf.tell()

    def jpeg() -> int:
        return len(encode_image(np.asarray(Image.fromarray(rgb).resize(shown)), fmt="jpg"))

    out = {}
    for name, fn in (("png_full", png), ("jpeg_canvas_size", jpeg)):
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            size = fn()
            times.append(time.perf_counter() - t0)
        out[name] = (statistics.median(times), size)
    emit(measure="canvas_background_encode", size=f"{frame.width}x{frame.height}",
         png_full_s=round(out["png_full"][0], 4), png_kb=out["png_full"][1] // 1024,
         jpeg_640_s=round(out["jpeg_canvas_size"][0], 4), jpeg_kb=out["jpeg_canvas_size"][1] // 1024,
         ratio=round(out["png_full"][0] / out["jpeg_canvas_size"][0], 1))


# --- real browsers against `endolite serve` -----------------------------------------------------

async def browse(browser, url: str, name: str, steps: int, out: dict) -> None:
    """Log in as ``name``, open Annotate, click 'Next ▶' ``steps`` times; per click the seconds
    until the navigator shows the next position."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1400})
    page = await context.new_page()
    page.set_default_timeout(120_000)
    try:
        t0 = time.perf_counter()
        await page.goto(url)
        await page.get_by_label("User name").fill(name)
        await page.get_by_label("Password", exact=True).fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.get_by_role("heading", name="Library").wait_for()
        out["login_s"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        await page.get_by_role("link", name="Annotate").click()
        await page.get_by_role("heading", name="Annotate").wait_for()
        first = page.locator("strong").filter(has_text=" / ").first
        await first.wait_for()
        out["open_page_s"].append(time.perf_counter() - t0)
        position, total = (int(v) for v in (await first.inner_text()).split(" / "))
        for _ in range(min(steps, total - position)):
            want = re.compile(rf"^\s*{position + 1} / {total}\s*$")
            t0 = time.perf_counter()
            await page.get_by_role("button", name="Next ▶").click()
            await page.locator("strong", has_text=want).first.wait_for()
            out["next_s"].append(time.perf_counter() - t0)
            position += 1
    except Exception as exc:  # noqa: BLE001 - counted and shown
        out["errors"].append(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
    finally:
        await context.close()


async def drive_browsers(url: str, names: list[str], steps: int) -> dict:
    from playwright.async_api import async_playwright

    out: dict = {"login_s": [], "open_page_s": [], "next_s": [], "errors": []}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            await asyncio.gather(*(browse(browser, url, n, steps, out) for n in names))
        finally:
            await browser.close()
    return out


# --- main ---------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotators", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--browsers", type=int, default=0)
    parser.add_argument("--steps", type=int, default=15, help="'Next ▶' clicks per browser")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", default="1280x1024", help="frame size WxH (even numbers)")
    parser.add_argument("--think", type=float, default=0.0,
                        help="seconds an annotator pauses after each action (0: flat out)")
    parser.add_argument("--reference-seconds", type=float, default=None,
                        help="the one-annotator reference (default: a quarter of --seconds, 2..10 s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=None,
                        help="build here and keep it (a new or empty folder)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.annotators < 1 or args.seconds <= 0 or args.frames < 2:
        parser.error("--annotators >= 1, --seconds > 0, --frames >= 2")
    if args.browsers > args.annotators:
        parser.error("--browsers: at most --annotators (each logs in as one of them)")
    if args.data is not None and args.data.exists() and any(args.data.iterdir()):
        parser.error(f"--data {args.data}: not empty; give a new or empty folder")
    ref_seconds = args.reference_seconds if args.reference_seconds is not None \
        else min(10.0, max(2.0, args.seconds / 4))

    tmp = Path(tempfile.mkdtemp(prefix="endolite-load-"))
    data_dir = args.data if args.data is not None else tmp / "data"
    try:
        settings = Settings.resolve(data_dir)
        con = connect(settings)
        t0 = time.perf_counter()
        video_id, names = build(con, settings, annotators=args.annotators, frames=args.frames,
                                height=height, width=width, work=tmp)
        emit(step="build", annotators=len(names), frames=media.count_frames(con, video_id=video_id),
             size=f"{width}x{height}", seconds=round(time.perf_counter() - t0, 2),
             cpus=os.cpu_count(), loadavg_1m=round(os.getloadavg()[0], 2))

        ref, ref_wall = run_threads(con, settings, names[:1], video_id, ref_seconds,
                                    seed=args.seed + 1000, think=0.0)   # flat out: the service time
        report_phase("reference_1_annotator", ref, ref_wall, 1)
        load, wall = run_threads(con, settings, names, video_id, args.seconds, seed=args.seed,
                                 think=args.think)
        report_phase(f"load_{len(names)}_annotators", load, wall, len(names))
        both = Tally()
        both.merge(ref)
        both.merge(load)
        found = verify(con, settings, both)
        emit(measure="saves", saves_attempted=both.saves_attempted, saves_ok=len(both.saved),
             saves_found=found["saves_found"], edits_ok=len(both.edited_new),
             edits_found=found["edits_found"], deleted_or_edited_away=len(set(both.removed)),
             missing=found["missing"], wrong_state=found["wrong_state"], no_png=found["no_png"],
             audit_creates=found["audit_creates"],
             conflicts=both.conflicts, errors=len(both.errors))
        for name, a, b in (("open_frame", load.open_s, ref.open_s), ("save_mask", load.save_s, ref.save_s)):
            if a and b:
                emit(measure=f"{name}_ratio_load_over_alone", annotators=len(names),
                     p50_ratio=round(pct(a, 50) / pct(b, 50), 2), p95_ratio=round(pct(a, 95) / pct(b, 95), 2))
        canvas_background(con, settings, video_id)
        every_found = (found["saves_found"] == len(both.saved) and found["edits_found"] == len(both.edited_new)
                       and not found["no_png"])
        p95_save = pct(load.save_s, 95)
        con.close()

        browser_fields = {}
        if args.browsers > 0:       # the database is closed: `endolite serve` opens it now
            with running_dashboard(data_dir, tmp / "server.log") as url:
                t0 = time.perf_counter()
                out = asyncio.run(drive_browsers(url, names[:args.browsers], args.steps))
                emit(measure="browser_next_frame", browsers=args.browsers, clicks=len(out["next_s"]),
                     p50_s=pct(out["next_s"], 50), p95_s=pct(out["next_s"], 95),
                     max_s=round(max(out["next_s"]), 4) if out["next_s"] else None,
                     login_p50_s=pct(out["login_s"], 50), open_annotate_p50_s=pct(out["open_page_s"], 50),
                     errors=len(out["errors"]), first_errors=out["errors"][:3],
                     all_s=[round(v, 3) for v in out["next_s"]],
                     seconds=round(time.perf_counter() - t0, 2))
                browser_fields = {"browser_p95_next_s": pct(out["next_s"], 95)}
        emit(measure="goal", goal=GOAL, annotators=len(names), think_s=args.think,
             loadavg_1m=round(os.getloadavg()[0], 2),
             every_save_found=every_found, p95_save_s=p95_save,
             p95_save_under_0_5s=p95_save is not None and p95_save < 0.5,
             conflicts=both.conflicts, errors=len(both.errors),
             met=len(names) >= 10 and every_found and p95_save is not None and p95_save < 0.5,
             **browser_fields)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
