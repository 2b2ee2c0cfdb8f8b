"""The ``hypertool`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    from hypertool.instrumentation.test_instrumented_workflow import run_release_workflow

    asyncio.run(run_release_workflow(version=args.release_version))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``hypertool``."""
    parser = argparse.ArgumentParser(prog="hypertool", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the instrumented package-release workflow")
    demo.add_argument("--release-version", default="1.2.0", help="version to release")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hypertool`` console script."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
