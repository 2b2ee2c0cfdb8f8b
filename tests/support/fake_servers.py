"""A loopback stand-in for the OpenAI and Anthropic HTTP APIs, and helpers to read what was
recorded.

:class:`FakeProviderServer` listens on 127.0.0.1 (an ephemeral port, a daemon thread) and answers
in each provider's documented wire format:

- OpenAI ``POST /v1/chat/completions``: a ``chat.completion`` JSON body, or with ``"stream":
  true`` server-sent events ``data: {chat.completion.chunk}`` … ``data: [DONE]``, the last
  chunk carrying ``usage`` (and empty ``choices``) only when the request asked for
  ``stream_options.include_usage``, as the real API does; errors as ``{"error": {...}}``.
- Anthropic ``POST /v1/messages``: a ``message`` JSON body, or named events ``message_start``
  (input usage), ``content_block_start`` / ``ping`` / ``content_block_delta`` /
  ``content_block_stop``, ``message_delta`` (output usage), ``message_stop``; errors as
  ``{"type": "error", "error": {...}}``.

Replies are scripted with :meth:`FakeProviderServer.enqueue` (a :class:`Reply` or a function of
the request's JSON body returning one); without a script each call gets a default answer. The
server records every request, bounds every wait, and stops itself after ``lifetime_s``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hypertool.instrumentation import LangfuseIntegration
from support.loopback import LoopbackOTLP

# -- the numbers the fake server sends (tests assert exactly these) --------------------------
OPENAI_MODEL = "gpt-4o-2024-08-06"
OPENAI_USAGE: dict[str, Any] = {
    "prompt_tokens": 1200,
    "completion_tokens": 340,
    "total_tokens": 1540,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 64, "audio_tokens": 0},
}
ANTHROPIC_MODEL = "claude-sonnet-4-20250514"
ANTHROPIC_USAGE: dict[str, Any] = {
    "input_tokens": 95,
    "output_tokens": 503,
    "cache_read_input_tokens": 1800,
    "cache_creation_input_tokens": 248,
}
PIECES = ("The ", "answer ", "is ", "42.")
WEATHER_TOOL = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}

ReplyFactory = Callable[[dict[str, Any]], "Reply"]


@dataclass
class Reply:
    """One scripted answer: a JSON body, or server-sent events.

    Attributes:
        status: HTTP status.
        body: JSON body (when ``events`` is None).
        events: SSE events as (event name or None, data string).
        delay_s: Pause before each event (to make time to first token measurable).

    """

    status: int = 200
    body: Any = None
    events: list[tuple[str | None, str]] | None = None
    delay_s: float = 0.0


@dataclass
class ProviderRequest:
    """One request the fake server got."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


# -- OpenAI wire format ----------------------------------------------------------------------
def _openai_tool_call(tool: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return {
        "id": f"call_{index}_{tool['name']}",
        "type": "function",
        "function": {"name": tool["name"], "arguments": json.dumps(tool["arguments"])},
    }


def openai_completion(
    content: str | None = "".join(PIECES),
    *,
    model: str = OPENAI_MODEL,
    usage: dict[str, Any] | None = None,
    tool: dict[str, Any] | None = None,
) -> Reply:
    """A ``chat.completion`` body."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool is not None:
        message["tool_calls"] = [_openai_tool_call(tool)]
    return Reply(
        body={
            "id": "chatcmpl-fake-1",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if tool is not None else "stop",
                }
            ],
            "usage": usage or OPENAI_USAGE,
        }
    )


def openai_stream(
    pieces: Sequence[str] = PIECES,
    *,
    model: str = OPENAI_MODEL,
    usage: dict[str, Any] | None = None,
    tool: dict[str, Any] | None = None,
    delay_s: float = 0.0,
) -> ReplyFactory:
    """``chat.completion.chunk`` events; the usage chunk only if the request asked for it."""

    def build(request: dict[str, Any]) -> Reply:
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            data: dict[str, Any] = {
                "id": "chatcmpl-fake-2",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:
                data["usage"] = None
            return data

        chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
        chunks += [chunk({"content": piece}) for piece in pieces]
        if tool is not None:
            call = _openai_tool_call(tool)
            arguments = call["function"]["arguments"]
            head = {**call, "index": 0, "function": {"name": tool["name"], "arguments": ""}}
            chunks.append(chunk({"tool_calls": [head]}))
            for start in range(0, len(arguments), 7):
                piece = {"index": 0, "function": {"arguments": arguments[start : start + 7]}}
                chunks.append(chunk({"tool_calls": [piece]}))
        chunks.append(chunk({}, "tool_calls" if tool is not None else "stop"))
        if include_usage:
            final = chunk({})
            final["choices"] = []
            final["usage"] = usage or OPENAI_USAGE
            chunks.append(final)
        events: list[tuple[str | None, str]] = [(None, json.dumps(c)) for c in chunks]
        events.append((None, "[DONE]"))
        return Reply(events=events, delay_s=delay_s)

    return build


def openai_error(status: int, message: str, kind: str = "server_error") -> Reply:
    """An OpenAI error body."""
    return Reply(
        status=status,
        body={"error": {"message": message, "type": kind, "param": None, "code": kind}},
    )


# -- Anthropic wire format -------------------------------------------------------------------
def _anthropic_tool(tool: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": "toolu_fake_1",
        "name": tool["name"],
        "input": tool["arguments"],
    }


def anthropic_message(
    text: str = "".join(PIECES),
    *,
    model: str = ANTHROPIC_MODEL,
    usage: dict[str, Any] | None = None,
    tool: dict[str, Any] | None = None,
) -> Reply:
    """A ``message`` body."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if tool is not None:
        content.append(_anthropic_tool(tool))
    return Reply(
        body={
            "id": "msg_fake_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": "tool_use" if tool is not None else "end_turn",
            "stop_sequence": None,
            "usage": usage or ANTHROPIC_USAGE,
        }
    )


def anthropic_stream(
    pieces: Sequence[str] = PIECES,
    *,
    model: str = ANTHROPIC_MODEL,
    usage: dict[str, Any] | None = None,
    tool: dict[str, Any] | None = None,
    delay_s: float = 0.0,
) -> Reply:
    """Message stream events: input usage in ``message_start``, output in ``message_delta``."""
    usage = usage or ANTHROPIC_USAGE
    start_usage = {**usage, "output_tokens": 1}  # the API's placeholder until message_delta
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_fake_2",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
        for p in pieces
    ]
    events.append({"type": "content_block_stop", "index": 0})
    if tool is not None:
        block = {**_anthropic_tool(tool), "input": {}}
        events.append({"type": "content_block_start", "index": 1, "content_block": block})
        arguments = json.dumps(tool["arguments"])
        for start in range(0, len(arguments), 7):
            delta = {"type": "input_json_delta", "partial_json": arguments[start : start + 7]}
            events.append({"type": "content_block_delta", "index": 1, "delta": delta})
        events.append({"type": "content_block_stop", "index": 1})
    events.append(
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": "tool_use" if tool is not None else "end_turn",
                "stop_sequence": None,
            },
            "usage": {"output_tokens": usage["output_tokens"]},
        }
    )
    events.append({"type": "message_stop"})
    return Reply(events=[(e["type"], json.dumps(e)) for e in events], delay_s=delay_s)


def anthropic_error(status: int, message: str, kind: str = "api_error") -> Reply:
    """An Anthropic error body."""
    return Reply(status=status, body={"type": "error", "error": {"type": kind, "message": message}})


# -- the server ------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_POST(self) -> None:
        self.connection.settimeout(5.0)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b"{}"
        body = json.loads(raw or b"{}")
        owner = self.server.owner
        reply = owner._reply_for(ProviderRequest(self.path, dict(self.headers.items()), body))
        try:
            if reply.events is None:
                self._send_json(reply)
            else:
                self._send_events(reply, owner)
        except OSError:  # the client closed the stream early: expected in some tests
            self.close_connection = True

    def _send_json(self, reply: Reply) -> None:
        payload = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("request-id", "req_fake")
        self.end_headers()
        self.wfile.write(payload)

    def _send_events(self, reply: Reply, owner: FakeProviderServer) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")  # the body ends when the connection does
        self.end_headers()
        self.close_connection = True
        assert reply.events is not None
        texts = [
            (f"event: {name}\n" if name else "") + f"data: {data}\n\n"
            for name, data in reply.events
        ]
        if not reply.delay_s:  # all at once: a benchmark measures the client, not this server
            self.wfile.write("".join(texts).encode())
            return
        for text in texts:
            if owner._stopped.wait(reply.delay_s):
                return
            self.wfile.write(text.encode())
            self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FakeProviderServer


class FakeProviderServer:
    """OpenAI's and Anthropic's HTTP APIs on 127.0.0.1, answering scripted replies.

    Args:
        lifetime_s: The server stops itself after this long, stopped or not.

    """

    def __init__(self, *, lifetime_s: float = 60.0) -> None:
        self.requests: list[ProviderRequest] = []
        self._script: deque[Reply | ReplyFactory] = deque()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True

    def start(self) -> FakeProviderServer:
        """Listen on 127.0.0.1 (an ephemeral port) in a daemon thread."""
        server = _Server(("127.0.0.1", 0), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-provider",
            daemon=True,
        )
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        """Stop serving (idempotent); streams in progress end."""
        self._stopped.set()
        self._timer.cancel()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (Anthropic's ``base_url``)."""
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def openai_url(self) -> str:
        """OpenAI's ``base_url`` on this server."""
        return f"{self.url}/v1"

    def enqueue(self, *replies: Reply | ReplyFactory) -> None:
        """Answer the next requests with ``replies``, in order."""
        with self._lock:
            self._script.extend(replies)

    def _reply_for(self, request: ProviderRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            scripted = self._script.popleft() if self._script else None
        if scripted is None:
            scripted = self._default(request)
        return scripted(request.body) if callable(scripted) else scripted

    @staticmethod
    def _default(request: ProviderRequest) -> Reply | ReplyFactory:
        streaming = request.body.get("stream") is True
        if request.path.endswith("/chat/completions"):
            return openai_stream() if streaming else openai_completion()
        if request.path.endswith("/messages"):
            return anthropic_stream() if streaming else anthropic_message()
        return Reply(status=404, body={"error": {"message": f"no route {request.path}"}})


# -- reading what was recorded ---------------------------------------------------------------
def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@dataclass
class Recorded:
    """A generation as a sink got it: attributes (plain values), status, times."""

    name: str
    attributes: dict[str, Any]
    error: bool
    start_ns: int
    end_ns: int
    parent_span_id: str = ""

    @property
    def usage(self) -> dict[str, int]:
        """``usage_details`` decoded."""
        return dict(json.loads(self.attributes["langfuse.observation.usage_details"]))

    @property
    def cost(self) -> dict[str, float] | None:
        """``cost_details`` decoded (None when absent)."""
        raw = self.attributes.get("langfuse.observation.cost_details")
        return None if raw is None else dict(json.loads(raw))


def from_memory(span: ReadableSpan) -> Recorded:
    """A finished in-memory span as :class:`Recorded`."""
    attributes = {key: _plain(value) for key, value in (span.attributes or {}).items()}
    parent = format(span.parent.span_id, "016x") if span.parent is not None else ""
    return Recorded(
        span.name,
        attributes,
        span.status.status_code.name == "ERROR",
        span.start_time or 0,
        span.end_time or 0,
        parent,
    )


class Sink:
    """One integration and the way to read the generations it delivered.

    ``kind`` is ``"memory"`` (an in-memory exporter) or ``"wire"`` (Langfuse's OTLP endpoint
    on a loopback receiver, keys and all).
    """

    def __init__(self, kind: str, **kwargs: Any) -> None:
        self.kind = kind
        self.receiver: LoopbackOTLP | None = None
        self.exporter: InMemorySpanExporter | None = None
        if kind == "memory":
            self.exporter = InMemorySpanExporter()
            exporters = {"memory": self.exporter, **kwargs.pop("exporters", {})}
            self.integration = LangfuseIntegration(exporters=exporters, **kwargs)
        else:
            self.receiver = LoopbackOTLP().start()
            token = f"{time.monotonic_ns():x}"
            self.integration = LangfuseIntegration(
                public_key=f"pk-lf-providers-{token}",
                secret_key=f"sk-lf-providers-{token}",
                host=self.receiver.url,
                **kwargs,
            )

    def generations(self, n: int, timeout: float = 10.0) -> list[Recorded]:
        """Flush, then the first ``n`` generations received, oldest first."""
        assert self.integration.flush(timeout=timeout)
        if self.exporter is not None:
            spans = [from_memory(s) for s in self.exporter.get_finished_spans()]
        else:
            assert self.receiver is not None
            wire = self.receiver.wait_for_spans(
                n,
                timeout=timeout,
                where=lambda s: s.attributes.get("langfuse.observation.type") == "generation",
            )
            spans = [
                Recorded(
                    s.name,
                    {k: _plain(v) for k, v in s.attributes.items()},
                    s.status_code == 2,
                    s.start_ns,
                    s.end_ns,
                    s.parent_span_id,
                )
                for s in wire
            ]
        found = [s for s in spans if s.attributes.get("langfuse.observation.type") == "generation"]
        assert len(found) >= n, f"expected {n} generation(s), got {[s.name for s in spans]}"
        return sorted(found, key=lambda s: s.start_ns)

    def close(self) -> None:
        """Shut the integration down and stop the receiver."""
        self.integration.shutdown(0.0)
        if self.receiver is not None:
            self.receiver.stop()
