"""What one LLM call produced, handed to in-process listeners (budgets, metrics, the store)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hypertool.instrumentation._usage import Usage


@dataclass(frozen=True, slots=True)
class GenerationRecord:
    """One finished generation.

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
