"""Delivery of finished spans to one sink, off the caller's path, with bounded waits.

OpenTelemetry's ``BatchSpanProcessor`` drops spans silently when its queue is full and its
``force_flush`` ignores the timeout (measured: 5 s per queued batch against a hanging endpoint).
This processor keeps the same exporter interface but counts every span it cannot deliver and
never makes the caller wait longer than asked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

logger = logging.getLogger("hypertool.instrumentation")

DropListener = Callable[[str, int], None]
"""Called with (sink name, number of spans) whenever spans are dropped."""

_REPORT_INTERVAL_S = 60.0
EXPORT_THREAD_PREFIX = "hypertool-export-"


class _FlushMarker:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class DeliveryProcessor(SpanProcessor):
    """Queue finished spans and export them in batches from a daemon thread.

    Args:
        sink: Name of the sink, used in drop counts and warnings (``langfuse``, ``otlp``, …).
        exporter: Any OpenTelemetry ``SpanExporter``.
        max_queue_size: Spans held while the exporter is slow; past it new spans are dropped
            and counted.
        max_batch_size: Spans per export call.
        schedule_delay: Seconds between exports when the queue is not full.
        on_drop: Callbacks told of every dropped span.
        only_scope: Accept only spans of this instrumentation scope (ours, when the tracer
            provider is the application's and carries its spans too).
        item: What is delivered, for warnings and the thread's name: ``span``, or ``score``
            (scores ride the same queue and accounting, see :mod:`.scores`).

    """

    def __init__(
        self,
        sink: str,
        exporter: SpanExporter,
        *,
        max_queue_size: int = 10_000,
        max_batch_size: int = 512,
        schedule_delay: float = 1.0,
        on_drop: Sequence[DropListener] = (),
        only_scope: str | None = None,
        item: str = "span",
    ) -> None:
        self.sink = sink
        self.item = item
        self._exporter = exporter
        self._max_queue_size = max_queue_size
        self._max_batch_size = max_batch_size
        self._schedule_delay = schedule_delay
        self._on_drop = list(on_drop)
        self._only_scope = only_scope
        self._queue: deque[ReadableSpan | _FlushMarker] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._closed = False
        self._in_flight = 0
        self._lock = threading.Lock()
        self.exported = 0
        self.dropped = 0
        self._dropped_at_flush = 0
        self._unreported = 0
        self._last_report = 0.0
        self._thread = threading.Thread(
            target=self._run,
            name=f"{EXPORT_THREAD_PREFIX}{sink}" + ("" if item == "span" else f"-{item}s"),
            daemon=True,
        )
        self._thread.start()

    # -- SpanProcessor -------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: ReadableSpan) -> None:
        """Queue the span; never blocks, never raises."""
        if self._only_scope is not None and (
            span.instrumentation_scope is None
            or span.instrumentation_scope.name != self._only_scope
        ):
            return
        if self._stopping or len(self._queue) >= self._max_queue_size:
            self._drop(1)
            return
        self._queue.append(span)
        if len(self._queue) >= self._max_batch_size:
            self._wake.set()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export what is queued; return False if that did not finish within the timeout."""
        return self.flush(timeout_millis / 1000)

    def shutdown(self) -> None:
        """Stop accepting spans; what is still queued is counted as dropped by :meth:`close`."""
        self.close(0.0)

    # -- ours ----------------------------------------------------------------------------
    def add_drop_listener(self, listener: DropListener) -> None:
        """Also tell ``listener`` of every span dropped from now on."""
        self._on_drop.append(listener)

    @property
    def pending(self) -> int:
        """Spans queued and not yet handed to the exporter."""
        return sum(1 for item in self._queue if not isinstance(item, _FlushMarker))

    def flush(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for everything queued so far to be exported."""
        return self.wait_flushed(self.request_flush(), timeout)

    def request_flush(self) -> threading.Event | None:
        """Ask for everything queued so far to be exported, without waiting.

        Returns:
            An event set once that is done (None when the export thread is gone); pass it to
            :meth:`wait_flushed`. Several sinks can so be flushed at once under one deadline.

        """
        if not self._thread.is_alive():
            return None
        marker = _FlushMarker()
        self._queue.append(marker)
        self._wake.set()
        return marker.done

    def wait_flushed(self, done: threading.Event | None, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for a :meth:`request_flush` to complete.

        Returns:
            True only when everything queued before the request was delivered and nothing was
            dropped since the previous flush; drops since then are reported (sink and count).

        """
        delivered = self._wait(done, timeout)
        dropped = self._dropped_since_flush()
        if dropped:
            self._report(force=True)
        return delivered and not dropped

    def _wait(self, done: threading.Event | None, timeout: float) -> bool:
        if done is None:
            return not self._queue
        return done.wait(min(max(timeout, 0.0), threading.TIMEOUT_MAX))

    def _dropped_since_flush(self) -> int:
        with self._lock:
            dropped = self.dropped - self._dropped_at_flush
            self._dropped_at_flush = self.dropped
        return dropped

    def count_dropped(self, count: int) -> None:
        """Count ``count`` spans lost before they reached this sink (reported like the rest)."""
        if count > 0:
            self._drop(count)

    def close(self, timeout: float, requested: threading.Event | None = None) -> bool:
        """Flush for at most ``timeout`` seconds, stop, and count what is left as dropped.

        ``requested``: a :meth:`request_flush` already made (several sinks closed under one
        deadline); one is made here when None.

        Returns:
            True when everything was delivered and nothing dropped since the previous flush.

        """
        if timeout > 0:
            flushed = self._wait(requested or self.request_flush(), timeout)
        else:
            flushed = not self.pending
        self._stopping = True
        self._wake.set()
        with self._lock:
            # A batch still in the exporter's hands when we give up is lost at exit: count it.
            self._closed = True
            left, self._in_flight = self._in_flight, 0
        while self._queue:
            try:
                item = self._queue.popleft()
            except IndexError:
                break
            if isinstance(item, _FlushMarker):
                item.done.set()
            else:
                left += 1
        if left:
            self._drop(left)
        flushed = flushed and not self._dropped_since_flush()
        self._report(force=True)
        try:
            self._exporter.shutdown()  # releases connections and files (the store's WAL)
        except Exception:
            logger.debug("shutting down the %s exporter failed", self.sink, exc_info=True)
        return flushed

    def _drop(self, count: int) -> None:
        with self._lock:
            self.dropped += count
            self._unreported += count
        for listener in self._on_drop:
            try:
                listener(self.sink, count)
            except Exception:  # a listener must not break delivery
                logger.debug("drop listener failed", exc_info=True)
        self._report()

    def _report(self, *, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not self._unreported or (not force and now - self._last_report < _REPORT_INTERVAL_S):
                return
            count, self._unreported, self._last_report = self._unreported, 0, now
        logger.warning(
            "%d %s(s) could not be delivered to the %s sink (total %d); "
            "see hypertool_export_dropped_%ss_total",
            count,
            self.item,
            self.sink,
            self.dropped,
            self.item,
        )

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._schedule_delay)
            self._wake.clear()
            self._drain()

    def _drain(self) -> None:
        batch: list[ReadableSpan] = []
        while self._queue and not self._stopping:
            try:
                item = self._queue.popleft()
            except IndexError:
                break
            if isinstance(item, _FlushMarker):
                self._export(batch)
                batch = []
                item.done.set()
                continue
            batch.append(item)
            if len(batch) >= self._max_batch_size:
                self._export(batch)
                batch = []
        self._export(batch)

    def _export(self, batch: list[ReadableSpan]) -> None:
        if not batch:
            return
        with self._lock:
            closed = self._closed
            if not closed:
                self._in_flight = len(batch)
        if closed:  # taken off the queue just before close(): nobody counted these yet
            self._drop(len(batch))
            return
        try:
            result = self._exporter.export(batch)
        except Exception:
            logger.debug("exporter for the %s sink raised", self.sink, exc_info=True)
            result = SpanExportResult.FAILURE
        with self._lock:
            if self._closed:  # already counted by close()
                return
            self._in_flight = 0
        if result is SpanExportResult.SUCCESS:
            self.exported += len(batch)
        else:
            self._drop(len(batch))
