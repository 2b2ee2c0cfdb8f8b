"""Exporters for each sink: Langfuse's OTLP endpoint, any OTLP collector, the console.

A forked child builds its own network exporter on first use: it never sends over the parent's
pooled HTTP connections.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter, SpanExportResult

from hypertool.instrumentation._config import OtlpSettings, Settings
from hypertool.instrumentation._fork import reset_in_child
from hypertool.instrumentation._log import logger, warn_once
from hypertool.instrumentation.export.otlp_http import OtlpHttpExporter

if TYPE_CHECKING:
    import requests
    from opentelemetry.sdk.trace import ReadableSpan

LANGFUSE_TRACES_PATH = "/api/public/otel/v1/traces"
# Ingestion version 4 is what langfuse 5.x sends: user.id etc. are columns of every observation.
LANGFUSE_INGESTION_VERSION = "4"
SDK_NAME = "hypertool-instrumentation"


def basic_auth(public_key: str, secret_key: str) -> str:
    """The ``Authorization`` header value of Langfuse's public API."""
    token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode("ascii")
    return f"Basic {token}"


def langfuse_headers(public_key: str, secret_key: str) -> dict[str, str]:
    """The headers Langfuse's OTel endpoint expects (as langfuse 5.x's own processor sends)."""
    return {
        "Authorization": basic_auth(public_key, secret_key),
        "x-langfuse-sdk-name": SDK_NAME,
        "x-langfuse-public-key": public_key,
        "x-langfuse-ingestion-version": LANGFUSE_INGESTION_VERSION,
    }


class _RejectionReporter:
    """Turns 401/403 answers into one clear message per host instead of one per batch."""

    def __init__(self, host: str) -> None:
        self._host = host
        self._reported = False
        self._lock = threading.Lock()
        self.last_status: int | None = None
        reset_in_child(self, _RejectionReporter._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.last_status = response.status_code
        if response.status_code not in (401, 403):
            return
        with self._lock:
            if self._reported:
                return
            self._reported = True
        logger.error(
            "Langfuse rejected the keys for %s (HTTP %d): check LANGFUSE_PUBLIC_KEY and "
            "LANGFUSE_SECRET_KEY; spans for Langfuse are dropped and counted",
            self._host,
            response.status_code,
        )


class PerProcessExporter(SpanExporter):
    """An exporter built anew in each process: a forked child builds its own on first use.

    An HTTP exporter's pooled keep-alive connections are shared with the parent after a fork;
    two processes writing requests on one socket would corrupt both streams. The child forgets
    the parent's exporter (its sockets are only closed in the child, which the parent does not
    notice) and never calls into it: a parent thread may have held its locks.

    Args:
        build: Makes the exporter (called now, so configuration errors surface at start-up,
            and once more in each forked child that exports).

    """

    def __init__(self, build: Callable[[], SpanExporter]) -> None:
        self._build = build
        self._exporter: SpanExporter | None = build()
        self._stopped = False
        reset_in_child(self, PerProcessExporter._after_fork)

    def _after_fork(self) -> None:
        self._exporter = None

    def _current(self) -> SpanExporter:
        exporter = self._exporter
        if exporter is None:
            exporter = self._exporter = self._build()
        return exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export with this process's exporter."""
        if self._stopped:
            return SpanExportResult.FAILURE
        return self._current().export(spans)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here."""
        return True

    def shutdown(self) -> None:
        """Shut this process's exporter down (the parent's is the parent's)."""
        self._stopped = True
        if self._exporter is not None:
            self._exporter.shutdown()


def langfuse_exporter(settings: Settings) -> SpanExporter:
    """An OTLP/HTTP exporter speaking Langfuse's ingestion contract (gzip protobuf, basic auth),
    built anew in each forked child.
    """
    return PerProcessExporter(lambda: _langfuse_exporter(settings))


def _langfuse_exporter(settings: Settings) -> SpanExporter:
    import requests

    assert settings.public_key and settings.secret_key
    session = requests.Session()
    session.hooks["response"].append(_RejectionReporter(settings.host))
    return OtlpHttpExporter(
        f"{settings.host}{LANGFUSE_TRACES_PATH}",
        headers=langfuse_headers(settings.public_key, settings.secret_key),
        timeout=settings.export_timeout,
        compression="gzip",
        session=session,
    )


def otlp_exporter(otlp: OtlpSettings, timeout: float) -> SpanExporter:
    """An OTLP/HTTP exporter for the collector the ``OTEL_EXPORTER_OTLP_*`` variables name
    (Jaeger, Tempo, Phoenix, an OpenTelemetry Collector), built anew in each forked child.
    """
    return PerProcessExporter(lambda: _otlp_exporter(otlp, timeout))


def _otlp_exporter(otlp: OtlpSettings, timeout: float) -> SpanExporter:
    return OtlpHttpExporter(
        otlp.endpoint,
        headers=otlp.headers,
        timeout=timeout,
        compression=None if otlp.compression in (None, "none") else otlp.compression,
        certificate=otlp.certificate,
        client_certificate=otlp.client_certificate,
        client_key=otlp.client_key,
    )


def console_exporter() -> SpanExporter:
    """Spans printed as JSON on standard output, for debugging."""
    return ConsoleSpanExporter()


def build_sinks(settings: Settings) -> dict[str, SpanExporter]:
    """The network and console sinks ``settings`` turn on (the store is built by its owner).

    A sink that cannot be built is left off with one warning; nothing raises.
    """
    sinks: dict[str, SpanExporter] = {}
    if settings.langfuse_configured:
        try:
            sinks["langfuse"] = langfuse_exporter(settings)
        except Exception as exc:
            warn_once(
                "init-failed",
                "Failed to initialize Langfuse client for %s: %s; tracing to Langfuse is off",
                settings.host,
                exc,
            )
    if settings.otlp is not None:
        try:
            sinks["otlp"] = otlp_exporter(settings.otlp, settings.export_timeout)
        except Exception as exc:
            warn_once("otlp-failed", "OTLP export is off: %s", exc)
    if settings.console:
        sinks["console"] = console_exporter()
    return sinks
