"""The ``hypertool`` subcommands that read the local trace store, and ``doctor``.

Every listing prints a ``rich`` table for people, or with ``--json`` one JSON document with
stable keys and nothing else on standard output. Errors (no store, a corrupt file, an unknown
trace) are one line on standard error and exit code 1, never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from hypertool.instrumentation._config import HYPERTOOL_STORE, ConfigError, load_settings
from hypertool.instrumentation.cli import output as out
from hypertool.instrumentation.store.queries import REPORT_GROUPS, iso
from hypertool.instrumentation.store.schema import StoreError
from hypertool.instrumentation.store.trace_store import TraceStore

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
DEFAULT_PERIOD = "month"

if TYPE_CHECKING:
    from hypertool.instrumentation.budget import Period

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Registrar:
    """How more subcommands join the store's: ``command(name, handler, help, *parents)``,
    and the ``--store``/``--json`` and ``--since`` parent parsers.
    """

    command: Callable[..., Any]
    common: argparse.ArgumentParser
    since: argparse.ArgumentParser


class CliError(Exception):
    """A problem to tell the user in one line; the command exits with code 1."""


def parse_since(text: str, now: datetime | None = None) -> int:
    """``24h``, ``30m``, ``7d``, ``2w`` ago, or an ISO date/time (local time unless it says), as
    epoch nanoseconds.

    Raises:
        argparse.ArgumentTypeError: ``text`` is neither.

    """
    moment = (now or datetime.now()).astimezone()
    match = _RELATIVE.match(text)
    if match:
        amount, unit = float(match.group(1)), match.group(2).lower()
        try:
            start = moment - timedelta(**{_UNITS[unit]: amount})
        except OverflowError:
            raise argparse.ArgumentTypeError(f"{text!r} reaches too far back") from None
    else:
        try:
            start = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a duration (24h, 7d, 30m, 2w) or an ISO date (2025-01-31)"
            ) from None
        start = start.astimezone() if start.tzinfo is None else start
    return int(start.timestamp() * 1e9)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _store_path(args: argparse.Namespace) -> tuple[Path | None, str]:
    given = getattr(args, "store", None)
    if given:
        return Path(given).expanduser(), "--store"
    settings = load_settings()
    source = HYPERTOOL_STORE if settings.store_path_set else "default"
    return settings.store_path, source


def _open_store(args: argparse.Namespace) -> TraceStore:
    path, _ = _store_path(args)
    if path is None:
        raise CliError(f"the trace store is off ({HYPERTOOL_STORE}=off); pass --store PATH")
    if not path.exists():
        raise CliError(
            f"no trace store at {path}: run something instrumented first (e.g. `hypertool "
            f"demo`), or point --store / {HYPERTOOL_STORE} at an existing store"
        )
    return TraceStore(path, create=False)


def _emit(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def _guard(handler: Handler) -> Handler:
    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (CliError, StoreError, ConfigError) as exc:
            print(f"hypertool: error: {exc}", file=sys.stderr)
            return 1

    return run


# -- commands ------------------------------------------------------------------------------
def _personas(args: argparse.Namespace) -> int:
    from hypertool.instrumentation.budget import period_start_ns
    from hypertool.instrumentation.personas import PersonaError, builtin_personas, load_personas

    settings = load_settings()
    registry = builtin_personas()
    if settings.personas_dir:
        try:
            registry = registry.merged(load_personas(settings.personas_dir))
        except PersonaError as exc:
            raise CliError(str(exc)) from None
    default_period = settings.budget_period if settings.budget_period_set else DEFAULT_PERIOD
    rows = []
    with _open_store(args) as store:
        for name, persona in registry.items():
            period = persona.budget_period or default_period
            since = None if period == "session" else period_start_ns(cast("Period", period))
            used, cost = store.usage_since(name, since)
            budget = persona.token_budget or None
            cost_budget = persona.cost_budget_usd
            rows.append(
                {
                    "persona": name,
                    "display_name": persona.display_name,
                    "budget_period": period,
                    "since": iso(since),
                    "budget_tokens": budget,
                    "used_tokens": used,
                    "remaining_tokens": None if budget is None else budget - used,
                    "cost_usd": cost,
                    "cost_budget_usd": cost_budget,
                    "cost_remaining_usd": None if cost_budget is None else cost_budget - cost,
                }
            )
    if args.json:
        _emit({"personas": rows})
    else:
        out.show(out.personas_table(rows))
    return 0


def _report(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        rows = store.report(args.by, args.since)
    if args.json:
        _emit({"by": args.by, "since": iso(args.since), "rows": rows})
    elif not rows:
        out.show("No generations recorded" + (" in that period." if args.since else "."))
    else:
        out.show(out.report_table(rows, args.by, out.moment(args.since) if args.since else None))
    return 0


def _traces(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        rows = store.traces(
            persona=args.persona, status=args.status, since_ns=args.since, limit=args.limit
        )
    if args.json:
        _emit({"traces": rows})
    elif not rows:
        out.show("No traces match.")
    else:
        out.show(out.traces_table(rows))
    return 0


def _trace(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        try:
            tree = store.trace(args.trace_id)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        if tree is None:
            raise CliError(f"no trace {args.trace_id!r} in {store.path}")
    if args.json:
        _emit(tree)
    else:
        out.show(out.trace_tree(tree))
    return 0


def _generations(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        rows = store.generations(
            slowest=args.slowest,
            failed=args.failed,
            limit=args.limit,
            persona=args.persona,
            since_ns=args.since,
        )
    if args.json:
        _emit({"generations": rows})
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


def _doctor(args: argparse.Namespace) -> int:
    from hypertool.instrumentation.cli.doctor import diagnose, doctor_table

    try:
        path, source = _store_path(args)
    except ConfigError:  # diagnose() reports it, with everything else it can tell
        path, source = None, "error"
    result = diagnose(path, source, online=args.online)
    if args.json:
        _emit(result)
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
        sub.set_defaults(handler=_guard(handler))
        return sub

    command(
        "personas", _personas, "each persona's budget, use this period, remaining and cost", common
    )
    report = command(
        "report",
        _report,
        "tokens, cost, errors and latency per group (the Users view)",
        common,
        since,
    )
    report.add_argument("--by", choices=REPORT_GROUPS, default="persona", help="group by")
    traces = command("traces", _traces, "recent traces, newest first", common, since)
    traces.add_argument("--persona", help="traces this persona did any work in")
    traces.add_argument("--status", choices=("error", "success"), help="only this status")
    traces.add_argument("--limit", type=_positive, default=50, help="at most this many (50)")
    trace = command("trace", _trace, "one trace as a tree, with prompts and completions", common)
    trace.add_argument("trace_id", metavar="ID", help="trace id, or its first 8+ hex digits")
    generations = command(
        "generations", _generations, "slowest or failed generations", common, since
    )
    generations.add_argument(
        "--slowest", type=_positive, metavar="N", help="the N slowest generations"
    )
    generations.add_argument("--failed", action="store_true", help="failed generations only")
    generations.add_argument("--persona", help="this persona's generations only")
    generations.add_argument("--limit", type=_positive, default=50, help="at most this many (50)")
    doctor = command(
        "doctor", _doctor, "which sinks are on, where the store and metrics are", common
    )
    doctor.add_argument(
        "--online", action="store_true", help="ask the Langfuse host whether it accepts the keys"
    )
    return Registrar(command, common, since)
