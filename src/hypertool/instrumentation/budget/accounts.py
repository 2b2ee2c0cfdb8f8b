"""The values budgets are kept in: periods, what a persona spent, its account, the error a
spent budget raises, and a persona's status.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, NamedTuple

Period = Literal["session", "day", "month"]
Policy = Literal["warn", "block"]
PERIODS: tuple[Period, ...] = ("session", "day", "month")
POLICIES: tuple[Policy, ...] = ("warn", "block")
DEFAULT_REFRESH_S = 1.0


class Spent(NamedTuple):
    """Usage of one persona: tokens, USD (calls with a known price), number of calls."""

    tokens: int
    cost_usd: float
    calls: int = 0


NOTHING = Spent(0, 0.0)

History = Callable[[str, int], "Spent | tuple[int, float] | tuple[int, float, int] | None"]
"""(persona, since_ns) → what everyone else spent since then — earlier runs, other processes
(e.g. from the local store), not this ledger's own records; None when it cannot be read
consistently right now (the ledger keeps what it had and reads again on its next call).
"""


class BudgetExceededError(RuntimeError):
    """A persona with policy ``block`` has spent its budget; the LLM was not called."""

    def __init__(
        self,
        persona: str,
        used: float,
        budget: float,
        unit: str = "tokens",
        reserved: float = 0,
    ) -> None:
        in_flight = f", {reserved} more reserved by calls in flight" if reserved else ""
        super().__init__(
            f"persona {persona!r} has spent its budget ({used} of {budget} {unit}{in_flight}); "
            "the call was blocked (budget policy 'block')"
        )
        self.persona = persona
        self.used = used
        self.budget = budget
        self.reserved = reserved


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
class Account:
    """One persona's usage in one period."""

    period_start: int
    tokens: int = 0  # recorded by this ledger
    cost: float = 0.0
    warned: bool = False
    others: Spent = NOTHING  # everyone else's, from ``history``
    baseline: Spent = NOTHING  # everyone else's when the budget was last reset
    read_at: float = -math.inf  # time.monotonic() of the last ``history`` read
    reading: bool = False
    reserved_tokens: int = 0  # set aside for calls in flight
    reserved_cost: float = 0.0
    in_flight: int = 0

    @property
    def used_tokens(self) -> int:
        """This ledger's tokens and everyone else's since the last reset."""
        return self.tokens + max(self.others.tokens - self.baseline.tokens, 0)

    @property
    def used_cost(self) -> float:
        """This ledger's USD and everyone else's since the last reset."""
        return self.cost + max(self.others.cost_usd - self.baseline.cost_usd, 0.0)


@dataclass
class Mean:
    """Tokens and USD per call of one persona (calls that used tokens), over this ledger's
    life.
    """

    calls: int = 0
    tokens: int = 0
    cost: float = 0.0


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
