"""A store opened read-only (the web UI) never writes; an older store is migrated first."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

import pytest

from hypertool.instrumentation import semconv as attr
from hypertool.instrumentation.store import SCHEMA_VERSION, StoreError, TraceStore
from hypertool.instrumentation.store.schema import APPLICATION_ID, MIGRATIONS, connect_read_only
from support.store_seed import readable_span, seed_store


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_only_store_refuses_every_write(tmp_path: Path) -> None:
    seeded = seed_store(tmp_path / "traces.db")
    before = digest(seeded.path)
    with TraceStore(seeded.path, read_only=True) as store:
        assert store.report("persona")  # reads work
        with pytest.raises(StoreError, match="read-only"):
            store.write_spans([readable_span(1, 1)])
        with pytest.raises(StoreError, match="read-only"):
            store.purge()
    connection = connect_read_only(seeded.path, busy_timeout_ms=100)
    try:
        with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only|query_only"):
            connection.execute("DELETE FROM traces")
    finally:
        connection.close()
    assert digest(seeded.path) == before


def test_read_only_never_creates_a_store(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "traces.db"
    with pytest.raises(StoreError, match="no trace store"):
        TraceStore(missing, read_only=True)
    assert not missing.parent.exists()


def test_not_a_store_or_too_new(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE t (x)")
    with pytest.raises(StoreError, match="not a hypertool trace store"):
        TraceStore(other, read_only=True)
    newer = tmp_path / "newer.db"
    TraceStore(newer).close()
    with sqlite3.connect(newer) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        TraceStore(newer, read_only=True)


def test_older_store_is_migrated_then_read_with_its_first_tokens(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    start = time.time_ns() - 60 * 10**9
    metadata = {attr.COMPLETION_START_TIME: json.dumps("2030-01-02T03:04:05.250000Z")}
    with sqlite3.connect(path, isolation_level=None) as connection:
        for statements in MIGRATIONS[:2]:
            for statement in statements:
                connection.execute(statement)
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.execute("PRAGMA user_version = 2")
        connection.execute(
            "INSERT INTO observations (span_id, trace_id, type, name, persona, model, "
            "start_ns, end_ns, status, metadata) VALUES ('00000000000000aa', ?, 'generation', "
            "'llm', 'backend-engineer', 'gpt-4o', ?, ?, 'success', ?)",
            ("f" * 32, start, start + 10**9, json.dumps(metadata)),
        )
        # A row whose metadata is not JSON must not stop the migration.
        connection.execute(
            "INSERT INTO observations (span_id, trace_id, type, name, start_ns, end_ns, status, "
            "metadata) VALUES ('00000000000000bb', ?, 'generation', 'llm', ?, ?, 'success', ?)",
            ("e" * 32, start, start, f"{attr.COMPLETION_START_TIME} not json"),
        )
    with TraceStore(path, read_only=True) as store:
        assert store.stats()["schema_version"] == SCHEMA_VERSION
        rows = {row["span_id"]: row for row in store.generations(limit=10)}
    expected_ns = 1893553445250 * 10**6  # 2030-01-02T03:04:05.250Z
    assert rows["00000000000000aa"]["time_to_first_token_ms"] == pytest.approx(
        (expected_ns - start) / 1e6, abs=0.001
    )
    assert rows["00000000000000bb"]["time_to_first_token_ms"] is None
