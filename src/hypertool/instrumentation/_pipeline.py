"""One tracer provider per integration, with a delivery processor per sink.

The application's global tracer provider is never touched; an application that wants our spans
in its own provider passes it in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import Tracer

from hypertool.instrumentation._delivery import DeliveryProcessor, DropListener

logger = logging.getLogger("hypertool.instrumentation")

TRACER_NAME = "hypertool.instrumentation"
__version__ = "0.1.0"


class Pipeline:
    """A tracer whose finished spans are delivered to every sink.

    Args:
        exporters: Sink name → exporter.
        queue_size: Spans each sink holds while its endpoint is slow.
        exit_timeout: Seconds process exit may wait for delivery.
        tracer_provider: Use this provider instead of building one (its processors are the
            application's business; ours are added to it).
        on_drop: Told of every span a sink could not deliver.

    """

    def __init__(
        self,
        exporters: Mapping[str, SpanExporter],
        *,
        queue_size: int,
        exit_timeout: float,
        tracer_provider: TracerProvider | None = None,
        on_drop: tuple[DropListener, ...] = (),
    ) -> None:
        self.provider = tracer_provider or TracerProvider(
            resource=Resource.create({"service.name": "hypertool"}), shutdown_on_exit=False
        )
        self.processors = [
            DeliveryProcessor(name, exporter, max_queue_size=queue_size, on_drop=on_drop)
            for name, exporter in exporters.items()
        ]
        for processor in self.processors:
            self.provider.add_span_processor(processor)
        self.tracer: Tracer = self.provider.get_tracer(TRACER_NAME, __version__)
        self.exit_timeout = exit_timeout
        self._closed = False

    @property
    def sinks(self) -> list[str]:
        """Names of the sinks spans are delivered to."""
        return [processor.sink for processor in self.processors]

    def flush(self, timeout: float) -> bool:
        """Deliver what is queued; return within ``timeout`` seconds whatever the endpoints do."""
        deadline = time.monotonic() + max(timeout, 0.0)
        ok = True
        for processor in self.processors:
            ok = processor.flush(deadline - time.monotonic()) and ok
        return ok

    def close(self, timeout: float) -> bool:
        """Flush for at most ``timeout`` seconds, then stop; undelivered spans are counted."""
        if self._closed:
            return True
        self._closed = True
        deadline = time.monotonic() + max(timeout, 0.0)
        ok = True
        for processor in self.processors:
            ok = processor.close(deadline - time.monotonic()) and ok
        return ok
