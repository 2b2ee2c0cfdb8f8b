"""Budgets per persona, in tokens and optionally USD, over a period, with a policy.

Remaining = budget - used, and may go negative so an overrun stays visible (the original
clamped it at 0, which made its budget alert impossible to fire). Policy ``warn`` logs once per
persona and period and lets calls through; ``block`` raises :class:`BudgetExceededError` before
an instrumented call when the persona's budget is already spent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from hypertool.instrumentation._fork import reset_in_child
from hypertool.instrumentation.personas import PersonaRegistry, builtin_personas, canonical_name

logger = logging.getLogger("hypertool.instrumentation")

Period = Literal["session", "day", "month"]
Policy = Literal["warn", "block"]
PERIODS: tuple[Period, ...] = ("session", "day", "month")
POLICIES: tuple[Policy, ...] = ("warn", "block")

History = Callable[[str, int], tuple[int, float]]
"""(persona, since_ns) → (tokens, USD) used since then, e.g. from the local store."""


class BudgetExceededError(RuntimeError):
    """A persona with policy ``block`` has spent its budget; the LLM was not called."""

    def __init__(self, persona: str, used: float, budget: float, unit: str = "tokens") -> None:
        super().__init__(
            f"persona {persona!r} has spent its budget ({used} of {budget} {unit}); "
            "the call was blocked (budget policy 'block')"
        )
        self.persona = persona
        self.used = used
        self.budget = budget


def period_start_ns(period: Period, now_ns: int | None = None, session_ns: int = 0) -> int:
    """Start of the current ``period`` (UTC), ns since the epoch."""
    if period == "session":
        return session_ns
    now = datetime.fromtimestamp((now_ns or time.time_ns()) / 1e9, tz=UTC)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        start = start.replace(day=1)
    return int(start.timestamp() * 1e9)


@dataclass
class _Account:
    period_start: int
    tokens: int = 0
    cost: float = 0.0
    warned: bool = False


@dataclass(frozen=True)
class BudgetStatus:
    """A persona's budget state."""

    persona: str
    period: Period
    policy: Policy
    budget: int | None
    used: int
    remaining: int | None
    cost_usd: float
    cost_budget_usd: float | None
    cost_remaining_usd: float | None

    @property
    def exceeded(self) -> bool:
        """True when the token or USD budget is spent."""
        over_tokens = self.remaining is not None and self.remaining <= 0 and bool(self.budget)
        over_cost = self.cost_remaining_usd is not None and self.cost_remaining_usd <= 0
        return over_tokens or over_cost


class BudgetLedger:
    """Counts tokens and cost per persona against the personas' budgets.

    Args:
        personas: Definitions: ``tokenBudget``, ``costBudgetUsd``, ``budgetPeriod``,
            ``budgetPolicy``.
        period: Period of personas that set none.
        policy: Policy of personas that set none.
        history: Usage already recorded in this period by earlier processes (``day`` and
            ``month`` periods survive restarts through it).
        sync: Called before every read, so pending records are counted first.
    """

    def __init__(
        self,
        personas: PersonaRegistry | None = None,
        *,
        period: Period = "session",
        policy: Policy = "warn",
        history: History | None = None,
        sync: Callable[[], None] | None = None,
    ) -> None:
        self.personas = personas if personas is not None else builtin_personas()
        self.default_period: Period = period
        self.default_policy: Policy = policy
        self._history = history
        self._sync = sync or _nothing
        self._session_start = time.time_ns()
        self._accounts: dict[str, _Account] = {}
        self._lock = threading.Lock()
        reset_in_child(self, BudgetLedger._after_fork)
        # check() runs before every instrumented call: with no "block" policy it does nothing.
        self._any_blocking = policy == "block" or any(
            persona.budget_policy == "block" for persona in self.personas.values()
        )

    def _after_fork(self) -> None:
        # A parent thread may have held the lock at fork: the child's is new (usage so far is
        # kept: it is this process's history too).
        self._lock = threading.Lock()

    # -- settings per persona --------------------------------------------------------------
    def budget(self, persona: str) -> int | None:
        """The persona's budget in tokens, or None if it has none."""
        return self.personas.budget(persona)

    def period(self, persona: str) -> Period:
        """The persona's budget period."""
        found = self.personas.get(canonical_name(persona))
        return (found.budget_period if found else None) or self.default_period

    def policy(self, persona: str) -> Policy:
        """The persona's budget policy."""
        found = self.personas.get(canonical_name(persona))
        return (found.budget_policy if found else None) or self.default_policy

    def cost_budget(self, persona: str) -> float | None:
        """The persona's budget in USD, or None if it has none."""
        found = self.personas.get(canonical_name(persona))
        return found.cost_budget_usd if found else None

    # -- recording -------------------------------------------------------------------------
    def _account(self, name: str, now_ns: int | None = None) -> _Account:
        start = period_start_ns(self.period(name), now_ns, self._session_start)
        account = self._accounts.get(name)
        if account is None or account.period_start != start:
            tokens, cost = 0, 0.0
            if self._history is not None and self.period(name) != "session":
                try:
                    tokens, cost = self._history(name, start)
                except Exception:
                    logger.warning("could not read earlier usage of %s", name, exc_info=True)
            account = _Account(start, tokens, cost)
            self._accounts[name] = account
        return account

    def record(self, persona: str, tokens: int, cost_usd: float | None = None) -> None:
        """Add ``tokens`` (and ``cost_usd``) to what ``persona`` used this period."""
        name = canonical_name(persona)
        with self._lock:
            account = self._account(name)
            account.tokens += max(tokens, 0)
            account.cost += max(cost_usd or 0.0, 0.0)
            warn = not account.warned and self._over(name, account)
            if warn:
                account.warned = True
        if warn:
            logger.warning(
                "persona %r is over its budget this %s: %d tokens used of %s, $%.4f of %s",
                name,
                self.period(name),
                account.tokens,
                self.budget(name),
                account.cost,
                self.cost_budget(name),
            )

    def _over(self, name: str, account: _Account) -> bool:
        budget, cost_budget = self.budget(name), self.cost_budget(name)
        return bool(budget and account.tokens >= budget) or (
            cost_budget is not None and account.cost >= cost_budget
        )

    def check(self, persona: str) -> None:
        """Raise :class:`BudgetExceededError` when ``persona`` (policy ``block``) has spent it.

        Does nothing for personas with policy ``warn``.
        """
        if not self._any_blocking or self.policy(persona) != "block":
            return
        self._sync()
        name = canonical_name(persona)
        with self._lock:
            account = self._account(name)
            if not self._over(name, account):
                return
            budget, cost_budget = self.budget(name), self.cost_budget(name)
        if budget and account.tokens >= budget:
            raise BudgetExceededError(name, account.tokens, budget)
        assert cost_budget is not None
        raise BudgetExceededError(name, round(account.cost, 4), cost_budget, "USD")

    # -- reading ---------------------------------------------------------------------------
    def used(self, persona: str, *, sync: bool = True) -> int:
        """Tokens used by ``persona`` this period.

        Args:
            persona: The persona.
            sync: Count the generations still waiting for the recorder thread first.

        """
        if sync:
            self._sync()
        with self._lock:
            return self._account(canonical_name(persona)).tokens

    def cost(self, persona: str) -> float:
        """USD spent by ``persona`` this period (calls with a known price)."""
        self._sync()
        with self._lock:
            return self._account(canonical_name(persona)).cost

    def remaining(self, persona: str) -> int | None:
        """Budget minus used; negative when overrun; None if the persona has no budget."""
        budget = self.budget(persona)
        return None if budget is None else budget - self.used(persona)

    def status(self, persona: str) -> BudgetStatus:
        """Everything about ``persona``'s budget."""
        name = canonical_name(persona)
        used, cost = self.used(name), self.cost(name)
        budget, cost_budget = self.budget(name), self.cost_budget(name)
        return BudgetStatus(
            persona=name,
            period=self.period(name),
            policy=self.policy(name),
            budget=budget,
            used=used,
            remaining=None if budget is None else budget - used,
            cost_usd=cost,
            cost_budget_usd=cost_budget,
            cost_remaining_usd=None if cost_budget is None else cost_budget - cost,
        )

    def reset(self, persona: str | None = None) -> None:
        """Restore the full budget of ``persona`` (of every persona when None)."""
        self._sync()
        with self._lock:
            names = list(self._accounts) if persona is None else [canonical_name(persona)]
            for name in names:
                start = period_start_ns(self.period(name), None, self._session_start)
                self._accounts[name] = _Account(start)

    def snapshot(self) -> dict[str, int]:
        """Tokens used per persona this period."""
        self._sync()
        with self._lock:
            return {name: a.tokens for name, a in self._accounts.items() if a.tokens}


def _nothing() -> None:
    return None
