"""Versions of local prompts: numbered 1, 2, 3… per name, a new one whenever the text (or type
or config) differs from the latest, so a generation made from a local prompt is linked to the
exact text it used, and old versions can be served again (``get_prompt(name, version=N)``).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from typing import Any

from hypertool.instrumentation.store.schema import in_transaction
from hypertool.instrumentation.store.values import iso


def digest(kind: str, prompt: str, config: str) -> str:
    """What identifies a version's content."""
    return hashlib.sha256(f"{kind}\0{prompt}\0{config}".encode()).hexdigest()


def record(connection: sqlite3.Connection, name: str, kind: str, prompt: str, config: str) -> int:
    """The version of this content of ``name``: the latest when unchanged, else a new one.

    ``prompt`` is the text, or the messages as JSON; ``config`` the config as JSON.
    """
    content = digest(kind, prompt, config)

    def work(conn: sqlite3.Connection) -> int:
        latest = conn.execute(
            "SELECT version, digest FROM prompt_versions WHERE name = ? "
            "ORDER BY version DESC LIMIT 1",
            (name,),
        ).fetchone()
        if latest is not None and latest[1] == content:
            return int(latest[0])
        version = 1 if latest is None else int(latest[0]) + 1
        conn.execute(
            "INSERT INTO prompt_versions (name, version, type, prompt, config, digest, "
            "created_ns) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, version, kind, prompt, config, content, time.time_ns()),
        )
        return version

    # Read first: the common case (unchanged) never takes the write lock.
    latest = connection.execute(
        "SELECT version, digest FROM prompt_versions WHERE name = ? ORDER BY version DESC LIMIT 1",
        (name,),
    ).fetchone()
    if latest is not None and latest[1] == content:
        return int(latest[0])
    return in_transaction(connection, work)


def _version(row: Any) -> dict[str, Any]:
    name, version, kind, prompt, config, created = row
    return {
        "name": name,
        "version": version,
        "type": kind,
        "prompt": prompt if kind == "text" else json.loads(prompt),
        "config": json.loads(config) if config else {},
        "created": iso(created),
    }


_FIELDS = "name, version, type, prompt, config, created_ns"


def get(connection: sqlite3.Connection, name: str, version: int | None) -> dict[str, Any] | None:
    """Version ``version`` of ``name`` (the latest when None), or None when there is none."""
    if version is None:
        row = connection.execute(
            f"SELECT {_FIELDS} FROM prompt_versions WHERE name = ? ORDER BY version DESC LIMIT 1",
            (name,),
        ).fetchone()
    else:
        row = connection.execute(
            f"SELECT {_FIELDS} FROM prompt_versions WHERE name = ? AND version = ?",
            (name, version),
        ).fetchone()
    return None if row is None else _version(row)


def listing(connection: sqlite3.Connection, name: str | None = None) -> list[dict[str, Any]]:
    """Every recorded version (of ``name`` only, when given), by name and version."""
    where, params = ("", ()) if name is None else (" WHERE name = ?", (name,))
    rows = connection.execute(
        f"SELECT {_FIELDS} FROM prompt_versions{where} ORDER BY name, version", params
    )
    return [_version(row) for row in rows]
