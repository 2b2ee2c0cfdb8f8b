"""What the ``hypertool`` subcommands share: argument types with one-line usage errors, the
store a command reads, its filters, JSON output, and the guard that turns every expected
failure into one line and an exit code.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hypertool.instrumentation._config import (
    HYPERTOOL_STORE,
    ConfigError,
    environment_name,
    load_settings,
)
from hypertool.instrumentation.store.filters import (
    MAX_INTEGER,
    Filters,
    parse_duration,
    parse_moment,
)
from hypertool.instrumentation.store.schema import StoreError
from hypertool.instrumentation.store.trace_store import TraceStore

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Registrar:
    """How more subcommands join the store's: ``command(name, handler, help, *parents)``,
    and the ``--store``/``--json``, ``--since`` and ``--environment``/``--release`` parent
    parsers.
    """

    command: Callable[..., Any]
    common: argparse.ArgumentParser
    since: argparse.ArgumentParser
    deployment: argparse.ArgumentParser


class CliError(Exception):
    """A problem to tell the user in one line; the command exits with code 1."""


def parse_since(text: str, now: datetime | None = None) -> int:
    """``24h``, ``30m``, ``7d``, ``2w`` ago, or an ISO date/time (local time unless it says), as
    epoch nanoseconds.

    Raises:
        argparse.ArgumentTypeError: ``text`` is neither, or a moment the store cannot hold.

    """
    try:
        return parse_moment(text, now)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def whole_number(text: str, minimum: int) -> int:
    """``text`` as a whole number of at least ``minimum``, or a one-line usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
    if value > MAX_INTEGER:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range (at most {MAX_INTEGER})")
    return value


def positive(text: str) -> int:
    """A whole number of at least 1 (an argument type)."""
    return whole_number(text, 1)


def natural(text: str) -> int:
    """A whole number of at least 0 (an argument type)."""
    return whole_number(text, 0)


def port(text: str) -> int:
    """A TCP port, 0 to 65535 (an argument type)."""
    value = natural(text)
    if value > 65_535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535)")
    return value


def seconds(text: str) -> int:
    """A duration (``90s``, ``5m``, ``1h``, ``1d``, ``1w``) in whole seconds, at least 1."""
    try:
        duration = parse_duration(text)
    except ValueError:
        duration = None
    if duration is None or duration.total_seconds() < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 5m, 1h or 1d")
    return round(duration.total_seconds())


def store_path(args: argparse.Namespace) -> tuple[Path | None, str]:
    """The store a command reads (``--store``, else the settings), and where that came from."""
    given = getattr(args, "store", None)
    if given:
        return Path(given).expanduser(), "--store"
    settings = load_settings()
    source = HYPERTOOL_STORE if settings.store_path_set else "default"
    return settings.store_path, source


def existing_store(args: argparse.Namespace) -> Path:
    """The store a command reads, which must exist (else a one-line error)."""
    path, _ = store_path(args)
    if path is None:
        raise CliError(f"the trace store is off ({HYPERTOOL_STORE}=off); pass --store PATH")
    if not path.exists():
        raise CliError(
            f"no trace store at {path}: run something instrumented first (e.g. `hypertool "
            f"demo`), or point --store / {HYPERTOOL_STORE} at an existing store"
        )
    return path


def open_store(args: argparse.Namespace) -> TraceStore:
    """The store a command reads, opened read-only."""
    return TraceStore(existing_store(args), read_only=True)


def emit(payload: Any) -> None:
    """Print ``payload`` as the one JSON document on standard output."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def guard(handler: Handler) -> Handler:
    """``handler``, with every expected failure as one line on standard error and exit code 1."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (CliError, StoreError, ConfigError) as exc:
            print(f"hypertool: error: {exc}", file=sys.stderr)
            return 1

    return run


DEPLOYMENT = ("environment", "release")
"""The filter options on the Langfuse environment and release a trace was recorded with."""


def environment_option(text: str) -> str:
    """An environment as stored (lower case), or a usage error."""
    try:
        name = environment_name(text, "--environment")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if name is None:
        raise argparse.ArgumentTypeError("--environment needs a name")
    return name


def filters_of(args: argparse.Namespace) -> Filters:
    """The :class:`Filters` the command line's filter options give (those a command has)."""
    status = getattr(args, "status", None)
    if getattr(args, "failed", False):
        status = "error"
    return Filters(
        persona=getattr(args, "persona", None),
        chatmode=getattr(args, "chatmode", None),
        workflow=getattr(args, "workflow", None),
        model=getattr(args, "model", None),
        status=status,
        since_ns=getattr(args, "since", None),
        until_ns=getattr(args, "until", None),
        environment=getattr(args, "environment", None),
        release=getattr(args, "release", None),
    )
