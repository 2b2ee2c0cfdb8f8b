"""Token budgets per persona: used, and remaining = budget - used (negative when overrun)."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

from hypertool.instrumentation.personas import PersonaRegistry, builtin_personas, canonical_name


def _nothing() -> None:
    return None


class BudgetLedger:
    """Counts tokens per persona against the personas' ``tokenBudget``.

    Remaining may go negative, so an overrun stays visible (the original clamped it at 0,
    which made its budget alert impossible to fire).
    """

    def __init__(
        self,
        personas: PersonaRegistry | None = None,
        *,
        sync: Callable[[], None] | None = None,
    ) -> None:
        self.personas = personas if personas is not None else builtin_personas()
        self._sync = sync or _nothing
        self._used: defaultdict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def record(self, persona: str, tokens: int) -> None:
        """Add ``tokens`` to what ``persona`` used."""
        if tokens <= 0:
            return
        name = canonical_name(persona)
        with self._lock:
            self._used[name] += tokens

    def used(self, persona: str) -> int:
        """Tokens used by ``persona`` since the last reset."""
        self._sync()
        return self._used.get(canonical_name(persona), 0)

    def budget(self, persona: str) -> int | None:
        """The persona's budget in tokens, or None if it has none."""
        return self.personas.budget(persona)

    def remaining(self, persona: str) -> int | None:
        """Budget minus used; negative when overrun; None if the persona has no budget."""
        budget = self.budget(persona)
        return None if budget is None else budget - self.used(persona)

    def reset(self, persona: str | None = None) -> None:
        """Restore the full budget of ``persona`` (of every persona when None)."""
        self._sync()
        with self._lock:
            if persona is None:
                self._used.clear()
            else:
                self._used.pop(canonical_name(persona), None)

    def snapshot(self) -> dict[str, int]:
        """Tokens used per persona."""
        self._sync()
        with self._lock:
            return dict(self._used)
