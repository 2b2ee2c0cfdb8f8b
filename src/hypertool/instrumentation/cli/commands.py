"""The ``hypertool`` subcommands that read the local trace store, and ``doctor``.

Every listing prints a ``rich`` table for people, or with ``--json`` one JSON document with
stable keys and nothing else on standard output. Errors (no store, a corrupt file, an unknown
trace) are one line on standard error and exit code 1, never a traceback.
"""

from __future__ import annotations

import argparse
from typing import Any

from hypertool.instrumentation._config import (
    HYPERTOOL_STORE,
    LANGFUSE_RELEASE,
    LANGFUSE_TRACING_ENVIRONMENT,
    ConfigError,
)
from hypertool.instrumentation.cli import output as out
from hypertool.instrumentation.cli.arguments import (
    DEPLOYMENT,
    CliError,
    Handler,
    Registrar,
    emit,
    environment_option,
    existing_store,
    filters_of,
    guard,
    natural,
    open_store,
    parse_since,
    port,
    positive,
    seconds,
    store_path,
)
from hypertool.instrumentation.cli.tree import trace_tree
from hypertool.instrumentation.store import documents
from hypertool.instrumentation.store.filters import (
    STATUSES,
)
from hypertool.instrumentation.store.queries import REPORT_GROUPS, TRACE_SORTS


def _personas(args: argparse.Namespace) -> int:
    from hypertool.instrumentation.personas import PersonaError
    from hypertool.instrumentation.store.overview import configured_budgets

    try:
        budgets = configured_budgets()
    except PersonaError as exc:
        raise CliError(str(exc)) from None
    filters = filters_of(args)
    with open_store(args) as store:
        rows = store.personas(budgets, filters)
    if args.json:
        emit(documents.personas_document(filters, rows))
    else:
        out.show(out.personas_table(rows))
    return 0


def _report(args: argparse.Namespace) -> int:
    filters = filters_of(args)
    with open_store(args) as store:
        rows = store.report(args.by, filters=filters)
    if args.json:
        emit(documents.report_document(args.by, filters, rows))
    elif not rows:
        out.show("No generations recorded" + (" that match." if filters.as_dict() else "."))
    else:
        out.show(out.report_table(rows, args.by, out.moment(args.since) if args.since else None))
    return 0


def _traces(args: argparse.Namespace) -> int:
    filters = filters_of(args)
    with open_store(args) as store:
        rows = store.traces(
            filters=filters, sort=args.sort, order=args.order, limit=args.limit, offset=args.offset
        )
        total = store.count_traces(filters) if args.json else None
    if args.json:
        emit(documents.traces_document(filters, total or 0, rows))
    elif not rows:
        out.show("No traces match.")
    else:
        out.show(out.traces_table(rows))
    return 0


def _trace(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        try:
            tree = store.trace(args.trace_id)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        if tree is None:
            raise CliError(f"no trace {args.trace_id!r} in {store.path}")
    if args.json:
        emit(tree)
    else:
        out.show(trace_tree(tree))
    return 0


def _generations(args: argparse.Namespace) -> int:
    filters = filters_of(args)
    with open_store(args) as store:
        rows = store.generations(
            slowest=args.slowest, limit=args.limit, filters=filters, offset=args.offset
        )
        total = store.count_generations(filters) if args.json else None
    if args.json:
        emit(documents.generations_document(filters, total, rows))
        return 0
    if args.slowest is not None:
        title = f"Slowest {args.slowest} {'failed ' if args.failed else ''}generations"
    else:
        title = "Failed generations (newest first)" if args.failed else "Recent generations"
    if not rows:
        out.show("No failed generations." if args.failed else "No generations recorded.")
    else:
        out.show(out.generations_table(rows, title))
    return 0


def _analytics(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        document = store.analytics(filters_of(args), bucket_s=args.bucket)
    if args.json:
        emit(document)
    else:
        out.show(out.analytics_table(document))
    return 0


def _ui(args: argparse.Namespace) -> int:
    from hypertool.instrumentation.ui import UiUnavailableError, serve

    path = existing_store(args)
    try:
        return serve(path, host=args.host, port=args.port, open_browser=args.open)
    except UiUnavailableError as exc:
        raise CliError(str(exc)) from None


def _doctor(args: argparse.Namespace) -> int:
    from hypertool.instrumentation.cli.doctor import diagnose, doctor_table

    try:
        path, source = store_path(args)
    except ConfigError:  # diagnose() reports it, with everything else it can tell
        path, source = None, "error"
    result = diagnose(path, source, online=args.online)
    if args.json:
        emit(result)
    else:
        out.show(doctor_table(result))
    online = result["online"]
    failed = online is not None and online["result"] not in ("accepted", "skipped")
    return 1 if failed or result["problems"] or result["sinks"]["store"].get("error") else 0


# -- parser --------------------------------------------------------------------------------
def add_store_commands(
    parser: argparse.ArgumentParser,
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
) -> Registrar:
    """Add ``--store`` and the store-reading subcommands and ``doctor`` to ``hypertool``."""
    store_help = f"trace store file (default: {HYPERTOOL_STORE}, else the per-user data dir)"
    parser.add_argument("--store", metavar="PATH", default=None, help=store_help)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", metavar="PATH", default=argparse.SUPPRESS, help=store_help)
    common.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    since = argparse.ArgumentParser(add_help=False)
    since.add_argument(
        "--since",
        type=parse_since,
        default=None,
        metavar="WHEN",
        help="only since then: 24h, 7d, 30m, 2w or an ISO date (2025-01-31)",
    )

    def command(name: str, handler: Handler, help_text: str, *parents: Any) -> Any:
        sub = commands.add_parser(name, help=help_text, description=help_text, parents=parents)
        sub.set_defaults(handler=guard(handler))
        return sub

    def filter_options(*names: str) -> argparse.ArgumentParser:
        options = argparse.ArgumentParser(add_help=False)
        helps = {
            "persona": "this persona's work only",
            "chatmode": "this chatmode only",
            "workflow": "this workflow only",
            "model": "this model only",
            "release": f"traces of this release only ({LANGFUSE_RELEASE})",
        }
        for name in names:
            if name == "environment":
                options.add_argument(
                    "--environment",
                    type=environment_option,
                    default=None,
                    help="traces of this Langfuse tracing environment only "
                    f"({LANGFUSE_TRACING_ENVIRONMENT})",
                )
            elif name == "status":
                options.add_argument("--status", choices=STATUSES, help="only this status")
            elif name == "until":
                options.add_argument(
                    "--until",
                    type=parse_since,
                    default=None,
                    metavar="WHEN",
                    help="only before then (same forms as --since)",
                )
            else:
                options.add_argument(f"--{name}", help=helps[name])
        return options

    def paging(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--limit", type=positive, default=50, help="at most this many (50)")
        sub.add_argument("--offset", type=natural, default=0, help="skip this many first (0)")

    command(
        "personas",
        _personas,
        "each persona's budget, use this period, remaining and cost, and its activity",
        common,
        since,
        filter_options("until"),
    )
    report = command(
        "report",
        _report,
        "tokens, cost, errors and latency per group (the Users view)",
        common,
        since,
        filter_options("until", "persona", "chatmode", "workflow", "model", "status", *DEPLOYMENT),
    )
    report.add_argument("--by", choices=REPORT_GROUPS, default="persona", help="group by")
    traces = command(
        "traces",
        _traces,
        "traces, newest first",
        common,
        since,
        filter_options("until", "chatmode", "workflow", "status", *DEPLOYMENT),
    )
    traces.add_argument("--persona", help="traces this persona did any work in")
    traces.add_argument("--sort", choices=TRACE_SORTS, default="start", help="sort by (start)")
    traces.add_argument("--order", choices=("desc", "asc"), default="desc", help="(desc)")
    paging(traces)
    trace = command("trace", _trace, "one trace as a tree, with prompts and completions", common)
    trace.add_argument(
        "trace_id",
        metavar="ID",
        help="trace id, or its first 8+ hex digits, or a workflow stage's Langfuse trace id",
    )
    generations = command(
        "generations",
        _generations,
        "slowest or failed generations",
        common,
        since,
        filter_options("until", "persona", "chatmode", "workflow", "model", *DEPLOYMENT),
    )
    generations.add_argument(
        "--slowest", type=positive, metavar="N", help="the N slowest generations"
    )
    generations.add_argument("--failed", action="store_true", help="failed generations only")
    paging(generations)
    analytics = command(
        "analytics",
        _analytics,
        "cost, tokens and errors over time by persona; latency and time-to-first-token "
        "distributions",
        common,
        since,
        filter_options("until", "persona", "chatmode", "workflow", "model", *DEPLOYMENT),
    )
    analytics.add_argument(
        "--bucket",
        type=seconds,
        default=None,
        metavar="SIZE",
        help="time bucket: 5m, 1h, 1d, … (default: from the range, at most 120 buckets)",
    )
    ui = command(
        "ui",
        _ui,
        "serve the web UI over the store, read-only (127.0.0.1 unless --host says)",
    )
    ui.add_argument("--store", metavar="PATH", default=argparse.SUPPRESS, help=store_help)
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    ui.add_argument("--port", type=port, default=8000, help="port (8000; 0 picks a free one)")
    ui.add_argument("--open", action="store_true", help="open the UI in a browser")
    doctor = command(
        "doctor", _doctor, "which sinks are on, where the store and metrics are", common
    )
    doctor.add_argument(
        "--online", action="store_true", help="ask the Langfuse host whether it accepts the keys"
    )
    return Registrar(command, common, since, filter_options(*DEPLOYMENT))
