"""DeliveryProcessor: spans reach the exporter; every span that cannot is counted; waits bounded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Tracer

from hypertool.instrumentation.export.delivery import DeliveryProcessor

# Long enough that the background thread never exports on its own during a test.
IDLE = 60.0


class FakeExporter(SpanExporter):
    """Records what it is given; answers with ``result``."""

    def __init__(self, result: SpanExportResult = SpanExportResult.SUCCESS) -> None:
        self.result = result
        self.batches: list[list[str]] = []
        self.threads: list[str] = []
        self.shutdown_called = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.batches.append([span.name for span in spans])
        self.threads.append(threading.current_thread().name)
        return self.result

    def shutdown(self) -> None:
        self.shutdown_called = True

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    @property
    def names(self) -> list[str]:
        return [name for batch in self.batches for name in batch]


class BlockingExporter(FakeExporter):
    """Blocks in export until released (bounded), like a hanging endpoint."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait(10.0)
        return super().export(spans)


class RaisingExporter(FakeExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        super().export(spans)
        raise RuntimeError("exporter exploded")


class Drops:
    """An on_drop listener."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def __call__(self, sink: str, count: int) -> None:
        with self._lock:
            self.calls.append((sink, count))

    @property
    def total(self) -> int:
        with self._lock:
            return sum(count for _, count in self.calls)


@pytest.fixture
def processors() -> Iterator[list[DeliveryProcessor]]:
    """Processors to stop after the test."""
    made: list[DeliveryProcessor] = []
    yield made
    for processor in made:
        processor.close(0.0)


@pytest.fixture
def blocking() -> Iterator[BlockingExporter]:
    exporter = BlockingExporter()
    yield exporter
    exporter.release.set()


def tracer_for(processor: DeliveryProcessor) -> Tracer:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    return provider.get_tracer("test-delivery")


def end_spans(tracer: Tracer, names: Sequence[str]) -> None:
    for name in names:
        tracer.start_span(name).end()


def make(
    processors: list[DeliveryProcessor],
    exporter: SpanExporter,
    *,
    sink: str = "fake",
    drops: Drops | None = None,
    **kwargs: int | float,
) -> DeliveryProcessor:
    kwargs.setdefault("schedule_delay", IDLE)
    processor = DeliveryProcessor(
        sink,
        exporter,
        on_drop=[drops] if drops is not None else [],
        **kwargs,  # type: ignore[arg-type]
    )
    processors.append(processor)
    return processor


# -- delivery ----------------------------------------------------------------------------


def test_spans_reach_exporter_after_flush(processors: list[DeliveryProcessor]) -> None:
    exporter = FakeExporter()
    drops = Drops()
    processor = make(processors, exporter, drops=drops)
    tracer = tracer_for(processor)
    names = [f"span-{i}" for i in range(5)]
    end_spans(tracer, names)
    assert processor.flush(timeout=5.0) is True
    assert exporter.names == names
    assert processor.exported == len(names)
    assert processor.dropped == 0
    assert drops.calls == []
    assert processor.pending == 0


def test_export_happens_off_the_callers_thread(processors: list[DeliveryProcessor]) -> None:
    exporter = FakeExporter()
    processor = make(processors, exporter)
    end_spans(tracer_for(processor), ["a", "b"])
    assert exporter.batches == []  # the background thread is idle: nothing exported by on_end
    assert processor.pending == 2
    assert processor.flush(5.0)
    assert exporter.threads
    assert threading.current_thread().name not in exporter.threads


def test_batches_respect_max_batch_size(processors: list[DeliveryProcessor]) -> None:
    exporter = FakeExporter()
    processor = make(processors, exporter, max_batch_size=3)
    names = [f"s{i}" for i in range(7)]
    end_spans(tracer_for(processor), names)
    assert processor.flush(5.0)
    assert exporter.names == names
    assert all(len(batch) <= 3 for batch in exporter.batches)


def test_force_flush_takes_milliseconds(processors: list[DeliveryProcessor]) -> None:
    exporter = FakeExporter()
    processor = make(processors, exporter)
    end_spans(tracer_for(processor), ["x"])
    assert processor.force_flush(timeout_millis=5_000) is True
    assert exporter.names == ["x"]


def test_flush_with_nothing_queued_is_true(processors: list[DeliveryProcessor]) -> None:
    processor = make(processors, FakeExporter())
    assert processor.flush(2.0) is True


# -- counting drops ----------------------------------------------------------------------


@pytest.mark.parametrize(("size", "extra"), [(1, 1), (3, 4), (10, 25)])
def test_queue_overflow_counts_exact_drops(
    processors: list[DeliveryProcessor], size: int, extra: int
) -> None:
    exporter = FakeExporter()
    drops = Drops()
    processor = make(processors, exporter, sink="overflow-sink", drops=drops, max_queue_size=size)
    names = [f"span-{i}" for i in range(size + extra)]
    end_spans(tracer_for(processor), names)
    assert drops.total == extra
    assert {sink for sink, _ in drops.calls} == {"overflow-sink"}
    assert processor.dropped == extra
    assert processor.flush(5.0) is False  # spans were dropped since the previous flush
    assert processor.flush(5.0) is True  # and none since
    # the first `size` spans were kept and delivered; the rest never reached the exporter
    assert exporter.names == names[:size]
    assert processor.exported == size


def test_failed_export_counts_the_batch_as_dropped(processors: list[DeliveryProcessor]) -> None:
    exporter = FakeExporter(SpanExportResult.FAILURE)
    drops = Drops()
    processor = make(processors, exporter, sink="failing", drops=drops)
    end_spans(tracer_for(processor), ["a", "b", "c", "d"])
    assert processor.flush(5.0) is False  # delivered to the exporter, which failed them
    assert exporter.names == ["a", "b", "c", "d"]
    assert drops.total == 4
    assert {sink for sink, _ in drops.calls} == {"failing"}
    assert processor.dropped == 4
    assert processor.exported == 0


def test_raising_exporter_never_propagates(processors: list[DeliveryProcessor]) -> None:
    exporter = RaisingExporter()
    drops = Drops()
    processor = make(processors, exporter, sink="raising", drops=drops)
    tracer = tracer_for(processor)
    end_spans(tracer, ["a", "b"])  # must not raise
    assert processor.flush(5.0) is False  # must not raise; the batch was lost
    assert exporter.names == ["a", "b"]
    assert drops.calls == [("raising", 2)]
    # still working afterwards
    end_spans(tracer, ["c"])
    assert processor.flush(5.0) is False
    assert exporter.names == ["a", "b", "c"]
    assert processor.dropped == 3
    assert processor.close(1.0) is True


def test_raising_drop_listener_does_not_break_delivery(
    processors: list[DeliveryProcessor],
) -> None:
    def bad_listener(sink: str, count: int) -> None:
        raise RuntimeError("listener exploded")

    drops = Drops()
    exporter = FakeExporter()
    processor = DeliveryProcessor(
        "x", exporter, max_queue_size=1, schedule_delay=IDLE, on_drop=[bad_listener, drops]
    )
    processors.append(processor)
    end_spans(tracer_for(processor), ["kept", "dropped"])
    assert drops.calls == [("x", 1)]
    assert processor.flush(5.0) is False  # one was dropped
    assert exporter.names == ["kept"]


def test_add_drop_listener(processors: list[DeliveryProcessor]) -> None:
    drops = Drops()
    processor = make(processors, FakeExporter(), sink="late", max_queue_size=1)
    processor.add_drop_listener(drops)
    end_spans(tracer_for(processor), ["a", "b", "c"])
    assert drops.total == 2
    assert drops.calls[0][0] == "late"


# -- bounded waits against a hanging exporter --------------------------------------------


def test_hanging_exporter_bounded_flush_and_close(
    processors: list[DeliveryProcessor], blocking: BlockingExporter
) -> None:
    drops = Drops()
    processor = make(processors, blocking, sink="hanging", drops=drops)
    tracer = tracer_for(processor)
    end_spans(tracer, ["in-flight-1", "in-flight-2", "in-flight-3"])

    start = time.monotonic()
    assert processor.flush(timeout=0.5) is False
    elapsed = time.monotonic() - start
    assert 0.4 <= elapsed < 1.5
    assert blocking.entered.wait(2.0), "the batch never reached the exporter"

    end_spans(tracer, ["queued-1", "queued-2"])
    assert processor.pending == 2
    assert drops.total == 0

    start = time.monotonic()
    assert processor.close(0.2) is False
    assert time.monotonic() - start < 1.0

    # three spans stuck in the exporter + two still queued
    assert drops.total == 5
    assert processor.dropped == 5
    assert {sink for sink, _ in drops.calls} == {"hanging"}
    assert processor.exported == 0


def test_late_export_success_after_close_is_not_double_counted(
    processors: list[DeliveryProcessor], blocking: BlockingExporter
) -> None:
    drops = Drops()
    processor = make(processors, blocking, drops=drops)
    end_spans(tracer_for(processor), ["a", "b"])
    assert processor.flush(0.2) is False
    assert blocking.entered.wait(2.0)
    assert processor.close(0.1) is False
    assert drops.total == 2
    blocking.release.set()
    deadline = time.monotonic() + 2.0
    while not blocking.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert blocking.batches == [["a", "b"]]
    time.sleep(0.05)
    assert drops.total == 2
    assert processor.exported == 0


def test_spans_after_close_are_dropped(processors: list[DeliveryProcessor]) -> None:
    drops = Drops()
    exporter = FakeExporter()
    processor = make(processors, exporter, drops=drops)
    tracer = tracer_for(processor)
    assert processor.close(1.0) is True
    end_spans(tracer, ["late"])
    assert drops.total == 1
    assert exporter.names == []


def test_close_delivers_what_it_can_in_time(processors: list[DeliveryProcessor]) -> None:
    drops = Drops()
    exporter = FakeExporter()
    processor = make(processors, exporter, drops=drops)
    end_spans(tracer_for(processor), ["a", "b"])
    assert processor.close(5.0) is True
    assert exporter.names == ["a", "b"]
    assert drops.total == 0


def test_close_zero_counts_queued_as_dropped(processors: list[DeliveryProcessor]) -> None:
    drops = Drops()
    exporter = FakeExporter()
    processor = make(processors, exporter, drops=drops)
    end_spans(tracer_for(processor), ["a", "b", "c"])
    assert processor.close(0.0) is False
    assert drops.total == 3
    assert exporter.names == []


def test_shutdown_via_provider_is_bounded(processors: list[DeliveryProcessor]) -> None:
    drops = Drops()
    blocking_exporter = BlockingExporter()
    try:
        processor = make(processors, blocking_exporter, drops=drops)
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(processor)
        tracer = provider.get_tracer("t")
        end_spans(tracer, ["in-flight"])
        assert processor.flush(0.1) is False
        assert blocking_exporter.entered.wait(2.0)
        end_spans(tracer, ["queued"])
        start = time.monotonic()
        provider.shutdown()
        assert time.monotonic() - start < 1.0
        assert drops.total == 2
    finally:
        blocking_exporter.release.set()
