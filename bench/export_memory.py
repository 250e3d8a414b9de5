"""Server memory while the Export page writes and downloads exports of ~100 MB and ~1 GB.

Issue #10: "A bench prints the server's peak memory while writing and while downloading
exports of about 100 MB and 1 GB".

Per size (``--sizes``, MB; 100 and 1000 by default) it builds a fresh data dir: N incompressible
noise PNGs (``--frame`` WxH, 1920x1080 by default, stored uncompressed: ~6.2 MB each) generated
into ``data/inbox`` and ingested as one image group (the inbox copies are deleted after), the
label ``polyp`` and one box per image (``annotate.save_masks``, one bulk insert), the group
marked anonymized and validated (``mark_anonymized``, copied from tests/export_support.py, except
that the "blanked" copies are hard links of the originals, same bytes and sha256, to spare the
disk), the lead ``lead`` and the download limit raised above the size
(``services.settings.set_download_limit_mb`` as the server shell).  The database is closed,
``endolite serve`` starts (tests/e2e_support.dashboard_process) and Chromium (Debian's
/usr/bin/chromium through playwright; never ``playwright install``) logs in as the lead, opens
/export, picks the group in "Media", ticks Frames, chooses coco and clicks "Write export"; then
clicks the link "Download <file name>" the page shows for the export just written (``<a
href="download/export/<token>" download>``: web.py's route, which streams the file from disk with
Starlette's FileResponse; ``page.expect_download``) and checks the downloaded file's size and
sha256 against data/exports.  Chromium reports no response event for a download, so the
route's headers (does Streamlit's GZip middleware compress it?) come from one more GET of the
same link after the phase, with Chromium's ``Accept-Encoding: gzip, deflate, br, zstd`` and the
page's cookies (urllib, 64 KiB read, then closed): ``download_headers``.

During each phase a thread reads the server's VmRSS (summed over its process tree) from
/proc every ``--sample-ms`` ms; VmHWM is reset before the phase (``5`` into
/proc/<pid>/clear_refs) and read after.  Per phase: the baseline RSS just before the click, the
peak (the larger of sampled max and VmHWM), the peak minus the baseline and that growth divided
by the export's size, and the RSS a few seconds after the phase.

The reference is the export's own size: a zip assembled in memory needs >= 1x; a streamed write
should stay << 1x, and so should a streamed download (st.download_button, which this page used
before, held the file in memory: ~4x, see below).  Writing time is compared with a plain
``shutil.copyfile`` of the same blanked frames measured in the same run (``write_over_copy``:
export seconds / copy seconds; the export's seconds are click to "Export N written", so they
include the page's rerun).  Between
sizes the data dir is deleted; the frame files are deleted once the zip is written (the download
reads only the zip), so the disk holds at most ~2x the size at once.

Prints one JSON line per figure; no assertions on time or memory (the download's size and
sha256 are checked and reported as ``same_file``).
Run: ``.venv/bin/python bench/export_memory.py [--sizes 100,1000] [--data DIR] [--keep]``.

Measured (2 CPUs, 23 GiB RAM, Python 3.11, streamlit 1.67 on starlette 1.10 / uvicorn + h11,
Chromium headless, 1920x1080 noise PNGs; one run of the default command, ~1.5 min, 2026-11-30):

=====================  ==============================  ===================================
phase, size            now: link to web.py's route     before: st.download_button
=====================  ==============================  ===================================
write, 100 MB          220 -> 228 MiB, +8 MiB, 0.09x   313 -> 323 MiB, +10 MiB, 0.10x
write, 1 GB            310 -> 320 MiB, +11 MiB, 0.011x 315 -> 325 MiB, +10 MiB, 0.011x
download, 100 MB       220 -> 221 MiB, +0.3 MiB,       315 -> 690 MiB, +374 MiB, 3.9x;
                       0.003x; 0.38 s, 265 MB/s        1.3 s, 79 MB/s
download, 1 GB         316 -> 316 MiB, +0.2 MiB,       318 -> 4041 MiB, +3724 MiB, 3.9x;
                       0.0002x; 4.7 s, 215 MB/s        15.9 s, 63 MB/s
=====================  ==============================  ===================================

* write: the zip is streamed (flat, ~10 MiB whatever the size): 100 MB (99.6 MB zip, 16
  frames) in 1.02 s, 98 MB/s against shutil.copyfile's 1629 MB/s (17x); 1 GB (1002 MB zip,
  161 frames) in 6.1 s, 165 MB/s against 2774 MB/s (17x).  (Earlier run: 1.92 s and 7.9 s,
  19-20x; in process the 100 MB export takes 1.2 s: sha256 of every frame while copying plus
  once more over the finished zip ~0.5 s, the COCO mask PNGs ~0.5 s; the rest is the page's
  rerun.)
* download through the link: flat (VmHWM and 20 ms samples agree), the RSS the same 3 s after
  and after the page's next run; both files byte-identical, named as on the server.  3-4x
  faster than the button.  Headers: 200, ``application/zip``, Content-Length = the file's
  size, ``attachment; filename=...``, no Content-Encoding: the route sits behind Streamlit's
  SelectiveGZipMiddleware (st.App puts user routes and Streamlit's in one Starlette app), but
  Starlette >= 1.5's GZipMiddleware excludes ``application/zip`` by content type.  It does
  NOT exclude ``application/octet-stream``, which web.py sends for anything that is not
  ``.zip``, i.e. encrypted exports (``.zip.age``): those go out gzipped at level 9 with no
  Content-Length (checked with Starlette's TestClient, the same middleware and
  web.download_export; not measured here: this bench writes no encrypted export).  Level-9
  gzip of incompressible bytes ran at ~10 MB/s in the button's days (below).
* before (st.download_button, same machine, earlier run): 690 MiB 3 s after the 100 MB
  download and 611 MiB after the page's next run; 4041 and 2386 MiB for 1 GB.  The ~4 copies
  were the server stack's (read from its code, not measured one by one): the bytes the
  button's callable returned (kept in Streamlit's in-memory media storage), h11's b"".join
  of the body and asyncio's send buffer (a slice and a bytearray).  (A 20 MB zip grew the
  server by only ~1x.)  Served as application/octet-stream, before the page set
  application/zip, the 100 MB download took 9.8 s (10 MB/s) and +468 MiB (4.9x): the GZip
  middleware compressed it at level 9 while serving.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from endolite import annotate, auth  # noqa: E402
from endolite.config import Settings  # noqa: E402
from endolite.ingest import ingest_paths  # noqa: E402
from endolite.records import LabelKind, Role, ShapeKind  # noqa: E402
from endolite.services import Actor, Ctx  # noqa: E402
from endolite.services import settings as settings_service  # noqa: E402
from endolite.storage import anonymizations as anon  # noqa: E402
from endolite.storage import connect, labels, users  # noqa: E402
from endolite.storage.tx import transaction  # noqa: E402
from tests.e2e_support import browser_page, dashboard_process, log_in, wait_idle  # noqa: E402

LEAD, PASSWORD, LABEL = "lead", "bench-password", "polyp"
MB = 1_000_000
MiB = 2**20


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- the project --------------------------------------------------------------------------------

def mark_anonymized(con, settings, *, group_id, by="lead"):
    """tests/export_support.mark_anonymized for an image group: the recorded "blanked" copies
    are the originals as they are (hard links here, a copy where linking fails), validated."""
    folder = settings.anonymized_media_dir(group_id=group_id)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for fid, path in con.execute("SELECT id, path FROM frames WHERE group_id = ? ORDER BY id",
                                 [group_id]).fetchall():
        src = settings.absolute(path)
        dst = folder / f"frame_{fid}{src.suffix.lower()}"
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
        rows.append((fid, settings.relative(dst), sha256_of(dst)))
    digest = anon.group_digest((fid, sha) for fid, _, sha in rows)
    with transaction(con):
        anon.save(con, video_id=None, group_id=group_id, fov={}, text_boxes=[], redactions=[],
                  residual=[], sampled_frames=50, path=None, sha256=digest, created_by=by)
        anon.set_frames(con, rows)
    anon.decide(con, video_id=None, group_id=group_id, validated=True, reason=None, decided_by=by)


def build(data_dir: Path, *, size_mb: float, width: int, height: int, seed: int) -> dict:
    """The project of one size; returns what the bench needs (the connection is closed)."""
    from PIL import Image

    settings = Settings.resolve(data_dir)
    con = connect(settings)
    try:
        lead = users.add(con, LEAD, Role.LEAD, auth.hash_password(PASSWORD, n=2**10),
                         created_by="bench")
        labels.add(con, LABEL, kind=LabelKind.PATHOLOGY, color="#ff0000")
        frame_bytes = width * height * 3
        count = max(1, round(size_mb * MB / frame_bytes))
        inbox = settings_service.inbox(settings) / "export-bench"
        inbox.mkdir(parents=True)
        rng = np.random.default_rng(seed)
        t0 = time.perf_counter()
        for i in range(count):
            noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            Image.fromarray(noise).save(inbox / f"noise_{i:04d}.png", compress_level=0)
        generate_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        [group] = ingest_paths(con, settings, [inbox], user=LEAD)
        ingest_s = time.perf_counter() - t0
        if group.id is None or len(group.frame_ids) != count:
            raise RuntimeError(f"ingest: {group}")
        shutil.rmtree(inbox)
        box = np.zeros((height, width), dtype=bool)
        box[height // 4: height // 2, width // 4: width // 2] = True
        annotate.save_masks(con, settings,
                            [annotate.NewMask(frame_id=f, mask=box, kind=ShapeKind.BOX)
                             for f in group.frame_ids], label=LABEL, annotator=LEAD)
        mark_anonymized(con, settings, group_id=group.id)
        shell = Ctx(con=con, settings=settings, actor=Actor.server_shell())
        limit = max(settings_service.DEFAULT_DOWNLOAD_MB, 2 * size_mb * MB / MiB + 64)
        settings_service.set_download_limit_mb(shell, limit)
        sources = [settings.absolute(p) for (p,) in con.execute(
            "SELECT af.path FROM anonymized_frames af JOIN frames fr ON fr.id = af.frame_id "
            "WHERE fr.group_id = ? ORDER BY fr.id", [group.id]).fetchall()]
        originals = [settings.absolute(p) for (p,) in con.execute(
            "SELECT path FROM frames WHERE group_id = ?", [group.id]).fetchall()]
    finally:
        con.close()
    return {"settings": settings, "group_id": group.id, "lead": lead.name, "frames": count,
            "sources": sources, "originals": originals,
            "media_bytes": sum(p.stat().st_size for p in sources),
            "generate_s": generate_s, "ingest_s": ingest_s, "download_limit_mb": limit}


def copy_reference(sources: list[Path], target: Path) -> float:
    """Seconds for shutil.copyfile of ``sources`` into ``target`` (removed after)."""
    target.mkdir(parents=True)
    try:
        t0 = time.perf_counter()
        for src in sources:
            shutil.copyfile(src, target / src.name)
        return time.perf_counter() - t0
    finally:
        shutil.rmtree(target, ignore_errors=True)


# --- the server's memory --------------------------------------------------------------------------

def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mb(pid: int) -> float:
    return sum(status_kb(p, "VmRSS") for p in tree(pid)) / 1024


class Sampler:
    """VmRSS of the server's process tree every ``period`` s, in a thread; VmHWM reset at start
    (clear_refs 5) and read at stop."""

    def __init__(self, pid: int, period: float):
        self.pid, self.period = pid, period
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.hwm_reset = True

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(rss_mb(self.pid))
            self._stop.wait(self.period)

    def __enter__(self) -> "Sampler":
        for p in tree(self.pid):
            try:
                Path(f"/proc/{p}/clear_refs").write_text("5")
            except OSError:
                self.hwm_reset = False
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(rss_mb(self.pid))
        self.hwm = sum(status_kb(p, "VmHWM") for p in tree(self.pid)) / 1024

    @property
    def peak(self) -> float:
        return max(max(self.samples), self.hwm if self.hwm_reset else 0.0)


def baseline(pid: int, seconds: float = 0.5) -> float:
    values = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        values.append(rss_mb(pid))
        time.sleep(0.05)
    return statistics.median(values)


def phase_fields(phase: str, base: float, s: Sampler, after: float, export_bytes: int) -> dict:
    grow = s.peak - base
    return {"phase": phase, "export_mb": round(export_bytes / MB, 1),
            "baseline_rss_mb": round(base, 1), "peak_rss_mb": round(s.peak, 1),
            "peak_sampled_mb": round(max(s.samples), 1),
            "vmhwm_mb": round(s.hwm, 1) if s.hwm_reset else None,
            "peak_minus_baseline_mb": round(grow, 1),
            "growth_over_export_size": round(grow * MiB / export_bytes, 3),
            "rss_after_mb": round(after, 1), "samples": len(s.samples)}


# --- the browser --------------------------------------------------------------------------------

def run_size(size_mb: float, data_dir: Path, work: Path, args) -> None:
    t0 = time.perf_counter()
    project = build(data_dir, size_mb=size_mb, width=args.width, height=args.height,
                    seed=args.seed)
    settings: Settings = project["settings"]
    emit(step="build", size_mb=size_mb, frames=project["frames"],
         frame=f"{args.width}x{args.height}", media_mb=round(project["media_bytes"] / MB, 1),
         generate_s=round(project["generate_s"], 2), ingest_s=round(project["ingest_s"], 2),
         seconds=round(time.perf_counter() - t0, 2),
         download_limit_mib=round(project["download_limit_mb"]))
    copy_s = copy_reference(project["sources"], settings.tmp_dir / "copy-reference")

    with dashboard_process(data_dir, work / f"server-{size_mb:g}.log") as (url, proc), \
            browser_page(work) as page:
        pid = proc.pid
        emit(step="server", size_mb=size_mb, pid=pid, processes=len(tree(pid)),
             idle_rss_mb=round(rss_mb(pid), 1))
        log_in(page, url, LEAD, PASSWORD)
        page.get_by_role("link", name="Export").click()        # /export, same session
        page.get_by_role("heading", name="Export").first.wait_for()
        wait_idle(page)
        media = page.locator("[data-testid='stMultiSelect']").filter(has_text="Media")
        media.click()
        page.get_by_role("option", name=re.compile(rf"image group {project['group_id']}:")).click()
        page.keyboard.press("Escape")
        page.locator("[data-testid='stSelectbox']").filter(has_text="Format").click()
        page.get_by_role("option", name="coco", exact=True).click()
        page.get_by_text("Frames", exact=True).click()
        wait_idle(page)

        # --- writing ---
        base = baseline(pid)
        with Sampler(pid, args.sample_ms / 1000) as s:
            t0 = time.perf_counter()
            page.get_by_role("button", name="Write export").click()
            written = page.get_by_text(re.compile(r"Export \d+ written"))
            written.wait_for(timeout=args.timeout * 1000)
            write_s = time.perf_counter() - t0
            wait_idle(page, timeout=args.timeout * 1000)
        time.sleep(args.settle)
        after = rss_mb(pid)
        [zip_path] = list(settings.exports_dir.glob("*.zip"))
        export_bytes = zip_path.stat().st_size
        emit(size_mb=size_mb, **phase_fields("write", base, s, after, export_bytes),
             frames=project["frames"])
        emit(measure="write_speed", size_mb=size_mb, export_mb=round(export_bytes / MB, 1),
             write_s=round(write_s, 2), write_mb_s=round(export_bytes / MB / write_s, 1),
             copyfile_s=round(copy_s, 2),
             copyfile_mb_s=round(project["media_bytes"] / MB / copy_s, 1),
             write_over_copy=round(write_s / copy_s, 2))

        # the download reads only the zip: drop the frames now (disk at most ~2x the size)
        for f in project["sources"] + project["originals"]:
            f.unlink(missing_ok=True)

        # --- downloading: the page's link to web.py's streamed route ---
        link = page.get_by_role("link", name=re.compile(r"^Download ")).first
        link.wait_for()
        href = link.get_attribute("href")
        # the route's response headers, were Chromium to report them (it reports none for a
        # download, nor does a CDP page session: see probe_headers)
        seen: list = []
        page.on("response", lambda r: seen.append(r.headers)
                if "/download/export/" in r.url else None)
        base = baseline(pid)
        with Sampler(pid, args.sample_ms / 1000) as s:
            t0 = time.perf_counter()
            with page.expect_download(timeout=args.timeout * 1000) as info:
                link.click()
            download = info.value
            got = Path(download.path())
            download_s = time.perf_counter() - t0
        time.sleep(args.settle)
        after = rss_mb(pid)
        got_bytes = got.stat().st_size
        same = got_bytes == export_bytes and sha256_of(got) == sha256_of(zip_path)
        download.delete()
        browser_headers = seen[0] if seen else None
        probe = probe_headers(page, download.url)
        page.get_by_role("link", name="Export").click()
        wait_idle(page)
        time.sleep(args.settle)
        after_rerun = rss_mb(pid)
        emit(size_mb=size_mb, **phase_fields("download", base, s, after, export_bytes),
             rss_after_rerun_mb=round(after_rerun, 1), download_s=round(download_s, 2),
             download_mb_s=round(export_bytes / MB / download_s, 1),
             downloaded_bytes=got_bytes, export_bytes=export_bytes, same_file=same,
             suggested_filename=download.suggested_filename, href=re.sub(
                 r"[^/]+$", "<token>", href or ""))
        emit(measure="download_headers", size_mb=size_mb,
             browser_response_seen=browser_headers is not None,
             browser_content_encoding=(browser_headers or {}).get("content-encoding"),
             browser_content_type=(browser_headers or {}).get("content-type"), **probe)


def probe_headers(page, url: str) -> dict:
    """The route's response headers to a GET that accepts gzip as Chromium does (the browser's
    session cookies, urllib; only the first 64 KiB read, then closed): does Streamlit's GZip
    middleware compress it?"""
    import urllib.request

    cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies(url))
    req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip, deflate, br, zstd",
                                               "Cookie": cookie})
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read(64 * 1024)
        h = {k.lower(): v for k, v in r.headers.items()}
    return {"probe_status": r.status, "probe_content_encoding": h.get("content-encoding"),
            "probe_content_type": h.get("content-type"),
            "probe_content_length": h.get("content-length"),
            "probe_content_disposition": h.get("content-disposition")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000", help="export sizes in MB, comma separated")
    parser.add_argument("--frame", default="1920x1080", help="image size WxH")
    parser.add_argument("--sample-ms", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds after a phase before reading rss_after")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per browser wait")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=None,
                        help="build here (a new or empty folder; one data dir per size below it)")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs")
    args = parser.parse_args(argv)
    args.width, args.height = (int(v) for v in args.frame.lower().split("x"))
    sizes = [float(v) for v in args.sizes.split(",") if v.strip()]
    if args.data is not None and args.data.exists() and any(args.data.iterdir()):
        parser.error(f"--data {args.data}: not empty; give a new or empty folder")
    tmp = Path(tempfile.mkdtemp(prefix="endolite-export-mem-"))
    base = args.data if args.data is not None else tmp
    free = shutil.disk_usage(tmp).free
    emit(step="start", sizes_mb=sizes, free_disk_gb=round(free / 1e9, 1), cpus=os.cpu_count())
    try:
        for size in sizes:
            if free < 2.5 * size * MB:
                emit(step="skipped", size_mb=size, reason="not enough free disk for ~2.5x the size")
                continue
            data_dir = base / f"data-{size:g}MB"
            try:
                run_size(size, data_dir, tmp, args)
            finally:
                if not args.keep:
                    shutil.rmtree(data_dir, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
