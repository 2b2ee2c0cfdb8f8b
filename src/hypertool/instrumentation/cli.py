"""The hypertool command line: the demo, and answers from the local trace store.

report, traces, trace, generations and personas read the embedded store (--store PATH or
HYPERTOOL_STORE); with --json they print one JSON document and nothing else on standard
output. doctor says which sinks are on.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence

from hypertool.instrumentation._cli_commands import add_store_commands
from hypertool.instrumentation.store import HYPERTOOL_STORE


def _demo(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from hypertool.instrumentation.langfuse_integration import get_langfuse_integration
    from hypertool.instrumentation.metrics import PersonaMetricsCollector, start_metrics_server
    from hypertool.instrumentation.test_instrumented_workflow import run_release_workflow

    langfuse = get_langfuse_integration()
    registry = CollectorRegistry()  # one per run: a second demo in one process starts afresh
    metrics = PersonaMetricsCollector(registry=registry).attach(langfuse)
    server = None
    if args.metrics_port is not None:
        server = start_metrics_server(args.metrics_port, addr=args.metrics_addr, registry=registry)
        print(f"📈 Metrics: http://{args.metrics_addr}:{args.metrics_port}/metrics", flush=True)
    asyncio.run(
        run_release_workflow(
            langfuse,
            version=args.release_version,
            metrics=metrics,
            provoke_failure=not args.no_failure,
        )
    )
    if server is not None:
        serve = args.serve_seconds
        print(
            "   Serving metrics "
            + (f"for {serve:g} s" if serve is not None else "until interrupted (Ctrl-C)"),
            flush=True,
        )
        try:
            deadline = None if serve is None else time.monotonic() + serve
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
    return 0


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
    demo.set_defaults(handler=_demo)
    add_store_commands(parser, commands)
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
