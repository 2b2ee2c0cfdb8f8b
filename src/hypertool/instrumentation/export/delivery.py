"""Delivery of finished spans to one sink, off the caller's path, with bounded waits.

OpenTelemetry's ``BatchSpanProcessor`` drops spans silently when its queue is full and its
``force_flush`` ignores the timeout (measured: 5 s per queued batch against a hanging endpoint).
This processor keeps the same exporter interface but counts every span it cannot deliver and
never makes the caller wait longer than asked.

Accounting is exact per sink: every span handed in is counted once, as exported or as dropped.
An exporter with ``export_partial`` — the local store — may write part of a batch and says how
many spans it could not write: exactly those are dropped. A batch still in the exporter's hands
when :meth:`DeliveryProcessor.close` gives up is decided once: close counts it as dropped
unless the exporter already claimed it (``export_partial`` claims a batch just before making
it durable and abandons it when close was first), and a late answer is then ignored.

The export thread holds the processor weakly (a processor nobody holds ends its thread) and is
started on the first span; in a forked child the queue starts empty (the parent's spans are the
parent's to deliver, and are not counted by the child), with new locks, counters and thread.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from hypertool.instrumentation._fork import reset_in_child

logger = logging.getLogger("hypertool.instrumentation")

DropListener = Callable[[str, int], None]
"""Called with (sink name, number of spans) whenever spans are dropped."""

_REPORT_INTERVAL_S = 60.0
# How long close() lets a batch the exporter already claimed finish committing (a local
# SQLite commit: milliseconds).
_CLAIMED_WAIT_S = 1.0
EXPORT_THREAD_PREFIX = "hypertool-export-"


class PartialExport(Protocol):
    """``export_partial`` of an exporter that may write part of a batch (a span it cannot
    take costs that span, not its batch) and can abandon a batch until its last step.
    """

    def __call__(self, spans: Sequence[ReadableSpan], claim: Callable[[], bool]) -> int:
        """Export ``spans``; call ``claim()`` just before they become durable, and when it
        returns False abandon them (roll back). Returns how many were not delivered
        (0 to ``len(spans)``; all of them when abandoned or failed).
        """


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
        self._export_partial: PartialExport | None = getattr(exporter, "export_partial", None)
        self._stopping = False
        self._closed = False
        self._fresh_state()
        reset_in_child(self, DeliveryProcessor._fresh_state)

    def _fresh_state(self) -> None:
        """The queue, locks, counters and thread of a new processor, or of a forked child."""
        self._queue: deque[ReadableSpan | _FlushMarker] = deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # Spans of the batch in the exporter's hands whose fate is not decided yet; 0 once
        # close() counted them. ``_claimed``: the exporter made them its own (close waits not).
        self._in_flight = 0
        self._claimed = False
        self._settled = threading.Event()
        self.exported = 0
        self.dropped = 0
        self._dropped_at_flush = 0
        self._unreported = 0
        self._last_report = 0.0

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
        queue = self._queue
        if self._stopping or len(queue) >= self._max_queue_size:
            self._drop(1)
            return
        queue.append(span)
        if self._thread is None:
            self._start()
        elif len(queue) >= self._max_batch_size:
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
        if self._thread is None and self._queue and not self._stopping:
            self._start()
        if self._thread is None or not self._thread.is_alive():
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
            # A batch still in the exporter's hands when we give up is lost at exit: count it,
            # once (its late answer is ignored), unless the exporter claimed it already.
            self._closed = True
            left, committing = 0, self._settled if self._claimed else None
            if committing is None:
                left, self._in_flight = self._in_flight, 0
        if committing is not None:  # a claimed batch is being committed: a moment, let it end
            committing.wait(_CLAIMED_WAIT_S)
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

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            thread = threading.Thread(
                target=_deliver_forever,
                args=(weakref.ref(self), self._wake, self._schedule_delay),
                name=f"{EXPORT_THREAD_PREFIX}{self.sink}"
                + ("" if self.item == "span" else f"-{self.item}s"),
                daemon=True,
            )
            try:
                thread.start()
            except RuntimeError:  # interpreter shutdown: close() counts what is queued
                logger.debug("cannot start the %s export thread", self.sink, exc_info=True)
                return
            self._thread = thread

    def _claim(self) -> bool:
        """The exporter's last word before the batch becomes durable: False if close() won."""
        with self._lock:
            if not self._in_flight:
                return False
            self._claimed = True
            return True

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
                self._in_flight, self._claimed = len(batch), False
                self._settled = settled = threading.Event()
        if closed:  # taken off the queue just before close(): nobody counted these yet
            self._drop(len(batch))
            return
        try:
            if self._export_partial is not None:
                lost = min(max(int(self._export_partial(batch, self._claim)), 0), len(batch))
            else:
                result = self._exporter.export(batch)
                lost = 0 if result is SpanExportResult.SUCCESS else len(batch)
        except Exception:
            logger.debug("exporter for the %s sink raised", self.sink, exc_info=True)
            lost = len(batch)
        try:
            with self._lock:
                if not self._in_flight:  # close() counted it as dropped already
                    return
                self._in_flight, self._claimed = 0, False
                self.exported += len(batch) - lost
            if lost:
                self._drop(lost)
        finally:
            settled.set()


def _deliver_forever(
    ref: weakref.ref[DeliveryProcessor], wake: threading.Event, delay: float
) -> None:
    """The export thread: holds its processor only while draining, so it can be collected."""
    while True:
        wake.wait(delay)
        wake.clear()
        processor = ref()
        if processor is None or processor._stopping:
            return
        processor._drain()
        del processor
