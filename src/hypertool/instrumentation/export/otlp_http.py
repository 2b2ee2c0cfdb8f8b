"""An OTLP/HTTP (protobuf) span exporter: the Langfuse sink and the ``otlp`` sink.

Speaks the same protocol as OpenTelemetry's ``OTLPSpanExporter`` (and langfuse 5.0.4's own
processor, for the Langfuse endpoint), with the request encoded by :mod:`.otlp_encoding`.
It runs on a sink's export thread only; the delivery processor counts what it cannot deliver,
so a failed batch is logged at debug level here, never once per batch at warning.
"""

from __future__ import annotations

import gzip
import random
import threading
import time
import zlib
from collections.abc import Callable, Container, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from hypertool.instrumentation._log import logger
from hypertool.instrumentation.export.otlp_encoding import encode_request

if TYPE_CHECKING:
    import requests
    from opentelemetry.sdk.trace import ReadableSpan

# Answers worth another attempt (as OpenTelemetry's exporter and the langfuse SDK retry).
RETRYABLE = frozenset({429, 502, 503, 504})
MAX_ATTEMPTS = 3
_BACKOFF_S = 0.5
CONTENT_TYPE = "application/x-protobuf"
# gzip level 6: within a few per cent of level 9's size on span batches, at half the CPU.
_GZIP_LEVEL = 6


class OtlpHttpExporter(SpanExporter):
    """POST each batch of spans to an OTLP/HTTP traces endpoint.

    Args:
        endpoint: The full URL (``…/v1/traces``, or Langfuse's ``/api/public/otel/v1/traces``).
        headers: Sent with every request (authentication, SDK name…).
        timeout: Seconds the whole export of one batch may take, retries included.
        compression: ``gzip``, ``deflate`` or None.
        session: A ``requests.Session`` to use (with hooks of the caller's); one is made when
            None.
        certificate: CA bundle to verify the endpoint with.
        client_certificate: Client certificate for mutual TLS.
        client_key: Its key.

    """

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        compression: str | None = "gzip",
        session: requests.Session | None = None,
        certificate: str | None = None,
        client_certificate: str | None = None,
        client_key: str | None = None,
    ) -> None:
        import requests

        self.endpoint = endpoint
        self.timeout = timeout
        self._compress: Callable[[bytes], bytes] | None = None
        self._headers = {"Content-Type": CONTENT_TYPE, **(headers or {})}
        if compression == "gzip":
            self._compress = _gzip
            self._headers["Content-Encoding"] = "gzip"
        elif compression == "deflate":
            self._compress = zlib.compress
            self._headers["Content-Encoding"] = "deflate"
        self._session = session or requests.Session()
        self._verify: bool | str = certificate or True
        self._cert: tuple[str, str] | str | None = (
            (client_certificate, client_key)
            if client_certificate and client_key
            else client_certificate
        )
        self._stopped = threading.Event()
        self.last_status: int | None = None

    def __repr__(self) -> str:
        # Headers hold credentials: never in a repr.
        return f"OtlpHttpExporter({self.endpoint!r})"

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Send one batch; SUCCESS when the endpoint accepted it within the timeout."""
        if self._stopped.is_set():
            return SpanExportResult.FAILURE
        body = encode_request(spans)
        if self._compress is not None:
            body = self._compress(body)
        status = post_with_retries(lambda left: self._post(body, left), self.timeout, self._stopped)
        if status is not None and 200 <= status < 300:
            return SpanExportResult.SUCCESS
        return SpanExportResult.FAILURE

    def _post(self, body: bytes, timeout: float) -> int | None:
        """POST ``body``; the HTTP status, or None when no answer came."""
        try:
            response: Any = self._session.post(
                self.endpoint,
                data=body,
                headers=self._headers,
                timeout=timeout,
                verify=self._verify,
                cert=self._cert,
            )
        except Exception as exc:  # refused, reset, timed out, TLS: the batch is not delivered
            logger.debug("export to %s failed: %s", self.endpoint, exc)
            return None
        status = int(response.status_code)
        self.last_status = status
        if not 200 <= status < 300:
            logger.debug("export to %s answered HTTP %d", self.endpoint, status)
        return status

    def shutdown(self) -> None:
        """Stop: pending retries end, later batches fail, connections close."""
        self._stopped.set()
        self._session.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here."""
        return True


def post_with_retries(
    post: Callable[[float], int | None],
    timeout: float,
    stopped: threading.Event,
    retryable: Container[int] = RETRYABLE,
) -> int | None:
    """Call ``post(seconds_left)`` until it answers 2xx or a status not worth retrying, the
    attempts run out, or ``timeout`` seconds pass; return the last status (None: no answer).

    ``retryable`` answers (429/502/503/504 by default) and no answer are retried with
    exponential backoff and jitter, never past the deadline; ``stopped`` (shutdown) ends the
    wait at once.
    """
    deadline = time.monotonic() + timeout
    status: int | None = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        status = post(left)
        if status is not None and 200 <= status < 300:
            return status
        if (status is not None and status not in retryable) or attempt == MAX_ATTEMPTS:
            break
        pause = min(_BACKOFF_S * 2 ** (attempt - 1) * (0.5 + random.random()), left)
        if stopped.wait(pause):
            break
    return status


def _gzip(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=_GZIP_LEVEL, mtime=0)
