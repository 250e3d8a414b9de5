"""``endolite user add | list | passwd | activate | deactivate | role`` and ``setup-code``."""

from __future__ import annotations

import getpass
import sys

from endolite.cli.common import Output, _open, context
from endolite.errors import EndoliteError
from endolite.records import Role, to_dict

def _read_password(prompt: str, *, confirm: bool = True) -> str:
    if sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if confirm and getpass.getpass("repeat: ") != first:
            raise EndoliteError("passwords differ")
        return first
    return sys.stdin.readline().rstrip("\n")


def cmd_user_add(args, out: Output) -> int:
    from endolite.services import users

    ctx = context(args)
    password = _read_password(f"password for {args.name}: ")
    user = users.add_user(ctx, args.name, args.role, password)
    out.emit(to_dict(user), [f"user {user.name} ({user.role}) created, id {user.id}"])
    return 0


def cmd_user_passwd(args, out: Output) -> int:
    """Reset NAME's password (admins), or change one's own (``--user NAME`` = NAME: asks for
    the current password first)."""
    from endolite.services import users

    ctx = context(args)
    if not ctx.actor.shell and ctx.actor.name == args.name:
        old = _read_password("current password: ", confirm=False)
        new = _read_password(f"new password for {args.name}: ")
        users.change_password(ctx, old, new)
    else:
        users.reset_password(ctx, args.name, _read_password(f"new password for {args.name}: "))
    out.emit({"name": args.name, "password": "changed"}, [f"password of {args.name} changed"])
    return 0


def cmd_user_active(args, out: Output) -> int:
    from endolite.services import users

    user = users.set_active(context(args), args.name, args.user_command == "activate")
    out.emit(to_dict(user), [f"user {user.name} is now {'active' if user.active else 'deactivated'}"])
    return 0


def cmd_user_role(args, out: Output) -> int:
    from endolite.services import users

    user = users.set_role(context(args), args.name, args.role)
    out.emit(to_dict(user), [f"user {user.name} is now {user.role}"])
    return 0


def cmd_user_list(args, out: Output) -> int:
    from endolite.storage import users

    _, con = _open(args)
    items = users.list_all(con)
    out.emit([to_dict(u) for u in items], [f"{u.id:>4} {u.name} ({u.role})"
                                           + ("" if u.active else " deactivated") for u in items])
    return 0


def cmd_setup_code(args, out: Output) -> int:
    from endolite import auth

    settings, con = _open(args)
    if not auth.needs_setup(con):
        raise EndoliteError("setup is done already: this data directory has users")
    code = auth.ensure_setup_code(settings)
    out.emit({"setup_code": code}, [code])
    return 0


def add_user_commands(sub) -> None:
    """Register these commands on the main parser's subparsers."""
    sub.add_parser("setup-code", help="print the one-time admin setup code of a fresh data dir"
                   ).set_defaults(func=cmd_setup_code)

    u = sub.add_parser("user", help="manage users").add_subparsers(dest="user_command", required=True)
    s = u.add_parser("add", help="add a user (password from stdin when not a terminal)")
    s.add_argument("name")
    s.add_argument("--role", choices=[r.value for r in Role], required=True)
    s.set_defaults(func=cmd_user_add)
    u.add_parser("list").set_defaults(func=cmd_user_list)
    s = u.add_parser("passwd", help="reset a user's password (admin) or change your own "
                                    "(--user NAME); new password from stdin when not a terminal")
    s.add_argument("name")
    s.set_defaults(func=cmd_user_passwd)
    for verb in ("deactivate", "activate"):
        s = u.add_parser(verb, help=f"{verb} a user (admin)")
        s.add_argument("name")
        s.set_defaults(func=cmd_user_active)
    s = u.add_parser("role", help="change a user's role (admin)")
    s.add_argument("name")
    s.add_argument("role", choices=[r.value for r in Role])
    s.set_defaults(func=cmd_user_role)
