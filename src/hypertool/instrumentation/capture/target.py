"""What capture hands calls to: the integration, seen through a protocol."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from hypertool.instrumentation.model.handles import GenerationContext
from hypertool.instrumentation.model.records import GenerationInput, Reservation


class Target(Protocol):
    """Admits calls under budgets, runs deferred work, records generations (a
    ``LangfuseIntegration``).
    """

    def admit(self, persona: str) -> Reservation | None:
        """Admit a call of ``persona`` before it is made, setting aside its expected usage.

        Raises:
            BudgetExceededError: The persona's budget is spent under policy ``block``.

        """

    def defer(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` soon on the recorder thread."""

    def record(self, generation: GenerationInput) -> GenerationContext:
        """Record a finished call."""


TargetGetter = Callable[[], Target]
"""The integration a call records with: a given one, or the process default at call time."""
