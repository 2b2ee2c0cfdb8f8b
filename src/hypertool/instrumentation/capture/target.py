"""What capture hands calls to: the integration, seen through a protocol."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from hypertool.instrumentation.model.handles import GenerationContext, PendingGeneration
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

    def score(
        self,
        target: GenerationContext | PendingGeneration,
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
        """Score a generation (scorers, on the recorder thread)."""


TargetGetter = Callable[[], Target]
"""The integration a call records with: a given one, or the process default at call time."""
