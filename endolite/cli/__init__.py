"""The ``endolite`` command: every page's job is also scriptable.

    endolite [--data DIR] [--json] [--user NAME] COMMAND ...

Commands live by concern: ``media.py`` (ingest, extract, frames, videos, groups), ``users.py``
(user, setup-code), ``annotation.py`` (label, mask, masks, frame-label, segment, propagate),
``benchmark.py``, ``maintenance.py`` (check, backup, restore); this module has ``serve``, the
parser and ``main``.  Who acts: see ``common.py``.

``--data`` defaults to $ENDOLITE_DATA, else ./data.  ``--json`` prints machine-readable output
(one JSON document).  Errors print ``error: ...`` to stderr and exit 2; ``ingest`` exits 1 when
any input was rejected.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from endolite.allocator import with_environment
from endolite.config import ENV_DATA, Settings
from endolite.errors import EndoliteError

from endolite.cli.common import Output

# web.py: app.py under st.App plus the export download route (streams files from disk)
APP_PATH = Path(__file__).resolve().parents[2] / "web.py"


# --- commands ---------------------------------------------------------------------------------

def cmd_serve(args, out: Output) -> int:
    from endolite import auth
    from endolite.storage import connect

    settings = Settings.resolve(args.data)
    con = connect(settings)            # migrations, and jobs a crash left running marked failed
    try:
        if auth.needs_setup(con):
            code = auth.ensure_setup_code(settings)
            print(f"\n  endolite: fresh data directory {settings.data_dir}\n"
                  f"  one-time setup code for the first admin account: {code}\n"
                  f"  (also in {settings.setup_code_path}; `endolite setup-code` prints it)\n",
                  flush=True)
    finally:
        con.close()
    # one malloc arena, so SAM's big tensors stay in the heap in job threads too (allocator.py)
    env = with_environment(dict(os.environ, **{ENV_DATA: str(settings.data_dir)}))
    command = [sys.executable, "-m", "streamlit", "run", str(APP_PATH),
               "--server.port", str(args.port), "--server.address", args.address,
               "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--server.maxUploadSize", str(args.max_upload_mb),
               "--client.toolbarMode", "minimal", "--server.enableXsrfProtection", "true",
               "--server.fileWatcherType", "none",        # no code reloads on a lab server
               "--global.developmentMode", "false"]
    os.execve(sys.executable, command, env)  # the dashboard replaces this process (signals reach it)
    return 0  # not reached


# --- parser -----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="endolite", description="endoscopy labeling workbench")
    p.add_argument("--data", help=f"data directory (default ${ENV_DATA} or ./data)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--user", help="act as this user, with their role (default $ENDOLITE_USER; "
                                  "neither: the server's shell user, with admin rights)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="start the dashboard")
    s.add_argument("--port", type=int, default=8501)
    s.add_argument("--address", default="0.0.0.0",
                   help="bind address (127.0.0.1 behind a reverse proxy)")
    s.add_argument("--max-upload-mb", type=int, default=4096)
    s.set_defaults(func=cmd_serve)

    from endolite.cli.annotation import add_annotation_commands
    from endolite.cli.media import add_media_commands
    from endolite.cli.users import add_user_commands
    add_media_commands(sub)
    add_user_commands(sub)
    add_annotation_commands(sub)
    from endolite.cli.benchmark import add_benchmark_commands
    from endolite.cli.maintenance import add_maintenance_commands
    add_benchmark_commands(sub)
    add_maintenance_commands(sub)
    from endolite.cli.anonymize import add_anonymize_commands
    from endolite.cli.export import add_export_commands
    from endolite.cli.importing import add_import_commands
    from endolite.cli.tags import add_tag_commands
    add_anonymize_commands(sub)
    add_export_commands(sub)
    add_import_commands(sub)
    add_tag_commands(sub)
    from endolite.cli.predict import add_predict_commands
    add_predict_commands(sub)
    from endolite.cli.training import add_training_commands
    add_training_commands(sub)
    return p


GLOBAL_VALUED = ("--data", "--user")


def global_options_first(argv: Sequence[str]) -> list[str]:
    """Move the global options (``--data DIR``, ``--user NAME``, ``--json``) to the front, so
    ``endolite restore SRC --data NEW`` works like ``endolite --data NEW restore SRC``.
    (``--json`` after ``benchmark report`` is that command's own option and stays.)"""
    argv = list(argv)
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name = arg.split("=", 1)[0]
        if name in GLOBAL_VALUED:
            if "=" in arg:
                front.append(arg)
            elif i + 1 < len(argv):
                front += [arg, argv[i + 1]]
                i += 1
            else:
                rest.append(arg)
        elif arg == "--json" and "report" not in rest:
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(global_options_first(sys.argv[1:] if argv is None else argv))
    out = Output(args.json)
    try:
        return int(args.func(args, out) or 0)
    except OSError as exc:                 # disk full, read-only data dir, permissions
        from endolite.errors import describe_os_error

        exc = describe_os_error(exc)
        if args.json:
            print(json.dumps({"error": str(exc), "type": type(exc).__name__}))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EndoliteError as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "type": type(exc).__name__}))
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
