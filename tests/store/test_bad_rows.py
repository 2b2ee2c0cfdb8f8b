"""A span the store cannot take costs that span, never its batch — and is counted exactly."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from hypertool.instrumentation.export.delivery import DeliveryProcessor
from hypertool.instrumentation.store import StoreExporter, TraceStore
from support.store_seed import readable_span

BAD = "\ud800"  # a lone surrogate: SQLite cannot bind it


def batch(count: int, bad: Sequence[int]) -> list[ReadableSpan]:
    """``count`` spans of one trace (the first its root); those in ``bad`` cannot be stored:
    text SQLite cannot encode, and a number too large for it.
    """
    spans = []
    for number in range(count):
        attributes: dict[str, object] = {"langfuse.observation.type": "span", "n": number}
        if number in bad and number % 2:
            attributes["note"] = f"bad {BAD}"
        elif number in bad:
            attributes["langfuse.observation.type"] = "generation"
            attributes["gen_ai.usage.input_tokens"] = 2**70  # past SQLite's 64-bit integers
            attributes["gen_ai.usage.output_tokens"] = 1
        spans.append(
            readable_span(
                0xABC,
                number + 1,
                parent=None if number == 0 else 1,
                name=f"span {number}",
                attributes=attributes,
            )
        )
    return spans


def stored_names(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM observations")}


def test_a_bad_row_costs_that_row_only(tmp_path: Path) -> None:
    path = tmp_path / "traces.db"
    spans = batch(41, bad=[7, 20])
    with TraceStore(path) as store:
        assert store.write_batch(spans).rejected == 2
    assert stored_names(path) == {f"span {n}" for n in range(41)} - {"span 7", "span 20"}


def test_a_batch_of_good_rows_is_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "traces.db"
    with TraceStore(path) as store:
        assert store.write_spans(batch(41, bad=[])) == 41
    assert len(stored_names(path)) == 41


def test_the_exporter_reports_partial_batches(tmp_path: Path) -> None:
    exporter = StoreExporter(tmp_path / "traces.db")
    try:
        assert exporter.export_partial(batch(10, bad=[3])) == 1
        assert exporter.export(batch(10, bad=[])) is SpanExportResult.SUCCESS
        # The plain SpanExporter API cannot say "partly": not everything, so FAILURE.
        assert exporter.export(batch(10, bad=[5])) is SpanExportResult.FAILURE
        assert (exporter.exported_spans, exporter.rejected_spans) == (9 + 10 + 9, 2)
        assert exporter.failed_batches == 0  # the store itself never failed
    finally:
        exporter.shutdown()


def test_delivery_counts_exactly_the_spans_left_out(tmp_path: Path) -> None:
    """delivered + dropped = made, when a batch is partly written."""
    told: list[tuple[str, int]] = []
    processor = DeliveryProcessor(
        "store",
        StoreExporter(tmp_path / "traces.db"),
        max_batch_size=16,
        on_drop=[lambda sink, count: told.append((sink, count))],
    )
    made = batch(50, bad=[4, 17, 18, 33, 49])
    for span in made:
        processor.on_end(span)
    assert processor.flush(5.0) is False  # something was dropped since the last flush
    processor.close(5.0)
    assert (processor.exported, processor.dropped) == (45, 5)
    assert sum(count for _, count in told) == 5 and {sink for sink, _ in told} == {"store"}
    assert len(stored_names(tmp_path / "traces.db")) == 45
