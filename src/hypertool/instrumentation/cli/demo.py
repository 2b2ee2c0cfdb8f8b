"""``hypertool demo``: the instrumented package-release workflow, with metrics if asked."""

from __future__ import annotations

import argparse
import asyncio
import time


def run_demo(args: argparse.Namespace) -> int:
    """Run the release workflow with the default integration; serve metrics if asked."""
    from prometheus_client import CollectorRegistry

    from hypertool.instrumentation.integration import get_langfuse_integration
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
