"""The ``track`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._http import __version__
from ._sync import main_sync


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="track", description="Trackstack command line tools")
    parser.add_argument("--version", action="version", version=f"trackstack {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sync = sub.add_parser(
        "sync",
        help="upload spooled runs (offline runs, or runs that lost the server)",
        description=(
            "Upload every spooled run in DIR (a run directory, or a directory of them; default "
            "$TRACKSTACK_DIR or ./trackstack). Safe to run repeatedly: nothing is sent twice."
        ),
    )
    sync.add_argument("dir", nargs="?", help="run directory or parent directory")
    sync.add_argument("--url", help="server URL (default $TRACKSTACK_URL, else the run's URL)")
    sync.add_argument(
        "--retry-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to retry a request that fails transiently (default 10)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sync":
        return main_sync(args.dir, args.url, retry_budget=args.retry_timeout)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
