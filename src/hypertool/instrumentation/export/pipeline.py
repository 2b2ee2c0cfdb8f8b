"""One tracer provider per integration, with a delivery processor per sink.

The application's global tracer provider is never touched; an application that wants our spans
in its own provider passes it in.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Tracer

from hypertool.instrumentation.export.delivery import DeliveryProcessor, DropListener

logger = logging.getLogger("hypertool.instrumentation")

TRACER_NAME = "hypertool.instrumentation"
DEFAULT_SCHEDULE_DELAY_S = 1.0
__version__ = "0.1.0"


# Our spans carry at most ~40 attributes of ours plus 64 + 1 of the user's metadata (and 32 + 1
# raw attributes): 256 leaves room, and a limit of our own is not lowered by the
# OTEL_*_LIMIT variables meant for the application's provider. Values are capped by us
# (HYPERTOOL_MAX_FIELD_CHARS), never cut by OpenTelemetry.
def span_limits() -> SpanLimits:
    """The limits of our own tracer provider."""
    return SpanLimits(
        max_attributes=128,
        max_span_attributes=256,
        max_events=128,
        max_links=128,
        max_event_attributes=128,
        max_link_attributes=128,
        max_attribute_length=SpanLimits.UNSET,
        max_span_attribute_length=SpanLimits.UNSET,
    )


class Pipeline:
    """A tracer whose finished spans are delivered to every sink.

    Args:
        exporters: Sink name → exporter.
        queue_size: Spans each sink holds while its endpoint is slow.
        exit_timeout: Seconds process exit may wait for delivery.
        tracer_provider: Use this provider instead of building one (its processors are the
            application's business; ours are added to it).
        on_drop: Told of every span a sink could not deliver.
        schedule_delays: Seconds between exports of a sink whose queue is not full, by sink
            name (1 s for the others).

    """

    def __init__(
        self,
        exporters: Mapping[str, SpanExporter],
        *,
        queue_size: int,
        exit_timeout: float,
        tracer_provider: TracerProvider | None = None,
        on_drop: tuple[DropListener, ...] = (),
        schedule_delays: Mapping[str, float] | None = None,
    ) -> None:
        self.own_provider = tracer_provider is None
        self.provider = tracer_provider or TracerProvider(
            resource=Resource.create({"service.name": "hypertool"}),
            shutdown_on_exit=False,
            span_limits=span_limits(),
        )
        self.processors = [
            DeliveryProcessor(
                name,
                exporter,
                max_queue_size=queue_size,
                schedule_delay=(schedule_delays or {}).get(name, DEFAULT_SCHEDULE_DELAY_S),
                on_drop=on_drop,
                # In the application's provider, our sinks take only our spans.
                only_scope=TRACER_NAME if tracer_provider is not None else None,
            )
            for name, exporter in exporters.items()
        ]
        for processor in self.processors:
            self.provider.add_span_processor(processor)
        self.tracer: Tracer = self.provider.get_tracer(TRACER_NAME, __version__)
        self.scope = InstrumentationScope(TRACER_NAME, __version__)
        self.exit_timeout = exit_timeout
        self._closed = False

    def emit(self, span: ReadableSpan) -> None:
        """Hand a finished span straight to every sink (spans built without the tracer)."""
        for processor in self.processors:
            processor.on_end(span)

    @property
    def sinks(self) -> list[str]:
        """Names of the sinks spans are delivered to."""
        return [processor.sink for processor in self.processors]

    def flush(self, timeout: float) -> bool:
        """Deliver what is queued; return within ``timeout`` seconds whatever the endpoints do.

        Every sink is flushed at once: a hanging endpoint does not eat the time of the others
        (the local store keeps what Langfuse cannot take).
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        requests = [(processor, processor.request_flush()) for processor in self.processors]
        ok = True
        for processor, done in requests:
            ok = processor.wait_flushed(done, deadline - time.monotonic()) and ok
        return ok

    def request_flush(self) -> list[tuple[DeliveryProcessor, threading.Event | None]]:
        """Ask every sink to deliver what it holds, without waiting (see :meth:`close`)."""
        return [(processor, processor.request_flush()) for processor in self.processors]

    def close(
        self,
        timeout: float,
        requests: list[tuple[DeliveryProcessor, threading.Event | None]] | None = None,
    ) -> bool:
        """Flush for at most ``timeout`` seconds, then stop; undelivered spans are counted.

        ``requests``: a :meth:`request_flush` already made (so other deliveries, the scores',
        run at the same time); one is made here when None.
        """
        if self._closed:
            return True
        self._closed = True
        deadline = time.monotonic() + max(timeout, 0.0)
        if requests is None:
            requests = [
                (processor, processor.request_flush() if timeout > 0 else None)
                for processor in self.processors
            ]
        ok = True
        for processor, done in requests:
            ok = processor.close(max(deadline - time.monotonic(), 0.0), done) and ok
        return ok

    def count_dropped(self, count: int) -> None:
        """Count ``count`` spans lost before reaching any sink (each sink lost them)."""
        for processor in self.processors:
            processor.count_dropped(count)
