"""What the store holds: the values there are to filter by, and a version that changes with it."""

from __future__ import annotations

import sqlite3
from typing import Any


def data_version(connection: sqlite3.Connection, trace_id: str | None = None) -> int:
    """A number that changes whenever spans or scores are stored (of ``trace_id`` only, when
    given).

    Every stored span or score takes a new, higher rowid in its table (a score given again
    replaces its row with a new one); pages compare the sum to know when to refresh.
    """
    if trace_id is None:
        row = connection.execute(
            "SELECT (SELECT coalesce(max(rowid), 0) FROM observations) "
            "+ (SELECT coalesce(max(rowid), 0) FROM scores)"
        ).fetchone()
    else:
        row = connection.execute(
            "SELECT (SELECT coalesce(max(rowid), 0) FROM observations WHERE trace_id = ?1) "
            "+ (SELECT coalesce(max(rowid), 0) FROM scores WHERE trace_id = ?1)",
            (trace_id,),
        ).fetchone()
    return int(row[0] or 0)


def facets(connection: sqlite3.Connection) -> dict[str, list[Any]]:
    """The distinct personas, chatmodes, workflows, models and score names stored, sorted (no
    None).
    """

    def distinct(sql: str) -> list[Any]:
        return sorted(row[0] for row in connection.execute(sql) if row[0] is not None)

    return {
        # Each from an index or the (small) traces table, never the wide rows.
        "personas": distinct("SELECT DISTINCT persona FROM observations"),
        "chatmodes": distinct("SELECT DISTINCT chatmode FROM traces"),
        "workflows": distinct("SELECT DISTINCT workflow FROM traces"),
        "models": distinct("SELECT DISTINCT model FROM observations WHERE type = 'generation'"),
        "scores": distinct("SELECT DISTINCT name FROM scores"),
    }
