"""``hypertool prompts``, ``hypertool prompts push`` and ``hypertool scores``: quality and prompt
versions per persona, from the local store; local prompts pushed to Langfuse.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from hypertool.instrumentation import display
from hypertool.instrumentation._config import load_settings
from hypertool.instrumentation.cli import output as out
from hypertool.instrumentation.cli.arguments import (
    CliError,
    Registrar,
    emit,
    natural,
    open_store,
    positive,
    store_path,
)
from hypertool.instrumentation.store import documents

BEST = display.BEST


# -- hypertool prompts ---------------------------------------------------------------------
def _prompts(args: argparse.Namespace) -> int:
    if getattr(args, "prompts_command", None) == "push":
        return _push(args)
    with open_store(args) as store:
        report = store.prompts_report(
            persona=args.persona,
            since_ns=args.since,
            score=args.score,
            min_samples=args.min_samples,
            prompt=args.prompt,
            environment=args.environment,
            release=args.release,
        )
    if args.json:
        emit(documents.prompts_document(args.since, report))
    elif not report["rows"]:
        out.show(
            "No generation made from a managed prompt" + (" in that period." if args.since else ".")
        )
    else:
        out.show(prompts_table(report))
        for line in verdict_lines(report):
            out.show(line)
    return 0


def _score_text(scores: Mapping[str, Mapping[str, Any]]) -> str:
    return ", ".join(
        f"{name} {value['mean']:.2f} (n={value['n']})"
        for name, value in scores.items()
        if value["mean"] is not None
    )


def prompts_table(report: Mapping[str, Any]) -> Table:
    """Prompt × version × persona, the best version per persona marked."""
    best = {
        (row["prompt"], row["persona"], row["best_version"])
        for row in report["best"]
        if row["best_version"] is not None
    }
    table = out.titled_table(
        "Prompt versions by persona" + (f" (best on {report['score']})" if report["score"] else ""),
        [
            ("Prompt", False),
            ("Ver", True),
            ("Persona", False),
            ("Gens", True),
            ("Tokens", True),
            ("Cost", True),
            ("p50", True),
            ("p95", True),
            ("Errors", True),
            ("Scores", False),
        ],
    )
    for row in report["rows"]:
        marked = (row["prompt"], row["persona"], row["version"]) in best
        table.add_row(
            Text(row["prompt"], style="bold"),
            Text(f"{BEST} {row['version']}" if marked else str(row["version"])),
            out.cell(row["persona"]),
            out.tokens(row["generations"]),
            out.tokens(row["total_tokens"]),
            out.cost(row["cost_usd"], row["cost_unknown"], short=True),
            out.duration(row["p50_ms"]),
            out.duration(row["p95_ms"]),
            Text(f"{row['error_rate']:.0%}", style="red" if row["errors"] else ""),
            Text(_score_text(row["scores"]) or out.NONE),
        )
    if best:
        table.caption = display.best_legend(report["score"])
    return table


def verdict_lines(report: Mapping[str, Any]) -> list[str]:
    """One line per prompt and persona: which version is best, or why that cannot be told."""
    return [
        f"{row['prompt']} · {row['persona'] or out.NONE}: {display.best_version(row)}"
        for row in report["best"]
    ]


# -- hypertool prompts push ----------------------------------------------------------------
class _StoreVersions:
    """Local prompt versions numbered in a store the CLI opened."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def record(self, name: str, kind: str, prompt: str, config: str) -> int:
        return int(self.store.record_prompt_version(name, kind, prompt, config))

    def get(self, name: str, version: int) -> Mapping[str, Any] | None:
        found: Mapping[str, Any] | None = self.store.prompt_version(name, version)
        return found


def _push(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hypertool.instrumentation.model.prompts import PromptError
    from hypertool.instrumentation.prompts import BUILTIN_DIR, MemoryVersions, PromptManager
    from hypertool.instrumentation.prompts.langfuse_api import PromptApi
    from hypertool.instrumentation.store.trace_store import TraceStore

    settings = load_settings()
    if not settings.langfuse_configured:
        raise CliError("set LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY to push prompts")
    assert settings.public_key and settings.secret_key
    path, _ = store_path(args)
    store = TraceStore(path) if path is not None else None
    folders = [Path(settings.prompts_dir).expanduser()] if settings.prompts_dir else []
    manager = PromptManager(
        PromptApi(
            settings.host, settings.public_key, settings.secret_key, timeout=settings.export_timeout
        ),
        [*folders, BUILTIN_DIR],
        _StoreVersions(store) if store is not None else MemoryVersions(),
        timeout=settings.export_timeout,
    )
    try:
        rows = manager.push(args.label or None)
    except PromptError as exc:
        raise CliError(str(exc)) from None
    finally:
        manager.close()
        if store is not None:
            store.close()
    if args.json:
        emit({"host": settings.host, "label": args.label or None, "prompts": rows})
    else:
        out.show(push_table(rows, settings.host))
    return 1 if any(row["action"] == "failed" for row in rows) else 0


def push_table(rows: Sequence[Mapping[str, Any]], host: str) -> Table:
    """What ``prompts push`` did to each local prompt."""
    table = out.titled_table(
        f"Prompts pushed to {host}",
        [
            ("Prompt", False),
            ("Local", True),
            ("Action", False),
            ("Langfuse", True),
            ("Error", False),
        ],
    )
    styles = {"created": "green", "failed": "bold red"}
    for row in rows:
        table.add_row(
            out.cell(row["name"]),
            out.cell(row["local_version"]),
            Text(row["action"], style=styles.get(row["action"], "")),
            out.cell(row["langfuse_version"]),
            Text(out.excerpt(row["error"], 100) if row["error"] else "", style="red"),
        )
    return table


# -- hypertool scores ----------------------------------------------------------------------
def _scores(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        rows = store.scores(
            name=args.name,
            persona=args.persona,
            since_ns=args.since,
            limit=args.limit,
            offset=args.offset,
            environment=args.environment,
            release=args.release,
        )
    if args.json:
        emit(documents.scores_document(rows))
    elif not rows:
        out.show("No scores match.")
    else:
        out.show(scores_table(rows))
    return 0


def scores_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """Scores, newest first."""
    table = out.titled_table(
        "Scores (newest first)",
        [
            ("Given", False),
            ("Trace", False),
            ("Observation", False),
            ("Persona", False),
            ("Chatmode", False),
            ("Name", False),
            ("Value", True),
            ("Details", False),
        ],
    )
    for row in rows:
        table.add_row(
            out.moment(row["created_ns"]),
            Text(row["trace_id"][:12], style="cyan"),
            out.cell(row["observation_id"]),
            out.cell(row["persona"]),
            out.cell(row["chatmode"]),
            out.cell(row["name"]),
            Text(score_value(row)),
            Text(out.excerpt(row["comment"], 80) if row["comment"] else ""),
        )
    return table


def score_value(row: Mapping[str, Any]) -> str:
    """A score's value as people read it."""
    return display.score_value(row["value"], row["data_type"])


# -- parser --------------------------------------------------------------------------------
def add_quality_commands(register: Registrar) -> None:
    """Add ``prompts`` (and ``prompts push``) and ``scores`` to ``hypertool``."""
    prompts = register.command(
        "prompts",
        _prompts,
        "per prompt, version and persona: calls, tokens, cost, latency, errors, scores, and "
        "the best version",
        register.common,
        register.since,
        register.deployment,
    )
    prompts.add_argument("--persona", help="this persona's generations only")
    prompts.add_argument("--prompt", metavar="NAME", help="this prompt's versions only")
    prompts.add_argument(
        "--score", metavar="NAME", help="score the best version is chosen on (quality_gate)"
    )
    prompts.add_argument(
        "--min-samples",
        type=positive,
        default=20,
        metavar="N",
        help="scored generations a version needs to be called best (20)",
    )
    push = prompts.add_subparsers(dest="prompts_command").add_parser(
        "push",
        parents=[register.common],
        help="create a Langfuse version of each local prompt that differs from Langfuse's latest",
        description="prompts as code: create a new Langfuse version of each prompt of "
        "HYPERTOOL_PROMPTS_DIR (and those shipped with the package) whose content differs from "
        "the latest version in Langfuse",
    )
    push.add_argument(
        "--label", default="production", help="label of the new versions (production; '' none)"
    )
    scores = register.command(
        "scores",
        _scores,
        "scores, newest first",
        register.common,
        register.since,
        register.deployment,
    )
    scores.add_argument("--name", help="scores of this name only")
    scores.add_argument("--persona", help="scores of this persona's work only")
    scores.add_argument("--limit", type=positive, default=50, help="at most this many (50)")
    scores.add_argument("--offset", type=natural, default=0, help="skip this many first (0)")
