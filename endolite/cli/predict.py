"""``endolite predict``: run a trained model over a video or an image group.

    endolite predict RUN_ID --video ID [--every N]    # every N-th decoded frame (default 1)
    endolite predict RUN_ID --group ID                # every image of the group

Prints the prediction set's id, the frames predicted, the speed (frames per second, decoding
included) against the video's own frame rate, the inference precision chosen and the predicted
segments proposed; ``--json`` prints one JSON document.  Needs a lead or admin (``--user``).
Registered on the main parser by ``add_predict_commands``; errors exit 2 through
``endolite.cli.main``.
"""

from __future__ import annotations

from endolite.cli.common import Output, context


def cmd_predict(args, out: Output) -> int:
    from endolite.services import predictions as service
    from endolite.storage import media
    from endolite.storage import predictions as store

    ctx = context(args)
    pset = service.predict(ctx, args.run_id, video_id=args.video, group_id=args.group,
                           every=args.every, device=args.device)
    segs = store.predicted_segments(ctx.con, pset.id) if pset.video_id is not None else []
    video_fps = media.get_video(ctx.con, pset.video_id).fps if pset.video_id is not None else None
    data = {"set_id": pset.id, "run_id": pset.run_id, "video_id": pset.video_id,
            "group_id": pset.group_id, "every": pset.every, "frames": pset.frames,
            "fps": pset.fps, "video_fps": video_fps, "precision": pset.precision,
            "predicted_segments": len(segs)}
    what = f"video {pset.video_id}" if pset.video_id is not None else f"image group {pset.group_id}"
    speed = f"{pset.fps:.1f} frames/s" if pset.fps is not None else "-"
    if video_fps:
        ratio = (pset.fps or 0.0) * pset.every / video_fps
        speed += f" (video {video_fps:.2f} fps; {ratio:.2f}x real time with every {pset.every})"
    lines = [f"prediction set {pset.id}: run {pset.run_id} over {what}",
             f"frames predicted: {pset.frames}" + (f" (every {pset.every})" if pset.every > 1 else ""),
             f"speed: {speed}", f"precision: {pset.precision}"]
    if pset.video_id is not None:
        lines.append(f"predicted segments proposed: {len(segs)}")
    out.emit(data, lines)
    return 0


def add_predict_commands(sub) -> None:
    """Register ``predict`` on the main parser's subparsers."""
    s = sub.add_parser("predict", help="run a trained model (a done training run) over a video "
                                       "or image group; stores the probabilities (leads)")
    s.add_argument("run_id", type=int, help="the training run whose best checkpoint predicts")
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--video", type=int, help="video id")
    which.add_argument("--group", type=int, help="image group id")
    s.add_argument("--every", type=int, default=1,
                   help="predict every N-th decoded frame of a video (default 1: all)")
    s.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="inference device (auto: CUDA when there is one)")
    s.set_defaults(func=cmd_predict)
