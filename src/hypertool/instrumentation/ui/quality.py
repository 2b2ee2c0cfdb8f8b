"""The quality pages of the web UI: Prompts (per prompt × version × persona, the best version
per persona), a prompt (its versions, and two of its stored texts side by side), and Scores.

Each asks the store what the CLI asks — ``hypertool prompts``, ``hypertool scores`` — with the
same filters, and exports the same documents. The texts of a prompt's versions are those the
store recorded (local prompts, numbered as their text changed); a version fetched from
Langfuse is known by its number only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from hypertool.instrumentation import display
from hypertool.instrumentation.store import documents
from hypertool.instrumentation.store.quality import MIN_SAMPLES
from hypertool.instrumentation.ui.diff import Diff, config_lines, prompt_lines, side_by_side
from hypertool.instrumentation.ui.params import BadRequest, Query, number, parse_query
from hypertool.instrumentation.ui.site import Site, respond
from hypertool.instrumentation.ui.tables import (
    BEST_COLUMNS,
    PROMPT_COLUMNS,
    PROMPT_TEXT_COLUMNS,
    SCORE_COLUMNS,
    Table,
    score_sample_columns,
)

MAX_SAMPLES = 1_000_000


@dataclass(frozen=True)
class Choice:
    """What a Prompts page compares versions on: ``--score`` and ``--min-samples``."""

    score: str | None
    min_samples: int


def _prompts_query(request: Request) -> tuple[Query, Choice]:
    params = request.query_params
    query = parse_query(params, filters=("persona",), until=False, command="prompts")
    score = (params.get("score") or "").strip() or None
    return query, Choice(score, number(params, "min", MIN_SAMPLES, 1, MAX_SAMPLES))


def _report(site: Site, query: Query, choice: Choice, prompt: str | None) -> dict[str, Any]:
    """``hypertool prompts --json`` for these filters (``--prompt``, when given)."""
    report = site.store.prompts_report(
        persona=query.filters.persona,
        since_ns=query.filters.since_ns,
        score=choice.score,
        min_samples=choice.min_samples,
        prompt=prompt,
    )
    return documents.prompts_document(query.filters.since_ns, report)


def _prompt_tables(document: Mapping[str, Any]) -> dict[str, Table]:
    best = {
        (answer["prompt"], answer["persona"], answer["best_version"])
        for answer in document["best"]
        if answer["best_version"] is not None
    }
    rows = [
        {**row, "best": (row["prompt"], row["persona"], row["version"]) in best}
        for row in document["rows"]
    ]
    on = f" (best on {document['score']})" if document["score"] else ""
    return {
        "versions": Table(
            "versions",
            "Versions by persona" + on,
            [*PROMPT_COLUMNS, *score_sample_columns(rows)],
            rows,
            document,
            "No generation made from a managed prompt matches.",
        ),
        "best": Table(
            "best",
            "Best version per persona",
            BEST_COLUMNS,
            document["best"],
            document,
            "No generation made from a managed prompt matches.",
        ),
    }


def _score_names(document: Mapping[str, Any]) -> list[str]:
    return sorted({name for row in document["rows"] for name in row["scores"]})


def prompts_page(site: Site, request: Request) -> Response:
    """Per prompt × version × persona: calls, tokens, cost, latency, errors, the mean of each
    score and its sample size; the best version per persona on a chosen score:
    ``hypertool prompts --json [--persona] [--since] [--score] [--min-samples]``.
    """
    version = site.store.data_version()  # before the queries: see Site.render
    query, choice = _prompts_query(request)
    document = _report(site, query, choice, None)
    used = {row["prompt"] for row in document["rows"]}
    stored = sorted({text["name"] for text in site.store.prompt_versions()} - used)
    return respond(
        site,
        request,
        query,
        "prompts.html",
        _prompt_tables(document),
        "prompts",
        version=version,
        report=document,
        choice=choice,
        score_names=_score_names(document),
        legend=display.best_legend(document["score"]),
        stored_only=stored,
    )


def _pick(params: Mapping[str, str], numbers: Sequence[int]) -> tuple[int | None, int | None]:
    """The two versions to compare: ``a`` and ``b`` when given, else the two latest stored."""
    latest = numbers[-1] if numbers else None
    before = numbers[-2] if len(numbers) > 1 else None
    a = number(params, "a", before or 0, 1, 2**31) or None
    b = number(params, "b", latest or 0, 1, 2**31) or None
    return a, b


def _compare(
    texts: Mapping[int, Mapping[str, Any]], a: int | None, b: int | None
) -> dict[str, Any]:
    """The side-by-side view of versions ``a`` and ``b``, or why there is none."""
    missing = [v for v in (a, b) if v is not None and v not in texts]
    if a is None or b is None or missing:
        return {"a": a, "b": b, "missing": missing}
    left, right = texts[a], texts[b]
    configs: Diff | None = None
    if config_lines(left) or config_lines(right):
        configs = side_by_side(config_lines(left), config_lines(right))
    return {
        "a": a,
        "b": b,
        "missing": [],
        "left": left,
        "right": right,
        "text": side_by_side(prompt_lines(left), prompt_lines(right)),
        "config": configs,
    }


def prompt_page(site: Site, request: Request) -> Response:
    """One prompt: its versions per persona (``hypertool prompts --prompt NAME --json``), the
    texts of its versions the store recorded, and two of them side by side (``?a=1&b=2``;
    the two latest by default).
    """
    version = site.store.data_version()  # before the queries: see Site.render
    name = request.path_params["name"]
    query, choice = _prompts_query(request)
    document = _report(site, query, choice, name)
    stored = site.store.prompt_versions(name)
    if not document["rows"] and not stored:
        return site.error(request, 404, f"No prompt {name!r} in this store.")
    texts = {text["version"]: text for text in stored}
    a, b = _pick(request.query_params, sorted(texts))
    used = sorted({row["version"] for row in document["rows"]} - set(texts))
    tables = _prompt_tables(document)
    text_rows = [{**text, "lines": len(prompt_lines(text))} for text in stored]
    tables["texts"] = Table(
        "texts",
        "Texts recorded",
        PROMPT_TEXT_COLUMNS,
        text_rows,
        {"name": name, "versions": stored},
        "The store has no text of this prompt: its versions came from Langfuse.",
    )
    return respond(
        site,
        request,
        query,
        "prompt.html",
        tables,
        f"prompt-{name}",
        version=version,
        name=name,
        report=document,
        choice=choice,
        score_names=_score_names(document),
        legend=display.best_legend(document["score"]),
        stored=sorted(texts),
        not_stored=used,
        compare=_compare(texts, a, b),
    )


def scores_page(site: Site, request: Request) -> Response:
    """Scores, newest first, a page at a time, of one name and persona when chosen:
    ``hypertool scores --json [--name] [--persona] [--since] --limit --offset``.
    """
    version = site.store.data_version()  # before the queries: see Site.render
    params = request.query_params
    query = parse_query(params, filters=("persona",), until=False, command="scores")
    name = (params.get("name") or "").strip() or None
    persona, since = query.filters.persona, query.filters.since_ns
    rows = site.store.scores(
        name=name, persona=persona, since_ns=since, limit=query.per, offset=query.offset
    )
    total = site.store.count_scores(name=name, persona=persona, since_ns=since)
    if query.offset and query.offset >= total > 0:
        raise BadRequest(f"page={query.page}: there are {total} scores, {query.per} a page")
    table = Table(
        "scores", "Scores", SCORE_COLUMNS, rows, documents.scores_document(rows), "No scores match."
    )
    return respond(
        site,
        request,
        query,
        "scores.html",
        {"scores": table},
        "scores",
        version=version,
        name=name,
        total=total,
    )
