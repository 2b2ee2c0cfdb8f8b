"""The store file's life: deleted or moved while in use, someone else's database, read-only
readers, and a relative path.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from hypertool.instrumentation import LangfuseIntegration, ObservableLLM
from hypertool.instrumentation.cli import main
from hypertool.instrumentation.store import HYPERTOOL_STORE, SCHEMA_VERSION, StoreError, TraceStore
from hypertool.instrumentation.store.schema import APPLICATION_ID, MIGRATIONS
from support.store_seed import DAY, Gen, seed_store


def count(path: Path, sql: str = "SELECT count(*) FROM observations") -> int:
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute(sql).fetchone()[0])
    finally:
        connection.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Writer:
    """An integration writing to the store at ``path`` through the environment."""

    def __init__(self, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(HYPERTOOL_STORE, str(path))
        self.registry = CollectorRegistry()
        self.integration = LangfuseIntegration(metrics_registry=self.registry)
        self.llm = ObservableLLM(lambda p: "ok", model="gpt-4o", langfuse=self.integration)

    def calls(self, n: int) -> None:
        for _ in range(n):
            self.llm("prompt", persona="backend-engineer")

    @property
    def dropped(self) -> float | None:
        return self.registry.get_sample_value(
            "hypertool_export_dropped_spans_total", {"sink": "store"}
        )


@pytest.fixture
def writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Writer]:
    made = Writer(tmp_path / "data" / "traces.db", monkeypatch)
    yield made
    made.integration.shutdown(0)


def moved_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "deleted, moved or replaced" in r.message]


# -- deleted, moved, replaced ------------------------------------------------------------


def test_a_deleted_store_is_recreated_with_one_warning(
    writer: Writer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "data" / "traces.db"
    writer.calls(10)
    assert writer.integration.flush(5) is True and count(path) == 10
    path.unlink()  # the WAL and shared memory files stay, held by the open connection
    with caplog.at_level(logging.WARNING):
        for _ in range(4):
            writer.calls(250)
            assert writer.integration.flush(5) is True  # and true: they are all in the file
    assert count(path) == 1_000  # never "exported" into the unlinked file
    assert len(moved_warnings(caplog)) == 1
    assert writer.dropped == 0.0


def test_scores_follow_a_deleted_store(
    writer: Writer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "data" / "traces.db"
    scores = "SELECT count(*) FROM scores"
    trace = writer.integration.start_trace("t", "backend-engineer")
    writer.integration.end_trace(trace)
    writer.integration.score(trace, "helpful", 1.0)
    assert writer.integration.flush(5) is True and count(path, scores) == 1
    path.unlink()
    with caplog.at_level(logging.WARNING):
        writer.integration.score(trace, "helpful", 0.5)  # a score alone, no span with it
        assert writer.integration.flush(5) is True
    assert count(path, scores) == 1  # never "exported" into the unlinked file
    assert len(moved_warnings(caplog)) == 1


def test_a_whole_deleted_directory_is_recreated(writer: Writer, tmp_path: Path) -> None:
    path = tmp_path / "data" / "traces.db"
    writer.calls(3)
    assert writer.integration.flush(5)
    for leftover in path.parent.iterdir():
        leftover.unlink()
    path.parent.rmdir()
    writer.calls(5)
    assert writer.integration.flush(5) is True
    assert count(path) == 5


def test_a_moved_store_keeps_what_it_had_and_a_new_one_takes_the_rest(
    writer: Writer, tmp_path: Path
) -> None:
    path = tmp_path / "data" / "traces.db"
    elsewhere = tmp_path / "archive.db"
    writer.calls(7)
    assert writer.integration.flush(5)
    path.rename(elsewhere)
    writer.calls(11)
    assert writer.integration.flush(5) is True
    writer.integration.shutdown(5)
    assert (count(elsewhere), count(path)) == (7, 11)


def test_a_replaced_store_file_is_written_from_then_on(writer: Writer, tmp_path: Path) -> None:
    path = tmp_path / "data" / "traces.db"
    writer.calls(2)
    assert writer.integration.flush(5)
    other = tmp_path / "other.db"
    TraceStore(other).close()
    os.replace(other, path)  # another store put in its place
    writer.calls(3)
    assert writer.integration.flush(5) is True
    assert count(path) == 3


def test_the_budget_history_reader_follows_a_moved_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYPERTOOL_BUDGET_PERIOD", "day")
    made = Writer(tmp_path / "traces.db", monkeypatch)
    try:
        made.calls(1)
        assert made.integration.flush(5)
        store = made.integration.pipeline.processors[0]._exporter  # type: ignore[union-attr]
        assert store.usage_since("backend-engineer")[0] > 0
        (tmp_path / "traces.db").rename(tmp_path / "gone.db")
        assert store.usage_since("backend-engineer") == (0, 0.0)  # the new, empty file
    finally:
        made.integration.shutdown(0)


# -- someone else's database -------------------------------------------------------------


@pytest.fixture
def foreign(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
    connection.execute("INSERT INTO orders (total) VALUES (9.5)")
    connection.commit()
    connection.close()
    return path


def journal_mode(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        return str(connection.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        connection.close()


def test_a_foreign_database_is_recognised_before_anything_changes(
    foreign: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = digest(foreign)
    for command in ("report", "traces", "personas", "generations"):
        assert main(["--store", str(foreign), command]) == 1
        assert "not a hypertool trace store" in capsys.readouterr().err
    with pytest.raises(StoreError, match="not a hypertool trace store"):
        TraceStore(foreign)
    made = Writer(foreign, monkeypatch)
    try:
        made.calls(3)
        assert made.integration.flush(5) is False  # refused, and counted
        assert made.dropped == 3.0
    finally:
        made.integration.shutdown(0)
    assert digest(foreign) == before and journal_mode(foreign) == "delete"
    assert sorted(p.name for p in foreign.parent.iterdir()) == ["app.db"]


# -- read-only readers -------------------------------------------------------------------


def test_the_cli_never_changes_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Rows older than the retention stay: a reader does not purge.
    old = Gen("", "backend-engineer", "gpt-4o", 1, 2, None, 90 * 24 * 60, 1)
    path = seed_store(tmp_path / "traces.db", traces=[], generations=[old]).path
    assert count(path) == 1
    before = digest(path)
    for command in ("report", "traces", "personas", "generations", "doctor"):
        main(["--store", str(path), command, "--json"])
    capsys.readouterr()
    assert count(path) == 1 and digest(path) == before


def version_1_store(path: Path) -> Path:
    connection = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0]:
        connection.execute(statement)
    connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    connection.execute("PRAGMA user_version = 1")
    connection.close()
    return path


def test_an_older_store_is_migrated_for_a_reader_as_its_next_writer_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = version_1_store(tmp_path / "old.db")
    assert main(["--store", str(path), "report", "--json"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert count(path, "PRAGMA user_version") == SCHEMA_VERSION


def test_a_read_only_store_reads_while_a_writer_writes(writer: Writer, tmp_path: Path) -> None:
    path = tmp_path / "data" / "traces.db"
    writer.calls(5)
    assert writer.integration.flush(5)
    with TraceStore(path, read_only=True) as reader:
        assert reader.report()[0]["generations"] == 5
        writer.calls(5)
        assert writer.integration.flush(5)
        assert reader.report()[0]["generations"] == 10
        with pytest.raises(StoreError):
            reader.purge(time.time_ns() + 365 * DAY)  # a reader never deletes
    assert count(path) == 10


# -- a relative path ---------------------------------------------------------------------


def test_a_relative_store_path_is_resolved_when_the_integration_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, later = tmp_path / "first", tmp_path / "later"
    first.mkdir()
    later.mkdir()
    monkeypatch.chdir(first)
    made = Writer(Path("rel") / "traces.db", monkeypatch)
    try:
        monkeypatch.chdir(later)  # after building: the store stays where it was resolved
        made.calls(4)
        assert made.integration.flush(5) is True
    finally:
        made.integration.shutdown(0)
    assert count(first / "rel" / "traces.db") == 4
    assert not (later / "rel").exists()
