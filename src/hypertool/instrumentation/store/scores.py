"""Scores as records: the row a score is stored as, scores listed newest first (``hypertool
scores``, the web UI's Scores page), and every score of a trace (put on its tree).

Their means per group and per prompt version are :mod:`.quality`'s.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from hypertool.instrumentation.store.filters import Filters
from hypertool.instrumentation.store.rows import MultiRow, Row, cap
from hypertool.instrumentation.store.values import iso

if TYPE_CHECKING:
    from hypertool.instrumentation.model.scores import Score

SCORE_COLUMNS = (
    "score_id",
    "trace_id",
    "observation_id",
    "name",
    "data_type",
    "value",
    "string_value",
    "persona",
    "chatmode",
    "workflow",
    "stage",
    "created_ns",
    "comment",
    "metadata",
)
INSERT_SCORE = MultiRow(
    f"INSERT OR REPLACE INTO scores ({', '.join(SCORE_COLUMNS)}) VALUES",
    f"({', '.join('?' * len(SCORE_COLUMNS))})",
)
_SCORE_FIELDS = ", ".join(f"s.{column}" for column in SCORE_COLUMNS)


def score_row(score: Score, max_chars: int) -> Row:
    """The row of ``score`` (the same score id written twice is stored once)."""
    numeric = score.numeric
    return (
        score.score_id,
        score.trace_id,
        score.observation_id,
        score.name,
        score.data_type,
        numeric,
        None if numeric is not None else str(score.value),
        score.persona or None,
        score.chatmode or None,
        score.workflow or None,
        score.stage or None,
        score.timestamp_ns,
        cap(score.comment, max_chars),
        None if score.metadata is None else json.dumps(score.metadata, default=str),
    )


def _score(row: Sequence[Any]) -> dict[str, Any]:
    (score_id, trace_id, observation_id, name, kind, value, text, persona, chatmode) = row[:9]
    workflow, stage, created, comment, metadata = row[9:14]
    return {
        "score_id": score_id,
        "trace_id": trace_id,
        "observation_id": observation_id,
        "name": name,
        "data_type": kind,
        "value": (bool(value) if kind == "BOOLEAN" else value) if text is None else text,
        "persona": persona,
        "chatmode": chatmode,
        "workflow": workflow,
        "stage": stage,
        "created": iso(created),
        "created_ns": created,
        "comment": comment,
        "metadata": json.loads(metadata) if metadata else None,
    }


def _matching(
    name: str | None,
    persona: str | None,
    since_ns: int | None,
    environment: str | None,
    release: str | None,
) -> tuple[str, list[Any]]:
    conditions: list[str] = ["1 = 1"]
    params: list[Any] = []
    for column, value in (("s.name", name), ("s.persona", persona)):
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    if since_ns is not None:
        conditions.append("s.created_ns >= ?")
        params.append(since_ns)
    # A score is of its trace's deployment, as in the report's score means.
    deployment, values = Filters(environment=environment, release=release).on_deployment(
        "s.trace_id"
    )
    return " AND ".join([*conditions, *deployment]), params + values


def scores(
    connection: sqlite3.Connection,
    *,
    name: str | None,
    persona: str | None,
    since_ns: int | None,
    limit: int,
    offset: int = 0,
    environment: str | None = None,
    release: str | None = None,
) -> list[dict[str, Any]]:
    """Scores of ``name`` and ``persona`` given since ``since_ns``, of traces recorded in
    ``environment`` and ``release`` (each when not None), newest first, ``limit`` of them after
    the first ``offset``.
    """
    where, params = _matching(name, persona, since_ns, environment, release)
    rows = connection.execute(
        f"SELECT {_SCORE_FIELDS} FROM scores s WHERE {where} "
        "ORDER BY s.created_ns DESC, s.score_id LIMIT ? OFFSET ?",
        [*params, max(int(limit), 0), max(int(offset), 0)],
    )
    return [_score(row) for row in rows]


def count_scores(
    connection: sqlite3.Connection,
    *,
    name: str | None,
    persona: str | None,
    since_ns: int | None,
    environment: str | None = None,
    release: str | None = None,
) -> int:
    """How many scores :func:`scores` has to page through."""
    where, params = _matching(name, persona, since_ns, environment, release)
    return int(
        connection.execute(f"SELECT count(*) FROM scores s WHERE {where}", params).fetchone()[0]
    )


def trace_scores(connection: sqlite3.Connection, *trace_ids: str) -> list[dict[str, Any]]:
    """Every score of these traces (of each trace itself and of its observations), oldest
    first.
    """
    rows = connection.execute(
        f"SELECT {_SCORE_FIELDS} FROM scores s "
        f"WHERE s.trace_id IN ({', '.join('?' * len(trace_ids))}) "
        "ORDER BY s.created_ns, s.score_id",
        trace_ids,
    )
    return [_score(row) for row in rows]


def walk(nodes: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every node of a trace tree, depth first."""
    for node in nodes:
        yield node
        yield from walk(node["children"])
