"""``endolite tag add | remove | list``: users' tags on frames.

    endolite tag add FRAME_ID TAG                 # as --user / $ENDOLITE_USER (or the shell user)
    endolite tag remove FRAME_ID TAG [--of USER]  # another user's tag: leads and admins
    endolite tag list [--video ID | --group ID] [--tag T]

Registered on the main parser by ``add_tag_commands``; errors exit 2 through
``endolite.cli.main``.
"""

from __future__ import annotations

from endolite.cli.common import Output, _open, context


def cmd_add(args, out: Output) -> int:
    from endolite.services import tags

    ctx = context(args)
    added = tags.add_tag(ctx, args.frame_id, args.tag)
    name = tags.clean_tag(args.tag)
    out.emit({"frame_id": args.frame_id, "tag": name, "username": ctx.actor.name, "added": added},
             [f"frame {args.frame_id}: tagged {name!r}" if added
              else f"frame {args.frame_id}: {ctx.actor.name} had already tagged it {name!r}"])
    return 0


def cmd_remove(args, out: Output) -> int:
    from endolite.services import tags

    ctx = context(args)
    who = args.of or ctx.actor.name
    tags.remove_tag(ctx, args.frame_id, args.tag, username=args.of)
    name = args.tag.strip()
    out.emit({"frame_id": args.frame_id, "tag": name, "username": who, "removed": True},
             [f"frame {args.frame_id}: removed {who}'s tag {name!r}"])
    return 0


def cmd_list(args, out: Output) -> int:
    from endolite.storage import tags

    _, con = _open(args)
    wanted = args.tag.strip() if args.tag is not None else None
    frame_ids = tags.frames_with_tag(con, wanted, video_id=args.video, group_id=args.group)
    by_frame = tags.tags_of(con, frame_ids)
    rows = [{"frame_id": fid, "tag": t.tag, "username": t.username, "created_at": t.created_at}
            for fid in frame_ids for t in by_frame.get(fid, [])
            if wanted is None or t.tag == wanted]
    out.emit(rows, [f"{r['frame_id']:>6} {r['tag']:<24} {r['username']:<16} "
                    f"{r['created_at']:%Y-%m-%d %H:%M}" for r in rows])
    return 0


def add_tag_commands(sub) -> None:
    """Register ``tag`` and its subcommands on the main parser's subparsers."""
    from endolite.services.tags import DEFAULT_TAGS

    tp = sub.add_parser("tag", help="users' tags on frames (e.g. " + ", ".join(DEFAULT_TAGS) + ")")
    t = tp.add_subparsers(dest="tag_command", required=True)

    s = t.add_parser("add", help="tag a frame as the acting user (adding it twice changes nothing)")
    s.add_argument("frame_id", type=int)
    s.add_argument("tag", help="1-40 letters, digits, spaces, '-' or '_'")
    s.set_defaults(func=cmd_add)

    s = t.add_parser("remove", help="remove the acting user's (or --of USER's) tag from a frame")
    s.add_argument("frame_id", type=int)
    s.add_argument("tag")
    s.add_argument("--of", metavar="USER", help="whose tag (another user's: leads and admins)")
    s.set_defaults(func=cmd_remove)

    s = t.add_parser("list", help="tags on frames: frame id, tag, user, when")
    which = s.add_mutually_exclusive_group()
    which.add_argument("--video", type=int, help="only frames of this video")
    which.add_argument("--group", type=int, help="only frames of this image group")
    s.add_argument("--tag", help="only this tag")
    s.set_defaults(func=cmd_list)


__all__ = ["add_tag_commands"]
