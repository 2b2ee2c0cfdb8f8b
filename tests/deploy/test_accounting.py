"""Per sink, delivered + dropped = made, exactly, also for the batch in flight when shutdown's
time runs out."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from hypertool.instrumentation import LangfuseIntegration, ObservableLLM
from hypertool.instrumentation.export.delivery import DeliveryProcessor
from hypertool.instrumentation.store import TraceStore

CALLS = 100
DEADLINE_S = 0.5


def llm(prompt: str) -> dict[str, object]:
    return {"choices": [{"message": {"content": "ok"}}], "usage": {"prompt_tokens": 2}}


def processor(integration: LangfuseIntegration, sink: str) -> DeliveryProcessor:
    assert integration.pipeline is not None
    return next(p for p in integration.pipeline.processors if p.sink == sink)


def wait_for_thread_end(name: str, timeout: float = 10.0) -> None:
    # The sink's span export thread, by its exact name: not its score thread (``…-scores``),
    # which lives as long as its integration.
    deadline = time.monotonic() + timeout
    while any(t.name == name for t in threading.enumerate()):
        assert time.monotonic() < deadline, f"{name} still running"
        time.sleep(0.01)


def test_store_batch_finishing_after_the_deadline_is_counted_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "traces.db"
    monkeypatch.setenv("HYPERTOOL_STORE", str(path))
    integration = LangfuseIntegration()
    observed = ObservableLLM(llm, model="gpt-4", langfuse=integration, persona="acct")
    observed("first")
    assert integration.flush(5)  # the file exists, one generation in it
    # Another process's writer holds the store until just after shutdown's deadline: the
    # batch is in the exporter's hands (waiting for the lock) when the time runs out.
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    for i in range(CALLS):
        observed(f"late-{i}")
    closed = threading.Event()

    def release_after_close() -> None:
        closed.wait(10)
        blocker.execute("COMMIT")  # the exporter's write now goes ahead...

    releaser = threading.Thread(target=release_after_close)
    releaser.start()
    started = time.monotonic()
    assert integration.shutdown(DEADLINE_S) is False
    took = time.monotonic() - started
    closed.set()
    releaser.join(10)
    wait_for_thread_end("hypertool-export-store")  # ...and ends: rolled back, not committed
    blocker.close()

    store = processor(integration, "store")
    with TraceStore(path, create=False) as opened:
        kept = int(opened.stats()["generations"])
    assert took < DEADLINE_S + 0.5
    assert store.dropped == CALLS  # the whole batch in flight, counted once
    assert store.exported == 1
    assert store.exported + store.dropped == CALLS + 1
    # What the store holds is exactly what was counted as delivered: the late batch is not
    # in it, so no span is both dropped and delivered.
    assert kept == store.exported


class AnswersLate(SpanExporter):
    """Answers SUCCESS for a batch only once ``release`` is set (after the deadline)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.received = 0
        self.done = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(10)
        self.received += len(spans)
        self.done.set()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def test_a_late_answer_is_not_counted_again() -> None:
    exporter = AnswersLate()
    integration = LangfuseIntegration(exporters={"late": exporter})
    observed = ObservableLLM(llm, model="gpt-4", langfuse=integration, persona="acct")
    for i in range(CALLS):
        observed(f"late-{i}")
    assert integration.shutdown(DEADLINE_S) is False
    late = processor(integration, "late")
    counted_at_close = (late.exported, late.dropped)
    exporter.release.set()  # the export answers SUCCESS just after the deadline
    assert exporter.done.wait(10)
    wait_for_thread_end("hypertool-export-late")
    # Decided once, at the deadline: dropped; the late SUCCESS changes nothing.
    assert counted_at_close == (0, CALLS)
    assert (late.exported, late.dropped) == (0, CALLS)
    assert exporter.received == CALLS  # a network sink may still keep what it answered late
