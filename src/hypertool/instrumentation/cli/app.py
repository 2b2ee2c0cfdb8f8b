"""The hypertool command line: the demo, and answers from the local trace store.

report, traces, trace, generations, personas, scores and prompts read the embedded store
(--store PATH or HYPERTOOL_STORE); with --json they print one JSON document and nothing else on
standard output. doctor says which sinks are on; prompts push sends local prompts to Langfuse.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from hypertool.instrumentation._config import HYPERTOOL_STORE
from hypertool.instrumentation.cli.commands import add_store_commands
from hypertool.instrumentation.cli.demo import run_demo
from hypertool.instrumentation.cli.quality import add_quality_commands


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``hypertool``."""
    parser = argparse.ArgumentParser(prog="hypertool", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the instrumented package-release workflow")
    demo.add_argument("--release-version", default="1.2.0", help="version to release")
    demo.add_argument(
        "--no-failure",
        action="store_true",
        help="skip the failed call the demo provokes on purpose (a mock 429, retried)",
    )
    demo.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port"
    )
    demo.add_argument("--metrics-addr", default="127.0.0.1", help="address to serve metrics on")
    demo.add_argument(
        "--serve-seconds",
        type=float,
        default=None,
        help="with --metrics-port: stop serving after this many seconds (default: until Ctrl-C)",
    )
    demo.set_defaults(handler=run_demo)
    add_quality_commands(add_store_commands(parser, commands))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hypertool`` console script."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if args.command == "demo" and args.store:
        os.environ[HYPERTOOL_STORE] = args.store  # the demo's integration writes there
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
