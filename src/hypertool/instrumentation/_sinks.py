"""Exporters for each sink: Langfuse's OTLP endpoint, any OTLP collector, the console."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Mapping
from typing import Any

import requests
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter

from hypertool.instrumentation._config import Settings
from hypertool.instrumentation._delivery import EXPORT_THREAD_PREFIX

logger = logging.getLogger("hypertool.instrumentation")

LANGFUSE_TRACES_PATH = "/api/public/otel/v1/traces"
# Ingestion version 4 is what langfuse 5.x sends: user.id etc. are columns of every observation.
LANGFUSE_INGESTION_VERSION = "4"
SDK_NAME = "hypertool-instrumentation"


def langfuse_headers(public_key: str, secret_key: str) -> dict[str, str]:
    """The headers Langfuse's OTel endpoint expects (as langfuse 5.x's own processor sends)."""
    token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode("ascii")
    return {
        "Authorization": f"Basic {token}",
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


class _OwnExportThreads(logging.Filter):
    """Hides the OTLP exporter's per-batch failure logs raised on our export threads.

    Our delivery processor counts those spans and reports them once in a while (and a rejected
    key once per host), so the exporter's one line per batch would only repeat it. Records from
    any other thread (the application's own OTLP exporters) pass untouched.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.threadName or not record.threadName.startswith(EXPORT_THREAD_PREFIX)


_quiet_filter = _OwnExportThreads()


def _quiet_exporter_logs() -> None:
    for name in (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "opentelemetry.exporter.otlp.common.http",
    ):
        exporter_logger = logging.getLogger(name)
        if _quiet_filter not in exporter_logger.filters:
            exporter_logger.addFilter(_quiet_filter)


def langfuse_exporter(settings: Settings) -> SpanExporter:
    """An OTLP/HTTP exporter speaking Langfuse's ingestion contract (gzip protobuf, basic auth)."""
    assert settings.public_key and settings.secret_key
    _quiet_exporter_logs()
    session = requests.Session()
    session.hooks["response"].append(_RejectionReporter(settings.host))
    return OTLPSpanExporter(
        endpoint=f"{settings.host}{LANGFUSE_TRACES_PATH}",
        headers=langfuse_headers(settings.public_key, settings.secret_key),
        timeout=settings.export_timeout,
        compression=Compression.Gzip,
        session=session,
    )


OTEL_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def otlp_configured(environ: Mapping[str, str]) -> bool:
    """True when the standard OTLP endpoint variables name a collector."""
    return any(environ.get(name, "").strip() for name in OTEL_ENDPOINT_VARIABLES)


def otlp_exporter(timeout: float) -> SpanExporter:
    """An OTLP/HTTP exporter configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables
    (endpoint, headers, compression, certificates), for Jaeger, Tempo, Phoenix or a Collector.
    """
    _quiet_exporter_logs()
    return OTLPSpanExporter(timeout=timeout)


def console_exporter() -> SpanExporter:
    """Spans printed as JSON on standard output, for debugging."""
    return ConsoleSpanExporter()
