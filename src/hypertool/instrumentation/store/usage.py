"""What a persona used: the tokens, cost and calls of its generations since a moment, as
budgets ask (one process's own writes set apart, for budgets shared between processes).
"""

from __future__ import annotations

import sqlite3

DAY_NS = 86_400 * 10**9


def day_start(ns: int) -> int:
    """Start of the UTC day of ``ns`` (budget periods start on UTC day boundaries)."""
    return ns - ns % DAY_NS


def usage_since(
    connection: sqlite3.Connection, persona: str, since_ns: int | None
) -> tuple[int, float]:
    """Tokens and known cost (USD) of ``persona``'s generations since ``since_ns``."""
    tokens, cost, _ = spent_since(connection, persona, since_ns)
    return tokens, cost


def spent_since(
    connection: sqlite3.Connection, persona: str, since_ns: int | None
) -> tuple[int, float, int]:
    """Tokens, known cost (USD) and number of ``persona``'s generations since ``since_ns``."""
    where, params = ("", []) if since_ns is None else (" AND start_ns >= ?", [since_ns])
    tokens, cost, calls = connection.execute(
        "SELECT coalesce(sum(total_tokens), 0), coalesce(sum(cost_usd), 0.0), count(*) "
        f"FROM observations WHERE persona = ? AND type = 'generation'{where}",
        [persona, *params],
    ).fetchone()
    return int(tokens), float(cost), int(calls)


def spent_by_others(
    connection: sqlite3.Connection, persona: str, since_ns: int, writer: str
) -> tuple[int, float, int]:
    """What ``persona``'s generations since ``since_ns`` used, less what ``writer`` stored:
    tokens, known cost (USD), calls. One statement, so one snapshot of both.
    """
    found = connection.execute(
        """
        SELECT
            (SELECT coalesce(sum(total_tokens), 0) FROM observations
             WHERE persona = :persona AND type = 'generation' AND start_ns >= :since),
            (SELECT coalesce(sum(cost_usd), 0.0) FROM observations
             WHERE persona = :persona AND type = 'generation' AND start_ns >= :since),
            (SELECT count(*) FROM observations
             WHERE persona = :persona AND type = 'generation' AND start_ns >= :since),
            (SELECT coalesce(sum(tokens), 0) FROM writer_usage
             WHERE writer = :writer AND persona = :persona AND day_ns >= :day),
            (SELECT coalesce(sum(cost_usd), 0.0) FROM writer_usage
             WHERE writer = :writer AND persona = :persona AND day_ns >= :day),
            (SELECT coalesce(sum(calls), 0) FROM writer_usage
             WHERE writer = :writer AND persona = :persona AND day_ns >= :day)
        """,
        {"persona": persona, "since": since_ns, "writer": writer, "day": day_start(since_ns)},
    ).fetchone()
    tokens, cost, calls, own_tokens, own_cost, own_calls = found
    return (
        max(int(tokens) - int(own_tokens), 0),
        max(float(cost) - float(own_cost), 0.0),
        max(int(calls) - int(own_calls), 0),
    )
