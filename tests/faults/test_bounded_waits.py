"""The waits the application may be made to do are bounded, and what they give up is counted.

- ``flush(timeout)`` and ``shutdown(timeout)`` include recording the calls still handed over:
  a large backlog (here: a slow ``mask=``) cannot make them overrun the timeout, and what
  shutdown leaves unrecorded is counted as dropped by every sink.
- Every sink is flushed under one shared deadline at once: a hanging sink does not eat the
  local store's time.
- Drop warnings are rate limited per interval, yet later drops are reported again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from hypertool.instrumentation import LangfuseIntegration, ObservableLLM
from hypertool.instrumentation.export import delivery as _delivery
from hypertool.instrumentation.recording.deferred import DeferredWork

DROPPED = "hypertool_export_dropped_spans_total"


class StuckExporter(SpanExporter):
    """Blocks in ``export`` like a hanging endpoint, until released (bounded)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait(10.0)
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        """Does not release: a stuck HTTP request is not ended by shutting the client down."""


@pytest.fixture
def stuck() -> Iterator[StuckExporter]:
    exporter = StuckExporter()
    yield exporter
    exporter.release.set()


def dropped(registry: CollectorRegistry, sink: str) -> float:
    return registry.get_sample_value(DROPPED, {"sink": sink}) or 0.0


def test_drain_is_bounded_and_what_is_left_can_be_counted() -> None:
    work = DeferredWork(max_pending=1000)
    ran: list[int] = []
    release = threading.Event()

    def slow(i: int) -> None:
        release.wait(0.02)
        ran.append(i)

    for i in range(100):  # 100 x 20 ms = 2 s of work
        work.defer(slow, i)
    started = time.monotonic()
    assert work.drain(0.2) is False
    assert time.monotonic() - started < 0.4
    release.set()  # the rest runs fast now
    assert work.drain(5.0) is True
    assert sorted(ran) == list(range(100))  # each item ran once, none lost
    assert len(work) == 0

    release.clear()
    for i in range(50):
        work.defer(slow, 1000 + i)
    left = work.discard()
    release.set()
    assert work.drain(1.0) is True
    # What was discarded never ran; what ran (the recorder thread may take one or two before
    # the discard) plus what was discarded is everything.
    ran_after = [i for i in ran if i >= 1000]
    assert left + len(ran_after) == 50
    assert left >= 45


def test_flush_and_shutdown_are_bounded_with_a_recording_backlog() -> None:
    """2,000 calls whose recording costs >= 2 ms each (a slow mask): 4 s of backlog."""
    calls_made = 2000

    def slow_mask(text: str) -> str:
        time.sleep(0.001)
        return text

    registry = CollectorRegistry()
    memory = InMemorySpanExporter()
    integration = LangfuseIntegration(
        exporters={"memory": memory}, mask=slow_mask, metrics_registry=registry
    )
    llm = ObservableLLM(lambda p: f"echo {p}", model="gpt-4", langfuse=integration)
    started = time.perf_counter()
    results = [llm(f"prompt {i}", persona="backlog-tester") for i in range(calls_made)]
    calls_s = time.perf_counter() - started
    assert results == [f"echo prompt {i}" for i in range(calls_made)]
    # The mask runs on the recorder thread, never in the call: 2,000 calls are far quicker
    # than the >= 4 s their recording takes.
    assert calls_s < 1.0, calls_s

    started = time.perf_counter()
    assert integration.flush(timeout=0.5) is False  # not everything recorded, and it says so
    assert time.perf_counter() - started < 0.8

    started = time.perf_counter()
    assert integration.shutdown(timeout=0.5) is False
    assert time.perf_counter() - started < 0.8

    time.sleep(0.05)  # an item the recorder thread was running may finish and be counted
    exported = len(memory.get_finished_spans())
    assert 0 < exported < calls_made
    # Nothing silently lost: what the sink got plus what was counted is every generation.
    assert exported + dropped(registry, "memory") == calls_made


def test_a_hanging_sink_does_not_starve_the_others_on_flush(stuck: StuckExporter) -> None:
    memory = InMemorySpanExporter()
    registry = CollectorRegistry()
    # The stuck sink comes first: flushed one after the other, it would eat the whole timeout.
    integration = LangfuseIntegration(
        exporters={"stuck": stuck, "memory": memory}, metrics_registry=registry
    )
    trace = integration.start_trace("t", "starve-tester")
    for i in range(100):
        integration.create_generation(trace, f"g{i}", "gpt-4", "p", "c")
    integration.end_trace(trace)
    started = time.perf_counter()
    assert integration.flush(timeout=1.0) is False
    assert time.perf_counter() - started < 1.3
    assert stuck.entered.is_set()
    assert len(memory.get_finished_spans()) == 101  # flushed while the other sink hung

    for i in range(100):
        integration.create_generation(trace, f"late{i}", "gpt-4", "p", "c")
    started = time.perf_counter()
    assert integration.shutdown(timeout=1.0) is False
    assert time.perf_counter() - started < 1.3
    assert len(memory.get_finished_spans()) == 201
    assert dropped(registry, "memory") == 0
    # The stuck sink lost everything, and counted it.
    assert dropped(registry, "stuck") == 201


def test_drop_warnings_are_rate_limited_yet_repeated(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With the interval shortened to 0.2 s: drops every 10 ms for 1 s give one warning per
    interval (not one per drop), and drops after an interval are reported again."""
    interval = 0.2
    monkeypatch.setattr(_delivery, "_REPORT_INTERVAL_S", interval)
    caplog.set_level(logging.WARNING, logger="hypertool.instrumentation")
    processor = _delivery.DeliveryProcessor(
        "faulty", InMemorySpanExporter(), max_queue_size=0, schedule_delay=60
    )
    try:
        drops = 0
        started = time.monotonic()
        while time.monotonic() - started < 1.0:
            processor.on_end(None)  # type: ignore[arg-type]  # a full queue drops it unseen
            drops += 1
            time.sleep(0.01)
        elapsed = time.monotonic() - started
    finally:
        processor.close(0)
    warnings = [r for r in caplog.records if "delivered to the faulty sink" in r.message]
    assert drops >= 50
    assert processor.dropped == drops
    # One at the first drop, then at most one per interval, plus the summary at close.
    assert 3 <= len(warnings) <= elapsed / interval + 2
    # The counts reported add up to every drop.
    reported = sum(int(r.message.split()[0]) for r in warnings)
    assert reported == drops
