"""Quality: the means of scores per group (``hypertool report``'s ``scores`` and
``gate_pass_rate``), and the prompt × version × persona report (``hypertool prompts``).

A generation's scores are the scores given to it, to the stage (span) it ran in, and to its
trace: Langfuse shows generation and trace scores per prompt version the same way.

Best version per persona (on one score): a version needs at least :data:`MIN_SAMPLES` scored
generations to compete; the best is the one with the highest mean, and it is called best only
when it beats every other competing version by more than 1.96 standard errors of the
difference (a two-sided Welch z-test at about 95 %); otherwise the answer says the samples are
too small, or too close, to tell.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any

from hypertool.instrumentation.store.filters import Filters
from hypertool.instrumentation.store.values import percentile

MIN_SAMPLES = 20
"""Scored generations a prompt version needs before it can be called best."""
Z_95 = 1.96
QUALITY_GATE = "quality_gate"  # as model.scores.QUALITY_GATE; the CLI does not load the model


@dataclass(slots=True)
class Mean:
    """A running mean (and variance) of one score."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0

    def add(self, value: float) -> None:
        """Count one value."""
        self.n += 1
        self.total += value
        self.squares += value * value

    @property
    def mean(self) -> float | None:
        """The mean, or None without values."""
        return self.total / self.n if self.n else None

    @property
    def standard_error(self) -> float:
        """Standard error of the mean (sample variance); infinite below 2 values."""
        if self.n < 2:
            return math.inf
        variance = max((self.squares - self.total * self.total / self.n) / (self.n - 1), 0.0)
        return math.sqrt(variance / self.n)

    def as_json(self) -> dict[str, Any]:
        """``{"mean", "n"}``."""
        mean = self.mean
        return {"mean": None if mean is None else round(mean, 6), "n": self.n}


_SCORE_GROUPS = {
    "persona": "s.persona",
    "chatmode": "s.chatmode",
    "workflow": "coalesce(s.workflow, (SELECT t.workflow FROM traces t "
    "WHERE t.trace_id = s.trace_id))",
    # The covering (span_id, model) index: the primary key's would read every scored row.
    "model": "(SELECT o.model FROM observations o INDEXED BY observations_span_model "
    "WHERE o.span_id = s.observation_id)",
}


def on_scores(filters: Filters) -> tuple[str, list[Any]]:
    """SQL conditions on numeric scores (alias ``s``) from the filters of a report: the
    scored work's persona, chatmode, workflow and model, its trace's environment and release;
    the time the score was given. A score has no status of its own: ``status`` does not apply.
    """
    conditions = ["s.value IS NOT NULL"]
    params: list[Any] = []
    for column, value in (
        ("s.persona", filters.persona),
        ("s.chatmode", filters.chatmode),
        (_SCORE_GROUPS["workflow"], filters.workflow),
        (_SCORE_GROUPS["model"], filters.model),
    ):
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    if filters.since_ns is not None:
        conditions.append("s.created_ns >= ?")
        params.append(filters.since_ns)
    if filters.until_ns is not None:
        conditions.append("s.created_ns < ?")
        params.append(filters.until_ns)
    deployment, values = filters.on_deployment("s.trace_id")
    return " AND ".join([*conditions, *deployment]), params + values


def score_means(
    connection: sqlite3.Connection, by: str, filters: Filters
) -> dict[Any, dict[str, Mean]]:
    """Per group: the mean of each numeric (NUMERIC or BOOLEAN) score (summed by SQLite)."""
    where, params = on_scores(filters)
    groups: dict[Any, dict[str, Mean]] = {}
    for group, name, count, total, squares in connection.execute(
        f"SELECT {_SCORE_GROUPS[by]}, s.name, count(*), total(s.value), total(s.value * s.value) "
        f"FROM scores s WHERE {where} GROUP BY 1, 2",
        params,
    ):
        groups.setdefault(group, {})[name] = Mean(count, total, squares)
    return groups


def quality_of(means: dict[str, Mean] | None) -> dict[str, Any]:
    """A report row's ``scores`` (name → mean and n) and ``gate_pass_rate``."""
    means = means or {}
    gate = means.get(QUALITY_GATE)
    return {
        "scores": {name: means[name].as_json() for name in sorted(means)},
        "gate_pass_rate": None if gate is None else gate.as_json()["mean"],
    }


@dataclass(slots=True)
class _Version:
    generations: int = 0
    total_tokens: int = 0
    cost_usd: float | None = None
    cost_unknown: int = 0
    errors: int = 0
    latencies: list[int] = field(default_factory=list)
    scores: dict[str, Mean] = field(default_factory=dict)


Scored = list[tuple[str, str, float]]  # (observation or trace id, score name, value)
_GENERATIONS = "observations o INDEXED BY observations_prompt"  # read alone, never the rows
_NAME, _VALUE = itemgetter(1), itemgetter(2)


def _numeric_scores(
    connection: sqlite3.Connection, since_ns: int | None
) -> tuple[dict[str, Scored], dict[str, Scored]]:
    """Numeric scores by observation id, and trace scores by trace id."""
    where, params = ("", []) if since_ns is None else (" AND created_ns >= ?", [since_ns])
    found: tuple[dict[str, Scored], dict[str, Scored]] = ({}, {})
    for scored, target in zip(found, ("observation_id", "trace_id"), strict=True):
        only = "IS NOT NULL" if target == "observation_id" else "IS NULL"
        for row in connection.execute(
            f"SELECT {target}, name, value FROM scores "
            f"WHERE value IS NOT NULL AND observation_id {only}{where}",
            params,
        ):
            scored.setdefault(row[0], []).append(row)
    return found


def _means(scored: Scored) -> dict[str, Mean]:
    """The mean of each score name in ``scored`` (values summed in the order given)."""
    scored.sort(key=_NAME)  # stable: each name's values keep their order
    means = {}
    for name, rows in groupby(scored, key=_NAME):
        values = list(map(_VALUE, rows))
        means[name] = Mean(len(values), sum(values), sum(value * value for value in values))
    return means


def _versions(
    connection: sqlite3.Connection, where: str, params: list[Any], since_ns: int | None
) -> dict[tuple[str, int, str], _Version]:
    """The numbers, latencies and score means of each prompt × version × persona."""
    groups: dict[tuple[str, int, str], _Version] = {
        (name, version, who): _Version(count, tokens, cost, unknown, errors)
        for name, version, who, count, tokens, cost, unknown, errors in connection.execute(
            "SELECT o.prompt_name, o.prompt_version, o.persona, count(*), "
            "coalesce(sum(o.total_tokens), 0), sum(o.cost_usd), sum(o.cost_usd IS NULL), "
            f"sum(o.status = 'error') FROM {_GENERATIONS} WHERE {where} GROUP BY 1, 2, 3",
            params,
        )
    }
    by_observation, by_trace = _numeric_scores(connection, since_ns) if groups else ({}, {})
    of_observation, of_trace = by_observation.get, by_trace.get
    empty: Scored = []
    one_group = (
        f"SELECT o.end_ns - o.start_ns, o.span_id, o.parent_id, o.trace_id FROM {_GENERATIONS} "
        f"WHERE {where} AND o.prompt_name = ? AND o.prompt_version IS ? AND o.persona IS ?"
    )
    for key, group in groups.items():  # a group at a time: its key is not read on every row
        generations = connection.execute(one_group, [*params, *key]).fetchall()
        group.latencies = sorted(row[0] for row in generations)
        if not (by_observation or by_trace):
            continue
        scored: Scored = []
        add = scored.extend
        for _, span_id, parent_id, trace_id in generations:
            add(of_observation(span_id, empty))
            add(of_observation(parent_id, empty))  # its stage's (or parent span's)
            add(of_trace(trace_id, empty))
        group.scores = _means(scored)
    return groups


def prompts_report(
    connection: sqlite3.Connection,
    *,
    persona: str | None,
    since_ns: int | None,
    score: str | None,
    min_samples: int = MIN_SAMPLES,
    prompt: str | None = None,
    environment: str | None = None,
    release: str | None = None,
) -> dict[str, Any]:
    """Per prompt × version × persona: generations, tokens, cost, p50/p95 latency, error rate,
    the mean of each score; and per prompt × persona, the best version on ``score``
    (``quality_gate`` when present, else the first score by name). ``prompt``: that prompt's
    versions only; ``environment``, ``release``: generations of traces recorded there only.

    Sums are SQLite's, from the prompt index alone; one more pass over that index, in its
    order (prompt, version, persona), gives each group's latencies and the scores of its
    generations (their own, their stage's, their trace's).
    """
    conditions = ["o.type = 'generation'", "o.prompt_name IS NOT NULL"]
    params: list[Any] = []
    for column, value in (("o.prompt_name", prompt), ("o.persona", persona)):
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    if since_ns is not None:
        conditions.append("o.start_ns >= ?")
        params.append(since_ns)
    deployment, values = Filters(environment=environment, release=release).on_deployment(
        "o.trace_id"
    )
    conditions, params = [*conditions, *deployment], params + values
    connection.execute("BEGIN")  # one snapshot for both passes (a deferred read)
    try:
        groups = _versions(connection, " AND ".join(conditions), params, since_ns)
    finally:
        connection.execute("COMMIT")
    names = sorted({name for group in groups.values() for name in group.scores})
    chosen = score or (QUALITY_GATE if QUALITY_GATE in names else (names[0] if names else None))
    rows_out = []
    for (name, version, who), group in sorted(
        groups.items(), key=lambda item: (item[0][0], item[0][2] or "", item[0][1] or 0)
    ):
        p50 = percentile(group.latencies, 0.50)
        p95 = percentile(group.latencies, 0.95)
        rows_out.append(
            {
                "prompt": name,
                "version": version,
                "persona": who,
                "generations": group.generations,
                "total_tokens": group.total_tokens,
                "cost_usd": group.cost_usd,
                "cost_unknown": group.cost_unknown,
                "errors": group.errors,
                "error_rate": round(group.errors / group.generations, 6),
                "p50_ms": None if p50 is None else round(p50 / 1e6, 3),
                "p95_ms": None if p95 is None else round(p95 / 1e6, 3),
                "scores": {key: group.scores[key].as_json() for key in sorted(group.scores)},
            }
        )
    return {
        "score": chosen,
        "min_samples": min_samples,
        "rows": rows_out,
        "best": _best_versions(groups, chosen, min_samples),
    }


def _best_versions(
    groups: dict[tuple[str, int, str], _Version], score: str | None, min_samples: int
) -> list[dict[str, Any]]:
    """Per prompt × persona, which version scores best on ``score`` (see the module docs)."""
    by_pair: dict[tuple[str, str], list[tuple[int, Mean]]] = {}
    for (name, version, who), group in groups.items():
        by_pair.setdefault((name, who), []).append((version, group.scores.get(score or "", Mean())))
    answers = []
    for (name, who), versions in sorted(
        by_pair.items(), key=lambda item: (item[0][0], item[0][1] or "")
    ):
        competing = sorted(
            ((v, m) for v, m in versions if m.n >= min_samples),
            key=lambda vm: (-(vm[1].mean or 0.0), vm[0]),
        )
        answer: dict[str, Any] = {
            "prompt": name,
            "persona": who,
            "score": score,
            "versions": len(versions),
            "best_version": None,
            "verdict": "",
        }
        if score is None:
            answer["verdict"] = "no scores"
        elif not competing:
            answer["verdict"] = f"too few samples (each version needs {min_samples} scored)"
        else:
            top_version, top = competing[0]
            rivals = competing[1:]
            clear = all(
                (top.mean or 0.0) - (rival.mean or 0.0)
                > Z_95 * math.hypot(top.standard_error, rival.standard_error)
                for _, rival in rivals
            )
            if len(competing) < len(versions) and not rivals:
                answer["best_version"] = top_version
                answer["verdict"] = "only version with enough samples"
            elif clear:
                answer["best_version"] = top_version
                answer["verdict"] = "best" if rivals else "only version"
            else:
                answer["verdict"] = "too close to tell"
        answers.append(answer)
    return answers
