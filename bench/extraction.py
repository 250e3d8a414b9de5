"""Frame-extraction benchmark: prints one JSON line per measurement, ratios from the same run.

    python bench/extraction.py VIDEO [--count 50] [--repeat 3]
    python bench/extraction.py --synthetic [--count 50] [--repeat 3] [--frames 500 --loops 3]

Measurements (medians over ``--repeat`` interleaved runs; extractions into a temp data dir,
frames deleted between runs):

* ``kmeans``: k-means extraction of ``--count`` frames (context 2) over the whole video
  against ``ffmpeg -threads 2 -i VIDEO -f null -``: frames per second of both, the wall-time
  ratio and the CPU-time ratio (steadier when other work shares the machine);
* ``sparse_uniform``: uniform ``--count`` frames (no context): frames decoded against a full
  scan and against a seek to the keyframe before each target, and the time against ffmpeg's
  full decode;
* ``bulk_insert``: 20k frame rows into a scratch DuckDB through a DataFrame vs executemany
  (executemany timed on 2k rows and scaled; it is that slow);
* ``peak_memory`` (``--synthetic`` only): extraction of a 1-minute and a 10-minute video, each
  in a subprocess: peak RSS growth during the extraction and the tracemalloc peak.

``--synthetic`` makes its own videos, cached in $TMPDIR/endolite-bench (the first run spends
about a minute on them): ``--frames`` distinct 1280x1024 frames of a detailed texture under a
moving, rotating, zooming camera with 5 scene cuts, x264 crf 14 (about 5-6 Mbit/s), played
``--loops`` times (stream copy), encoded three ways: "bframes_gop250" (x264 veryfast:
B-frames, deblocking, a keyframe every 250 frames = x264's default, plus scene cuts),
"bframes_gop25" (the same, a keyframe every 25) and "ippp_gop250" (x264 ultrafast: no
B-frames, no deblocking, about 30 Mbit/s).  The memory comparison uses 320x256 moving-disc
videos (1 and 10 minutes at 25 fps; the 10-minute one is the 1-minute one looped by stream
copy) because a 10-minute 1280x1024 video takes too long to make here.

Without an ``ffmpeg`` program on PATH the ffmpeg reference (``ffmpeg_fps``, the ratios) and
the synthetic videos that need ffmpeg (the re-encodes, the loops, the 10-minute video) are
skipped: one ``{"measurement": "ffmpeg_missing", ...}`` line says what and how to install it
(``apt-get install ffmpeg``); everything else is still measured (extraction frames per second,
frames decoded, bulk insert, the 1-minute memory figure).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CACHE = Path(tempfile.gettempdir()) / "endolite-bench"
INSTALL_FFMPEG = ("install ffmpeg for the reference figures: apt-get install ffmpeg "
                  "(Debian/Ubuntu), dnf install ffmpeg (Fedora), brew install ffmpeg (macOS)")


def have_ffmpeg() -> bool:
    return shutil.which("ffmpeg") is not None


def emit(**fields) -> None:
    print(json.dumps(fields, default=str), flush=True)


# --- synthetic videos -------------------------------------------------------------------------

def _texture(seed: int, size: int) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    acc = np.zeros((size, size, 3), np.float32)
    for cells, amp in ((8, 90), (32, 45), (128, 25), (400, 12), (size, 10)):
        small = rng.normal(0, 1, (cells, cells, 3)).astype(np.float32)
        acc += amp * cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    tint = np.array([170, 90, 80], np.float32) + rng.normal(0, 15, 3)
    return np.clip(acc * 0.5 + tint, 0, 255).astype(np.uint8)


def camera_frames(count: int, *, height: int = 1024, width: int = 1280, scene_cut_every: int = 200):
    """RGB frames of a textured scene under a moving camera, a new scene every N frames."""
    import cv2

    size = int(max(height, width) * 1.25)
    texture, scene = None, -1
    for i in range(count):
        if i // scene_cut_every != scene:
            scene = i // scene_cut_every
            texture = _texture(scene, size)
        k = i % scene_cut_every
        cx = size / 2 + 0.1 * size * np.sin(k * 0.03 + scene)
        cy = size / 2 + 0.1 * size * np.cos(k * 0.021 + 2 * scene)
        m = cv2.getRotationMatrix2D((cx, cy), 8 * np.sin(k * 0.02), 1.0 + 0.1 * np.sin(k * 0.017))
        m[0, 2] += width / 2 - cx
        m[1, 2] += height / 2 - cy
        yield cv2.warpAffine(texture, m, (width, height), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT)


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def _loop(source: Path, times: int, target: Path) -> None:
    """``target`` = ``source`` played ``times`` times (stream copy: no re-encoding)."""
    if not target.exists():
        part = target.with_suffix(".part.mp4")
        _ffmpeg("-stream_loop", str(times - 1), "-i", str(source), "-c", "copy", str(part))
        part.rename(target)


def synthetic_videos(frames: int, loops: int) -> dict[str, Path]:
    """The benchmark's videos (made once, cached in $TMPDIR/endolite-bench)."""
    from endolite.synthetic import write_disc_video, write_video

    CACHE.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    base = CACHE / f"base_bframes_gop250_{frames}.mp4"
    if not base.exists():
        part = base.with_suffix(".part.mp4")
        write_video(part, camera_frames(frames, scene_cut_every=max(frames // 5, 1)),
                    options={"preset": "veryfast", "crf": "14"})
        part.rename(base)
    out: dict[str, Path] = {}
    if not have_ffmpeg():               # the re-encodes and loops need ffmpeg: the base only
        out["bframes_gop250"] = base
    for name, codec_args in (("bframes_gop250", None), ("bframes_gop25", ["-preset", "veryfast", "-g", "25"]),
                             ("ippp_gop250", ["-preset", "ultrafast"])):
        if not have_ffmpeg():
            break
        encoded = CACHE / f"base_{name}_{frames}.mp4"
        if codec_args and not encoded.exists():
            _ffmpeg("-i", str(base), "-c:v", "libx264", "-crf", "14", *codec_args,
                    str(encoded.with_suffix(".part.mp4")))
            encoded.with_suffix(".part.mp4").rename(encoded)
        out[name] = CACHE / f"{name}_{frames}x{loops}.mp4"
        _loop(encoded, loops, out[name])
    small = CACHE / "small_1min.mp4"
    if not small.exists():
        write_disc_video(CACHE / "small.part.mp4", 1500, height=256, width=320, scene_cut_every=150)
        (CACHE / "small.part.mp4").rename(small)
    out["small_1min"] = small
    if have_ffmpeg():
        out["small_10min"] = CACHE / "small_10min.mp4"
        _loop(small, 10, out["small_10min"])
    emit(measurement="synthetic_videos", seconds=round(time.perf_counter() - began, 1),
         videos={k: str(v) for k, v in out.items()})
    return out


# --- helpers ----------------------------------------------------------------------------------

def _cpu(who: int) -> float:
    import resource

    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def ffmpeg_seconds(video: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of ``ffmpeg -threads 2 -i VIDEO -f null -``."""
    import resource

    cpu = _cpu(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run(["ffmpeg", "-v", "error", "-threads", "2", "-i", str(video), "-f", "null", "-"], check=True)
    return time.perf_counter() - began, _cpu(resource.RUSAGE_CHILDREN) - cpu


class Workspace:
    """A temp data dir with the video registered (symlinked in); removed on close."""

    def __init__(self, video: Path):
        from endolite import media
        from endolite.config import Settings
        from endolite.storage import connect
        from endolite.storage import media as store

        self.root = Path(tempfile.mkdtemp(prefix="endolite-bench-"))
        self.settings = Settings.resolve(self.root / "data")
        self.con = connect(self.settings)
        info = media.probe(video)
        target = self.settings.videos_dir / f"bench{video.suffix}"
        target.symlink_to(video.resolve())               # read in place, never copied
        self.video = store.add_video(
            self.con, sha256=video.name, title=video.stem, original_name=video.name,
            path=f"videos/{target.name}", container=info.container, codec=info.codec,
            fps=info.fps, frame_count=info.frame_count, duration=info.duration, width=info.width,
            height=info.height, size_bytes=target.stat().st_size)
        self.frame_count = info.frame_count

    def reset(self) -> None:
        self.con.execute("DELETE FROM frames")
        shutil.rmtree(self.settings.frames_dir, ignore_errors=True)

    def extract(self, **options):
        """(wall seconds, CPU seconds of this process, ExtractionResult)."""
        import resource

        from endolite.extract import extract_frames

        self.reset()
        cpu = _cpu(resource.RUSAGE_SELF)
        began = time.perf_counter()
        result = extract_frames(self.con, self.settings, self.video.id, **options)
        return time.perf_counter() - began, _cpu(resource.RUSAGE_SELF) - cpu, result

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.root, ignore_errors=True)


def median(values) -> float:
    return float(statistics.median(values))


# --- measurements -----------------------------------------------------------------------------

def measure_video(name: str, video: Path, *, count: int, repeat: int, sparse: bool) -> None:
    """Interleaved repeats of: ffmpeg full decode, k-means extraction, uniform extraction."""
    from endolite import media

    space = Workspace(video)
    try:
        space.extract(method="kmeans", count=count, context=0, end=0.02)   # warm the imports
        ff, ff_cpu, km, km_cpu, un = [], [], [], [], []
        reference = have_ffmpeg()
        for _ in range(repeat):                 # interleaved, so load drifts hit all alike
            if reference:
                wall, cpu = ffmpeg_seconds(video)
                ff.append(wall)
                ff_cpu.append(cpu)
            wall, cpu, kmeans = space.extract(method="kmeans", count=count, context=2)
            km.append(wall)
            km_cpu.append(cpu)
            if sparse:
                un.append(space.extract(method="uniform", count=count, context=0))
        n = space.frame_count
        against = ({"ffmpeg_fps": round(n / median(ff), 1),
                    "ratio": round(median(ff) / median(km), 3),
                    "cpu_ratio": round(median(ff_cpu) / median(km_cpu), 3),
                    "ffmpeg_s": [round(x, 2) for x in ff]} if reference
                   else {"ffmpeg_reference": "skipped: no ffmpeg on PATH"})
        emit(measurement="kmeans", video=name, frames=n, count=count, context=2,
             stored=len(kmeans.picked) + len(kmeans.context), frames_decoded=kmeans.frames_decoded,
             extract_fps=round(n / median(km), 1), extract_s=[round(x, 2) for x in km], **against)
        if sparse:
            index = media.index_video(video)
            result = un[-1][2]
            targets = [f.frame_number for f in result.picked]
            full = media.full_scan_cost(targets, index.seek_points)
            seek_each = media.seek_each_cost(targets, index.seek_points)
            seconds = median([u[0] for u in un])
            against = ({"ffmpeg_full_s": round(median(ff), 3),
                        "time_vs_full_decode": round(seconds / median(ff), 3)} if reference
                       else {"ffmpeg_reference": "skipped: no ffmpeg on PATH"})
            emit(measurement="sparse_uniform", video=name, frames=n, keyframes=len(index.keyframes),
                 count=count, frames_decoded=result.frames_decoded, full_scan_frames=full,
                 seek_each_frames=seek_each, bounded=result.frames_decoded <= min(full, seek_each),
                 extract_s=round(seconds, 3), **against)
    finally:
        space.close()


def measure_bulk_insert(rows: int = 20_000, slow_rows: int = 2_000) -> None:
    import duckdb

    from endolite.storage import connect
    from endolite.storage import media as store
    from endolite.config import Settings

    root = Path(tempfile.mkdtemp(prefix="endolite-bench-db-"))
    try:
        con = connect(Settings.resolve(root / "data"))
        ids = store.reserve_frame_ids(con, rows + slow_rows)
        data = [{"id": i, "video_id": 1, "group_id": None, "frame_number": n, "timestamp": n / 25,
                 "path": f"frames/video_1/frame_{i}.jpg", "original_name": None, "original_path": None,
                 "width": 1280, "height": 1024, "sha256": f"{i:064x}", "is_context": False,
                 "parent_id": None, "extraction_id": 1, "created_by": "bench"}
                for n, i in enumerate(ids)]
        began = time.perf_counter()
        con.execute("BEGIN TRANSACTION")
        store.insert_frames(con, data[:rows])
        con.execute("COMMIT")
        frame_s = time.perf_counter() - began
        columns = list(store.FRAME_FIELDS)
        sql = (f"INSERT INTO frames ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})")
        began = time.perf_counter()
        con.execute("BEGIN TRANSACTION")
        con.executemany(sql, [[row[c] for c in columns] for row in data[rows:]])
        con.execute("COMMIT")
        many_s = (time.perf_counter() - began) * rows / slow_rows
        assert con.execute("SELECT count(*) FROM frames").fetchone()[0] == rows + slow_rows
        con.close()
        emit(measurement="bulk_insert", rows=rows, dataframe_s=round(frame_s, 3),
             executemany_s_scaled=round(many_s, 2), executemany_rows_timed=slow_rows,
             ratio=round(many_s / frame_s, 1), duckdb=duckdb.__version__)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def memory_child(video: str, method: str, count: int) -> None:
    """Run in a subprocess: one extraction; print its peak RSS growth and tracemalloc peak.

    The kernel's peak-RSS mark (VmHWM) is reset just before the extraction (writing 5 to
    /proc/self/clear_refs), so imports and set-up do not count.
    """
    import tracemalloc

    import av  # noqa: F401 - import cost is not extraction memory
    import cv2  # noqa: F401
    import sklearn.cluster  # noqa: F401
    import sklearn.decomposition  # noqa: F401

    import endolite.extract  # noqa: F401

    space = Workspace(Path(video))
    space.extract(method=method, count=count, context=2, end=0.01)     # warm lazy imports
    space.reset()
    baseline = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    tracemalloc.start()
    seconds, _, result = space.extract(method=method, count=count, context=2)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak_rss = _status_kib("VmHWM")
    space.close()
    print(json.dumps({"frames": space.frame_count, "rss_growth_mib": round((peak_rss - baseline) / 1024, 1),
                      "tracemalloc_peak_mib": round(peak / 2**20, 2), "seconds": round(seconds, 2),
                      "frames_decoded": result.frames_decoded}))


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def measure_memory(videos: dict[str, Path], count: int) -> None:
    for method in ("uniform", "kmeans"):
        results = {}
        for label in ("1min", "10min"):
            if label not in videos:
                continue
            out = subprocess.run([sys.executable, __file__, "--memory-child", str(videos[label]), method,
                                  str(count)], check=True, capture_output=True, text=True)
            results[label] = json.loads(out.stdout.strip().splitlines()[-1])
        emit(measurement="peak_memory", method=method, size="320x256", count=count, context=2,
             **{f"{label}_{key}": value for label, r in results.items() for key, value in r.items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", nargs="?", help="video file (omit with --synthetic)")
    parser.add_argument("--synthetic", action="store_true", help="make and use synthetic videos")
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--frames", type=int, default=500, help="distinct frames of the 1280x1024 synthetic videos")
    parser.add_argument("--loops", type=int, default=3, help="each synthetic video is its frames played this often")
    parser.add_argument("--only", help="comma-separated: video,bulk,memory")
    parser.add_argument("--memory-child", nargs=3, metavar=("VIDEO", "METHOD", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if args.memory_child:
        video, method, count = args.memory_child
        memory_child(video, method, int(count))
        return 0
    if not args.synthetic and not args.video:
        parser.error("give VIDEO or --synthetic")
    only = set((args.only or "video,bulk,memory").split(","))
    if not have_ffmpeg():
        skipped = ["ffmpeg reference (ffmpeg_fps, ratio, cpu_ratio, time_vs_full_decode)"]
        if args.synthetic:
            skipped += ["synthetic bframes_gop25 / ippp_gop250 re-encodes and --loops",
                        "the 10-minute peak_memory video"]
        emit(measurement="ffmpeg_missing", skipped=skipped, how_to_install=INSTALL_FFMPEG)
    if args.synthetic:
        videos = synthetic_videos(args.frames, args.loops)
        timed = [(k, videos[k], k != "ippp_gop250") for k in ("bframes_gop250", "bframes_gop25", "ippp_gop250")
                 if k in videos]
    else:
        videos = {}
        timed = [(Path(args.video).name, Path(args.video), True)]
    if "video" in only:
        for name, video, sparse in timed:
            measure_video(name, video, count=args.count, repeat=args.repeat, sparse=sparse)
    if "bulk" in only:
        measure_bulk_insert()
    if "memory" in only and videos:
        measure_memory({label: videos[f"small_{label}"] for label in ("1min", "10min")
                        if f"small_{label}" in videos}, args.count)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
