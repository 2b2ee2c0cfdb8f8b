"""What each writer stored, per persona and UTC day: how processes sharing a store tell their
own budget usage from the others', in one snapshot.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from pathlib import Path

import pytest

from hypertool.instrumentation.budget import period_start_ns
from hypertool.instrumentation.store import SCHEMA_VERSION, StoreExporter, TraceStore, writes
from hypertool.instrumentation.store import exporter as exporter_module
from hypertool.instrumentation.store.rows import OBSERVATION_COLUMNS
from hypertool.instrumentation.store.schema import APPLICATION_ID, MIGRATIONS
from support.store_seed import Gen, generation_attributes, readable_span

_ids = itertools.count(1)
TODAY = period_start_ns("day")


def generations(persona: str, count: int, tokens: int = 10, cost: float = 0.01) -> list[object]:
    attributes = generation_attributes(
        Gen("", persona, "gpt-4o", tokens // 2, tokens // 2, cost, 1, 1), "t"
    )
    return [readable_span(next(_ids), next(_ids), attributes=attributes) for _ in range(count)]


def test_row_positions_match_the_columns() -> None:
    columns = ("type", "persona", "total_tokens", "cost_usd", "start_ns")
    positions = (writes._TYPE, writes._PERSONA, writes._TOTAL)
    positions += (writes._COST, writes._START)
    assert positions == tuple(OBSERVATION_COLUMNS.index(column) for column in columns)


def test_each_process_sees_the_others_and_not_itself(tmp_path: Path) -> None:
    path = tmp_path / "traces.db"
    first, second = StoreExporter(path), StoreExporter(path)
    try:
        assert first.writer != second.writer
        assert first.export_partial(generations("shared", 3)) == 0
        assert second.export_partial(generations("shared", 5)) == 0
        assert first.export_partial(generations("other", 7)) == 0
        assert first.spent_by_others("shared", TODAY) == (50, pytest.approx(0.05), 5)
        assert second.spent_by_others("shared", TODAY) == (30, pytest.approx(0.03), 3)
        assert second.spent_by_others("other", TODAY) == (70, pytest.approx(0.07), 7)
        assert first.usage_since("shared", TODAY) == (80, pytest.approx(0.08))
    finally:
        first.shutdown()
        second.shutdown()
    later = StoreExporter(path)  # a restart: everything before is someone else's
    try:
        assert later.spent_by_others("shared", TODAY)[0] == 80
    finally:
        later.shutdown()


def test_spans_left_out_are_not_counted_as_written(tmp_path: Path) -> None:
    path = tmp_path / "traces.db"
    bad = generations("shared", 1)
    bad[0]._attributes = {**bad[0].attributes, "note": "\ud800"}  # type: ignore[attr-defined]
    exporter, reader = StoreExporter(path), StoreExporter(path)
    try:
        assert exporter.export_partial([*generations("shared", 4), *bad]) == 1
        assert reader.spent_by_others("shared", TODAY)[0] == 40
        assert exporter.spent_by_others("shared", TODAY)[0] == 0
    finally:
        exporter.shutdown()
        reader.shutdown()


def test_a_forked_child_is_another_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = StoreExporter(tmp_path / "traces.db")
    try:
        parent = exporter.writer
        monkeypatch.setattr(exporter_module.os, "getpid", lambda: -1)
        assert exporter.writer != parent  # same object, another process
    finally:
        exporter.shutdown()


def test_version_2_store_migrates_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "traces.db"
    connection = sqlite3.connect(path, isolation_level=None)
    for statements in MIGRATIONS[:2]:
        for statement in statements:
            connection.execute(statement)
    connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    connection.execute("PRAGMA user_version = 2")
    connection.close()
    with TraceStore(path) as store:
        store.write_spans(generations("shared", 2))  # type: ignore[arg-type]
        assert store.stats()["schema_version"] == SCHEMA_VERSION
        assert store.spent_by_others("shared", TODAY, "nobody") == (20, pytest.approx(0.02), 2)


def test_retention_deletes_old_writer_usage(tmp_path: Path) -> None:
    path = tmp_path / "traces.db"
    old = time.time_ns() - 40 * 86_400 * 10**9
    attributes = generation_attributes(Gen("", "p", "m", 1, 1, None, 1, 1), "t")
    with TraceStore(path, retention_days=0) as store:
        store.write_batch([readable_span(1, 1, attributes=attributes, start_ns=old)], "w")
    with TraceStore(path, retention_days=30) as store:  # purges on open
        pass
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("SELECT count(*) FROM writer_usage").fetchone() == (0,)
    finally:
        connection.close()
