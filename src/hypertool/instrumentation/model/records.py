"""What one LLM call is and what it produced: the values passed from capture to recording,
and from recording to in-process listeners (budgets, metrics).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from hypertool.instrumentation.model.handles import SpanContext, TraceContext
from hypertool.instrumentation.model.prompts import PromptLink
from hypertool.instrumentation.model.usage import Usage


@dataclass(frozen=True, slots=True)
class CallContext:
    """Where a call belongs, resolved once when it starts.

    Attributes:
        trace: The trace it joins; None when it is a trace of its own.
        parent: The span it is a child of (a workflow stage), or None.
        persona: Canonical persona that made the call.
        chatmode: Task mode, or "".
        workflow: Workflow of the enclosing stage, or "".
        stage: The enclosing stage, or "".

    """

    trace: TraceContext | None
    parent: SpanContext | None
    persona: str
    chatmode: str
    workflow: str = ""
    stage: str = ""


class Reservation(Protocol):
    """Tokens set aside in a persona's budget for one call in flight (policy ``block``).

    Made when the call is admitted; settled with the real usage when its generation is
    recorded, or released when it never will be.
    """

    def settle(self, tokens: int, cost_usd: float | None) -> None:
        """Replace the tokens set aside by what the call really used (idempotent)."""

    def release(self) -> None:
        """Give back the tokens set aside: the call is not recorded (idempotent)."""


@dataclass(frozen=True, slots=True)
class GenerationInput:
    """A finished LLM call, ready to be recorded as a generation.

    Attributes:
        context: Where the call belongs.
        name: Generation name (also the trace name when the call is a trace of its own).
        model: Model name.
        prompt: The input, as text.
        completion: The output, as text.
        usage: Token usage (exact or estimated).
        start_ns: Start, ns since the epoch.
        end_ns: End, ns since the epoch.
        error: The exception or message when the call failed.
        metadata: The caller's metadata.
        model_parameters: Temperature, max tokens…
        completion_start_ns: When a stream's first token arrived (ns since the epoch).
        attributes: Span attributes only a provider knows (system, response id, …), set last.
        reservation: What the call set aside in its persona's budget when it was admitted;
            recording settles it with the real usage.
        prompt_link: The managed prompt the call was made from (name and version), if any.

    """

    context: CallContext
    name: str
    model: str
    prompt: str
    completion: str
    usage: Usage
    start_ns: int
    end_ns: int
    error: BaseException | str | None = None
    metadata: Mapping[str, Any] | None = None
    model_parameters: Mapping[str, Any] | None = None
    completion_start_ns: int | None = None
    attributes: Mapping[str, Any] | None = None
    reservation: Reservation | None = None
    prompt_link: PromptLink | None = None


@dataclass(frozen=True, slots=True)
class GenerationRecord:
    """One finished generation, as listeners (budgets, metrics) are told of it.

    Attributes:
        name: Generation name.
        persona: Canonical persona that made the call.
        chatmode: Task mode, or "" when none.
        model: Model name.
        usage: Token usage (exact or estimated).
        start_ns: Start, ns since the epoch.
        end_ns: End, ns since the epoch.
        error: Error message, or None when the call succeeded.
        trace_id: 32-hex trace id.
        workflow: Workflow name, or "".
        stage: Workflow stage, or "".
        cost_usd: Cost in USD; None when the model's price is unknown.

    """

    name: str
    persona: str
    chatmode: str
    model: str
    usage: Usage
    start_ns: int
    end_ns: int
    error: str | None
    trace_id: str
    workflow: str = ""
    stage: str = ""
    cost_usd: float | None = None

    @property
    def duration_s(self) -> float:
        """Latency in seconds."""
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def status(self) -> str:
        """``success`` or ``error``."""
        return "error" if self.error is not None else "success"


GenerationListener = Callable[[GenerationRecord], None]
"""Told of every generation, in the process that made it."""
