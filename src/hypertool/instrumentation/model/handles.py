"""Handles for traces, spans and generations returned by :class:`LangfuseIntegration`, and
the trace and span entered with ``with`` in the current thread or task.

A handle links back to what made it through the :class:`Tracing` protocol, so this module
knows nothing of the integration.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, ParamSpec, Protocol, TypeVar

from opentelemetry import trace as trace_api

from hypertool.instrumentation._fork import on_fork_in_child
from hypertool.instrumentation._log import logger
from hypertool.instrumentation.model.usage import Usage

P = ParamSpec("P")
R = TypeVar("R")

_current: ContextVar[tuple[TraceContext, SpanContext | None] | None] = ContextVar(
    "hypertool_current", default=None
)
LAST_GENERATION: ContextVar[PendingGeneration | None] = ContextVar(
    "hypertool_last_generation", default=None
)
"""What :func:`last_generation` returns (set on the caller's path: ``.set(call)``)."""
# Parking a score on a generation not recorded yet is rare: one lock for all of them.
_park_lock = threading.Lock()


def _fresh_park_lock() -> None:
    global _park_lock
    _park_lock = threading.Lock()


on_fork_in_child(_fresh_park_lock)


class Tracing(Protocol):
    """What ends traces and spans (the integration)."""

    def end_trace(
        self,
        trace: TraceContext,
        status: str = "success",
        *,
        error: BaseException | str | None = None,
        output: Any = None,
    ) -> None:
        """End ``trace`` and the spans still open in it."""

    def end_span(
        self,
        span: SpanContext,
        *,
        status: str = "success",
        error: BaseException | str | None = None,
    ) -> None:
        """End ``span``."""

    def score(
        self,
        target: TraceContext | SpanContext | GenerationContext | PendingGeneration | str,
        name: str,
        value: float | bool | str,
        *,
        data_type: str | None = None,
        comment: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        observation_id: str | None = None,
        config_id: str | None = None,
        score_id: str | None = None,
        timestamp: datetime | float | None = None,
    ) -> str | None:
        """Score ``target``; the score's id, or None when it was not recorded."""


def stage_trace_id(trace_id: str, span_id: str) -> str:
    """The Langfuse trace id of a stage: a span started with its own persona is a Langfuse
    trace of its own (Langfuse keeps one user per trace), while the OpenTelemetry trace stays
    the workflow's.

    The id is the workflow's first 16 hex digits followed by the stage's span id, so either
    can be found from it (:func:`split_stage_trace_id`).
    """
    return f"{trace_id[:16]}{span_id}"


def split_stage_trace_id(langfuse_trace_id: str) -> tuple[str, str]:
    """The workflow trace's first 16 hex digits and the stage's span id of a stage's Langfuse
    trace id (see :func:`stage_trace_id`).
    """
    return langfuse_trace_id[:16], langfuse_trace_id[16:]


def current() -> tuple[TraceContext, SpanContext | None] | None:
    """The trace (and span) entered with ``with`` in this thread or task, if any."""
    return _current.get()


def bind_context(fn: Callable[P, R]) -> Callable[P, R]:
    """Make ``fn`` run inside the trace and span entered here, from whatever thread runs it.

    Threads started by ``ThreadPoolExecutor.submit``, ``threading.Thread`` or
    ``loop.run_in_executor`` do not inherit context variables; wrap the function::

        with langfuse.start_span(trace, "stage"):
            pool.submit(bind_context(call_llm), prompt)   # a child of "stage"

    The bound function may run in several threads at once.
    """
    entered = _current.get()

    @functools.wraps(fn)
    def bound(*args: P.args, **kwargs: P.kwargs) -> R:
        token = _current.set(entered)
        try:
            return fn(*args, **kwargs)
        finally:
            _current.reset(token)

    return bound


@dataclass(eq=False)
class TraceContext:
    """A trace: one workflow run or conversation.

    Attributes:
        trace_id: The 32-hex OpenTelemetry / Langfuse trace id.
        name: Trace name.
        persona: Canonical persona (the Langfuse user).
        chatmode: Task mode.
        metadata: Metadata given at start.
        url: Where the trace is in the Langfuse UI (None when Langfuse is not configured).
        status: ``running`` until ended, then ``success`` or ``error``.
        trace_attributes: Langfuse's trace-level attributes (user, name, tags, session,
            metadata), repeated on every span of the trace as langfuse's SDK does.

    """

    trace_id: str
    name: str
    persona: str
    chatmode: str
    metadata: dict[str, Any]
    url: str | None
    span: trace_api.Span = field(repr=False)
    integration: Tracing = field(repr=False)
    trace_attributes: dict[str, Any] = field(repr=False, default_factory=dict)
    status: str = "running"
    _open_spans: list[SpanContext] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _token: Token[tuple[TraceContext, SpanContext | None] | None] | None = field(
        default=None, repr=False
    )

    @property
    def ended(self) -> bool:
        """True once :meth:`LangfuseIntegration.end_trace` was called."""
        return self.status != "running"

    def score(self, name: str, value: float | bool | str, **options: Any) -> str | None:
        """Score this trace (see :meth:`LangfuseIntegration.score`)."""
        return self.integration.score(self, name, value, **options)

    def __enter__(self) -> TraceContext:
        self._token = _current.set((self, None))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        if not self.ended:
            status = "error" if exc is not None else "success"
            self.integration.end_trace(self, status=status, error=exc)


@dataclass(eq=False)
class SpanContext:
    """A span inside a trace: a stage of a workflow.

    Attributes:
        span_id: 16-hex span id.
        trace: The trace it belongs to.
        name: Span name.
        persona: Persona of the work in this span (the trace's unless one was given).
        metadata: Metadata given at start.
        persona_given: True when the span was started with a persona of its own: calls
            inside it are then that persona's (see :mod:`~hypertool.instrumentation.capture`),
            and in Langfuse it is a trace of its own with that persona as the user.
        langfuse_trace_id: The Langfuse trace the span is in: the trace's id, or for a span
            with a persona of its own (and the spans and calls inside it), its own
            (:func:`stage_trace_id`).
        url: Where that Langfuse trace is in the Langfuse UI (None when not configured).
        trace_attributes: Langfuse's trace-level attributes of that Langfuse trace.

    """

    span_id: str
    trace: TraceContext
    name: str
    persona: str
    metadata: dict[str, Any]
    span: trace_api.Span = field(repr=False)
    ended: bool = False
    persona_given: bool = False
    langfuse_trace_id: str = ""
    url: str | None = None
    trace_attributes: dict[str, Any] = field(repr=False, default_factory=dict)
    _token: Token[tuple[TraceContext, SpanContext | None] | None] | None = field(
        default=None, repr=False
    )

    def end(self, *, status: str = "success", error: BaseException | str | None = None) -> None:
        """End the span (idempotent)."""
        self.trace.integration.end_span(self, status=status, error=error)

    def score(self, name: str, value: float | bool | str, **options: Any) -> str | None:
        """Score this span (see :meth:`LangfuseIntegration.score`)."""
        return self.trace.integration.score(self, name, value, **options)

    def __enter__(self) -> SpanContext:
        self._token = _current.set((self.trace, self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        self.end(status="error" if exc is not None else "success", error=exc)


@dataclass(frozen=True)
class GenerationContext:
    """One recorded LLM call.

    Attributes:
        generation_id: 16-hex span id of the generation ("" when not recorded).
        trace_id: Trace it belongs to (the OpenTelemetry trace, the local store's).
        name: Generation name.
        model: Model name.
        persona: Persona that made the call.
        usage: Token usage.
        latency_s: Seconds between start and end.
        error: Error message, or None.
        cost_usd: Cost in USD; None when the model's price is unknown.
        chatmode: Chatmode of the call.
        workflow: Workflow of the enclosing stage, or "".
        stage: The enclosing stage, or "".
        langfuse_trace_id: The Langfuse trace it is in, when it is not ``trace_id``: a call
            inside a span with a persona of its own (a stage) is in that span's Langfuse
            trace (see :attr:`SpanContext.langfuse_trace_id`).

    """

    generation_id: str
    trace_id: str
    name: str
    model: str
    persona: str
    usage: Usage
    latency_s: float
    error: str | None = None
    cost_usd: float | None = None
    chatmode: str = ""
    workflow: str = ""
    stage: str = ""
    langfuse_trace_id: str = ""


class PendingGeneration:
    """A generation handed over to the recorder thread, to be scored once it is recorded.

    Instrumented calls (``ObservableLLM``, ``@observe_llm``, the provider clients) are
    recorded off the caller's path, so their ids are not known when the call returns: this
    handle stands for the generation in the meantime. :func:`last_generation` returns it; a
    score given for it is sent once the generation is recorded (at once if it already is).
    """

    __slots__ = ("_recorded", "_waiting")

    def __init__(self) -> None:
        self._recorded: GenerationContext | None = None
        self._waiting: list[Callable[[GenerationContext], None]] | None = None

    @property
    def recorded(self) -> GenerationContext | None:
        """The generation, once recorded; None until then."""
        return self._recorded

    def resolve(self, generation: GenerationContext) -> None:
        """The generation was recorded: run what waited for it (on the recording thread)."""
        with _park_lock:
            self._recorded = generation
            waiting, self._waiting = self._waiting, None
        for callback in waiting or ():
            try:
                callback(generation)
            except Exception:  # a waiting score must not break recording
                logger.debug("a score waiting for its generation failed", exc_info=True)

    def when_recorded(self, callback: Callable[[GenerationContext], None]) -> bool:
        """Run ``callback(generation)`` now if recorded (True), else once it is (False)."""
        with _park_lock:
            recorded = self._recorded
            if recorded is None:
                if self._waiting is None:
                    self._waiting = []
                self._waiting.append(callback)
                return False
        callback(recorded)
        return True


def last_generation() -> PendingGeneration | None:
    """The generation the last instrumented call in this thread or task produced.

    Set when an ``ObservableLLM`` / ``@observe_llm`` / OpenAI / Anthropic call returns (for a
    stream: when it is returned; the generation is recorded when it ends), so right after the
    call::

        response = await observable_llm("Design a REST API", persona="backend-engineer")
        langfuse.score(last_generation(), "relevance", 0.9)

    A call run in another task (``asyncio.create_task``, ``gather``) or thread sets it there,
    not here. ``create_generation`` returns its :class:`GenerationContext` instead.
    """
    return LAST_GENERATION.get()


def set_last_generation(handle: PendingGeneration) -> None:
    """Make ``handle`` what :func:`last_generation` returns in this thread or task."""
    LAST_GENERATION.set(handle)
