"""The ``wslab`` command: ``wslab doctor`` and ``wslab chat`` now; ``wslab serve`` later.

Every outcome is an exit code and a sentence, never a traceback: the people running this are learners
and instructors at the start of a workshop, and CI, which reads exit codes. 0 = fine, 1 = the doctor
found something blocking, 2 = the command was used wrongly or does not exist yet.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from collections.abc import Sequence

from wslab.components import COMPONENTS, REQUIRE_ENV

__all__ = ["build_parser", "main"]

_NOT_YET = {
    "serve": "serve an ASGI app from wslab outside a notebook",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, separate from :func:`main` so that docs and tests can inspect it."""
    parser = argparse.ArgumentParser(
        prog="wslab",
        description="A hands-on WebSocket course: real servers, clients, proxies, Redis, nginx, a browser.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    doctor = commands.add_parser(
        "doctor",
        help="check Python, package versions and the real components the course uses",
        description=(
            "Check this machine for the course. Exit 0 when everything required is here, 1 when Python or "
            f"a package is outside the tested range or a required component is missing ({REQUIRE_ENV} "
            "or --require)."
        ),
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.add_argument(
        "--require",
        metavar="LIST",
        default=None,
        help=f"components that must be present, added to ${REQUIRE_ENV}: {','.join(COMPONENTS)} or all",
    )

    chat = commands.add_parser(
        "chat",
        help="run the reference chat app with its web page, for your own browser",
        description="Serve the chat page at / and the chat at /ws/chat/ROOM until Ctrl-C.",
    )
    chat.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    chat.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")

    for name, purpose in _NOT_YET.items():
        commands.add_parser(name, help=f"(not yet available) {purpose}")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wslab")
    except PackageNotFoundError:
        return "(not installed)"


def _doctor(args: argparse.Namespace) -> int:
    from wslab import doctor

    try:
        report = doctor.collect(require=args.require)
    except ValueError as exc:  # a typo in WSLAB_REQUIRE or --require: a usage error, not a finding
        print(f"wslab doctor: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(doctor.render(report))
    return report.exit_code


def _chat(host: str, port: int) -> int:
    """Run the chat for a learner's own browser until Ctrl-C (``python -m wslab chat``); the exit code.

    Blocking and ``uvicorn.run``: this is a command line, never a notebook cell (DESIGN rule 1).
    """
    import uvicorn

    from wslab.chat import create_app  # here, not at the top: `wslab doctor` must run on a broken install

    try:  # a sentence instead of uvicorn's log line when the port is taken (exit code 1)
        socket.create_server((host, port)).close()
    except OSError as exc:
        print(f"wslab chat: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    shown = f"[{host}]" if ":" in host else host
    print(f"wslab chat: open http://{shown}:{port}/ in your browser (two tabs = two people); Ctrl-C stops it")
    # A short graceful-shutdown timeout, so Ctrl-C never hangs on open sockets (catalogue F19).
    app = create_app()
    # The transport limits follow the app's (ws_max_size, compression off, the protocol classes of
    # wslab.chat.transport): uvicorn's defaults would let any socket, authenticated or not, make the
    # server buffer 16 MiB messages or inflate deflate bombs (docs/security.md).
    options = app.state.settings.uvicorn_options()
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2, **options)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m wslab`` and the ``wslab`` script; returns the exit code."""
    parser = build_parser()
    # parse_known_args: `wslab serve --port 8000` should get the "not yet" message, not a usage error.
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in _NOT_YET:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "doctor":
        return _doctor(args)
    if args.command == "chat":
        return _chat(args.host, args.port)
    print(
        f"wslab {args.command} is not available yet; it will {_NOT_YET[args.command]}. "
        "For now: python -m wslab doctor",
        file=sys.stderr,
    )
    return 2
