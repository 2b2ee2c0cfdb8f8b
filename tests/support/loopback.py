"""A loopback OTLP/HTTP receiver for end-to-end tests and benchmarks.

``LoopbackOTLP`` listens on 127.0.0.1 (an ephemeral port) and nowhere else. It records every
request it gets (path, headers, raw body) and decodes OTLP trace exports lazily, so a busy
benchmark does not pay for protobuf decoding while it measures. How it answers is set by
``mode``: ``200`` (default), ``401``, ``429``, ``500``, ``503``, ``"hang"`` (wait until the
receiver stops or ``hang_max`` seconds pass, then answer 200) or ``"slow"`` (``slow_s``
seconds per request, then 200). Every wait is bounded, and stopping the receiver releases
hanging handlers.

:meth:`LoopbackOTLP.route` answers requests of one method and path prefix from a function of the
request (a status or mode, and a body: bytes, or a value sent as JSON) — Langfuse's prompt and
score endpoints, say — instead of ``mode``.

Usage::

    with LoopbackOTLP() as receiver:
        integration = LangfuseIntegration("pk", "sk", host=receiver.url)
        ...
        spans = receiver.wait_for_spans(3, timeout=5)
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

TRACES_PATHS = ("/api/public/otel/v1/traces", "/v1/traces")
MODES = (200, 401, 429, 500, 503, "hang", "slow")

STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2


def decode_any_value(value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as a Python value (arrays as lists, kvlists as dicts)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [decode_any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: decode_any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def _attributes(key_values: Any) -> dict[str, Any]:
    return {kv.key: decode_any_value(kv.value) for kv in key_values}


@dataclass(frozen=True)
class SpanRecord:
    """One span as it arrived on the wire, decoded to plain Python values."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    status_code: int
    status_message: str
    start_ns: int
    end_ns: int
    scope: str
    resource: dict[str, Any]
    request_index: int
    scope_version: str = ""

    @property
    def is_root(self) -> bool:
        """True when the span has no parent."""
        return not self.parent_span_id


@dataclass
class ReceivedRequest:
    """One HTTP request the receiver got, with the status it answered."""

    index: int
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    mode: int | str
    received_at: float
    _decoded: ExportTraceServiceRequest | None = field(default=None, repr=False)

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    @property
    def is_traces(self) -> bool:
        """True for an OTLP trace export."""
        return self.method == "POST" and self.path.split("?", 1)[0] in TRACES_PATHS

    @property
    def payload(self) -> bytes:
        """The body, gunzipped (or inflated) as its Content-Encoding says."""
        encoding = (self.header("Content-Encoding") or "").lower()
        if encoding == "gzip":
            return gzip.decompress(self.body)
        if encoding == "deflate":
            return zlib.decompress(self.body)
        return self.body

    def export_request(self) -> ExportTraceServiceRequest:
        """The decoded OTLP ``ExportTraceServiceRequest`` (decoded once, then cached)."""
        if self._decoded is None:
            message = ExportTraceServiceRequest()
            message.ParseFromString(self.payload)
            self._decoded = message
        return self._decoded

    def spans(self) -> list[SpanRecord]:
        """The spans in this request, flattened."""
        if not self.is_traces:
            return []
        records = []
        for resource_spans in self.export_request().resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    records.append(
                        SpanRecord(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes=_attributes(span.attributes),
                            status_code=span.status.code,
                            status_message=span.status.message,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            scope=scope_spans.scope.name,
                            resource=resource,
                            request_index=self.index,
                            scope_version=scope_spans.scope.version,
                        )
                    )
        return records


Answer = Callable[["ReceivedRequest"], tuple[int | str, Any]]
"""A route's answer to a request: (status or mode, body bytes or a JSON-able value)."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, like a real Langfuse server

    def setup(self) -> None:
        super().setup()
        self.server.owner._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self, method: str) -> None:
        body = self._read_body() if method == "POST" else b""
        owner = self.server.owner
        headers = dict(self.headers.items())
        answer = owner._route_for(method, self.path)
        routed: Any = None
        if answer is not None:
            probe = ReceivedRequest(-1, method, self.path, headers, body, 0, 0, 0.0)
            status, routed = answer(probe)
        else:
            status = owner._status_for_request()
        request = owner._record(method, self.path, headers, body, status)
        owner._delay(status)
        if answer is not None:
            payload = routed if isinstance(routed, bytes) else json.dumps(routed).encode()
            content_type = "application/json"
        elif request.is_traces and request.status == 200:
            payload = ExportTraceServiceResponse().SerializeToString()
            content_type = "application/x-protobuf"
        else:
            payload = b"{}" if request.status == 200 else b'{"message": "loopback"}'
            content_type = "application/json"
        try:
            self.send_response(request.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except OSError:  # the client gave up (timeout) before we answered
            self.close_connection = True

    def do_POST(self) -> None:
        self._handle("POST")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:
        self._handle("PUT")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: LoopbackOTLP


class LoopbackOTLP:
    """An OTLP/HTTP receiver on 127.0.0.1 that records what it gets.

    Args:
        mode: How to answer (see :data:`MODES`); may be changed while running.
        hang_max: Longest a ``"hang"`` answer waits (it also ends when the receiver stops).
        slow_s: Delay of each ``"slow"`` answer.

    """

    def __init__(self, mode: int | str = 200, *, hang_max: float = 30.0, slow_s: float = 2.0):
        self.mode = mode
        self.hang_max = hang_max
        self.slow_s = slow_s
        self._requests: list[ReceivedRequest] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._routes: list[tuple[str, str, Answer]] = []

    def route(self, method: str, prefix: str, answer: Answer) -> None:
        """Answer ``method`` requests whose path starts with ``prefix`` with ``answer(request)``
        (the last route added for a path wins). The status may be ``"hang"`` or ``"slow"``
        (then 200 after the wait).
        """
        with self._cond:
            self._routes.insert(0, (method.upper(), prefix, answer))

    def _route_for(self, method: str, path: str) -> Answer | None:
        with self._cond:
            for wanted, prefix, answer in self._routes:
                if wanted == method and path.startswith(prefix):
                    return answer
        return None

    def json_requests(self, path_prefix: str, method: str = "POST") -> list[Any]:
        """The JSON bodies of the ``method`` requests to paths starting with ``path_prefix``."""
        return [
            json.loads(request.body)
            for request in self.requests
            if request.method == method and request.path.startswith(path_prefix)
        ]

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def mode(self) -> int | str:
        """How requests are answered."""
        return self._mode

    @mode.setter
    def mode(self, value: int | str) -> None:
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {value!r}")
        self._mode = value

    def start(self) -> LoopbackOTLP:
        """Start listening on 127.0.0.1 (ephemeral port) in a daemon thread."""
        if self._server is not None:
            return self
        self._stop.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="loopback-otlp",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hanging handlers, stop serving and close the socket."""
        server, self._server = self._server, None
        self._stop.set()
        if server is None:
            return
        server.shutdown()
        server.server_close()
        # Idle keep-alive connections would keep their handler threads reading: end them.
        for connection in list(self._connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackOTLP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port listened on."""
        assert self._server is not None, "receiver not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:43123`` (use it as the Langfuse host)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def traces_url(self) -> str:
        """Full URL of the Langfuse OTLP traces endpoint on this receiver."""
        return f"{self.url}{TRACES_PATHS[0]}"

    # -- what arrived ----------------------------------------------------------------------
    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request received so far (a copy)."""
        with self._cond:
            return list(self._requests)

    def trace_requests(self) -> list[ReceivedRequest]:
        """The OTLP trace exports received so far."""
        return [request for request in self.requests if request.is_traces]

    def spans(self, *, accepted_only: bool = False) -> list[SpanRecord]:
        """Every span received so far, flattened (only from 200 answers if ``accepted_only``)."""
        records: list[SpanRecord] = []
        for request in self.trace_requests():
            if accepted_only and request.status != 200:
                continue
            records.extend(request.spans())
        return records

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float, *, what: str = "condition"
    ) -> None:
        """Wait at most ``timeout`` seconds for ``predicate()``; raise TimeoutError if not."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if predicate():
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{what} not reached within {timeout} s")
                self._cond.wait(min(remaining, 0.05))

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Wait for at least ``n`` trace exports; return them all."""
        self.wait_for(
            lambda: sum(1 for r in self._requests if r.is_traces) >= n,
            timeout,
            what=f"{n} trace request(s) (got {len(self.trace_requests())})",
        )
        return self.trace_requests()

    def wait_for_spans(
        self,
        n: int,
        timeout: float = 5.0,
        *,
        where: Callable[[SpanRecord], bool] | None = None,
    ) -> list[SpanRecord]:
        """Wait at most ``timeout`` s until at least ``n`` spans (matching ``where``) arrived.

        Returns the matching spans; raises TimeoutError naming what did arrive otherwise.
        """
        deadline = time.monotonic() + timeout
        while True:
            spans = [s for s in self.spans() if where is None or where(s)]
            if len(spans) >= n:
                return spans
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                names = sorted({s.name for s in self.spans()})
                raise TimeoutError(
                    f"expected {n} span(s) within {timeout} s, got {len(spans)}; "
                    f"span names seen: {names}"
                )
            with self._cond:
                self._cond.wait(min(remaining, 0.05))

    def clear(self) -> None:
        """Forget what was received."""
        with self._cond:
            self._requests.clear()

    # -- handler side ----------------------------------------------------------------------
    def _status_for_request(self) -> int | str:
        return self._mode

    def _record(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        status: int | str,
    ) -> ReceivedRequest:
        with self._cond:
            request = ReceivedRequest(
                index=len(self._requests),
                method=method,
                path=path,
                headers=dict(headers),
                body=body,
                status=200 if status in ("hang", "slow") else int(status),
                mode=status,
                received_at=time.monotonic(),
            )
            self._requests.append(request)
            self._cond.notify_all()
        return request

    def _delay(self, status: int | str) -> None:
        if status == "hang":
            self._stop.wait(self.hang_max)
        elif status == "slow":
            self._stop.wait(self.slow_s)
