"""Budgets per persona, in tokens and optionally USD, over a period, with a policy.

Remaining = budget - used, and may go negative so an overrun stays visible (the original
clamped it at 0, which made its budget alert impossible to fire). Policy ``warn`` logs once per
persona and period and lets calls through; ``block`` raises :class:`BudgetExceededError` before
an instrumented call when the persona's budget is already spent.

Under policy ``block`` budgets hold under concurrency:

- **Threads.** A call admitted by :meth:`BudgetLedger.admit` reserves the persona's mean
  tokens (and USD) per call until its generation is recorded, so calls in flight count before
  they finish: however many threads or tasks call at once, a budget is overspent by at most
  one call, plus how far calls in flight exceed the mean.
- **Processes sharing a store.** For ``day`` and ``month`` periods, what the others spent is
  read from the store (``history``) again at most every ``refresh_s`` seconds; this process's
  own usage is counted exactly, whether or not it has reached the store yet.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from hypertool.instrumentation._fork import reset_in_child
from hypertool.instrumentation.budget.accounts import (
    DEFAULT_REFRESH_S,
    Account,
    BudgetExceededError,
    BudgetStatus,
    History,
    Mean,
    Period,
    Policy,
    Spent,
    period_start_ns,
)
from hypertool.instrumentation.personas import PersonaRegistry, builtin_personas, canonical_name

logger = logging.getLogger("hypertool.instrumentation")


_MAX_CACHED_RULES = 10_000


class _Rules(NamedTuple):
    budget: int | None
    cost_budget: float | None
    period: Period
    policy: Policy


@dataclass(eq=False)
class _Reservation:
    """What one admitted call set aside (see :class:`~.model.records.Reservation`)."""

    ledger: BudgetLedger = field(repr=False)
    account: Account = field(repr=False)
    persona: str
    tokens: int
    cost: float
    epoch: int
    open: bool = True

    def settle(self, tokens: int, cost_usd: float | None) -> None:
        """Replace what was set aside by the call's real usage (idempotent)."""
        self.ledger._settle(self, tokens, cost_usd)

    def release(self) -> None:
        """Give back what was set aside: the call will not be recorded (idempotent)."""
        self.ledger._settle(self, None, None)

    def __del__(self) -> None:
        # Never settled (instrumentation failed after admission, work discarded at exit):
        # given back at the ledger's next use. No lock here: a collection may run anywhere.
        if self.open:
            self.open = False
            self.ledger._abandoned.append(self)


class BudgetLedger:
    """Counts tokens and cost per persona against the personas' budgets.

    Args:
        personas: Definitions: ``tokenBudget``, ``costBudgetUsd``, ``budgetPeriod``,
            ``budgetPolicy``.
        period: Period of personas that set none.
        policy: Policy of personas that set none.
        history: What others spent in this period (earlier runs, other processes sharing the
            store), so ``day`` and ``month`` budgets survive restarts and are shared.
        sync: Called before every read, so pending records are counted first.
        refresh_s: ``history`` is read again at most this often per persona (the staleness
            bound of other processes' usage).

    """

    def __init__(
        self,
        personas: PersonaRegistry | None = None,
        *,
        period: Period = "session",
        policy: Policy = "warn",
        history: History | None = None,
        sync: Callable[[], None] | None = None,
        refresh_s: float = DEFAULT_REFRESH_S,
    ) -> None:
        self.personas = personas if personas is not None else builtin_personas()
        self.default_period: Period = period
        self.default_policy: Policy = policy
        self.refresh_s = refresh_s
        self._history = history
        self._sync = sync or _nothing
        self._session_start = time.time_ns()
        self._accounts: dict[str, Account] = {}
        self._rule_cache: dict[str, _Rules] = {}
        self._means: dict[str, Mean] = {}
        self._abandoned: deque[_Reservation] = deque()
        self._epoch = 0  # a fork starts a new one: reservations before it are the parent's
        self._lock = threading.Lock()
        reset_in_child(self, BudgetLedger._after_fork)
        # admit() runs before every instrumented call: with no "block" policy it does nothing.
        self._any_blocking = policy == "block" or any(
            persona.budget_policy == "block" for persona in self.personas.values()
        )

    def _after_fork(self) -> None:
        # A parent thread may have held the lock at fork: the child's is new. The calls in
        # flight were the parent's: their reservations are not the child's to wait for. The
        # usage so far is kept (it is this process's history too), except where the store
        # shares it: there the child is another writer, and reads the parent's from the store.
        self._lock = threading.Lock()
        self._epoch += 1
        self._abandoned = deque()
        for name, account in self._accounts.items():
            account.reserved_tokens, account.reserved_cost, account.in_flight = 0, 0.0, 0
            account.reading = False
            if self._uses_history(name):
                account.tokens, account.cost, account.read_at = 0, 0.0, -math.inf

    # -- settings per persona --------------------------------------------------------------
    def _rules(self, persona: str) -> _Rules:
        """The persona's budget, USD budget, period and policy (looked up once per name:
        every recorded generation reads them).
        """
        rules = self._rule_cache.get(persona)
        if rules is None:
            found = self.personas.get(canonical_name(persona))
            rules = _Rules(
                found.token_budget if found is not None else None,
                found.cost_budget_usd if found is not None else None,
                (found.budget_period if found is not None else None) or self.default_period,
                (found.budget_policy if found is not None else None) or self.default_policy,
            )
            if len(self._rule_cache) < _MAX_CACHED_RULES:
                self._rule_cache[persona] = rules
        return rules

    def budget(self, persona: str) -> int | None:
        """The persona's budget in tokens, or None if it has none."""
        return self._rules(persona).budget

    def period(self, persona: str) -> Period:
        """The persona's budget period."""
        return self._rules(persona).period

    def policy(self, persona: str) -> Policy:
        """The persona's budget policy."""
        return self._rules(persona).policy

    def cost_budget(self, persona: str) -> float | None:
        """The persona's budget in USD, or None if it has none."""
        return self._rules(persona).cost_budget

    # -- accounts --------------------------------------------------------------------------
    def _account(self, name: str) -> Account:
        """The persona's account of the current period (call with the lock held)."""
        start = period_start_ns(self.period(name), None, self._session_start)
        account = self._accounts.get(name)
        if account is None or account.period_start != start:
            account = Account(start)
            if self._uses_history(name):
                # The first read of a period is waited for: nothing is known before it.
                found = self._read_history(name, start, first=True)
                if found is not None:
                    account.others, account.read_at = found, time.monotonic()
            self._accounts[name] = account
        return account

    def _uses_history(self, name: str) -> bool:
        return self._history is not None and self.period(name) != "session"

    def _read_history(self, name: str, start: int, *, first: bool) -> Spent | None:
        assert self._history is not None
        try:
            found = self._history(name, start)
        except Exception:
            if first:
                logger.warning("could not read earlier usage of %s", name, exc_info=True)
            else:
                logger.debug("could not read other processes' usage of %s", name, exc_info=True)
            return None
        return None if found is None else Spent(*found)

    def _refresh(self, name: str) -> None:
        """Read what others spent again when it is older than ``refresh_s``; one reader at a
        time, outside the lock (other calls go on with what was read before).
        """
        if not self._uses_history(name):
            return
        with self._lock:
            account = self._account(name)
            now = time.monotonic()
            if account.reading or now - account.read_at < self.refresh_s:
                return
            account.reading = True
        found = None
        try:
            found = self._read_history(name, account.period_start, first=False)
        finally:
            with self._lock:
                account.reading = False
                if found is not None:
                    account.others, account.read_at = found, now

    def _give_back_abandoned(self) -> None:
        """Release reservations that were dropped unsettled (call with the lock held)."""
        while self._abandoned:
            try:
                reservation = self._abandoned.popleft()
            except IndexError:
                break
            self._unreserve(reservation)

    def _unreserve(self, reservation: _Reservation) -> None:
        if reservation.epoch != self._epoch:  # made before a fork, in the parent
            return
        account = reservation.account
        account.reserved_tokens -= reservation.tokens
        account.reserved_cost -= reservation.cost
        account.in_flight -= 1

    # -- admission -------------------------------------------------------------------------
    def admit(self, persona: str) -> _Reservation | None:
        """Admit one call of ``persona``, setting aside its expected usage until it is recorded.

        Under policy ``block``, raises when what is used plus what calls in flight have set
        aside reaches the budget; the reservation is the persona's mean tokens and USD per
        call (nothing until one of its calls has been recorded). Does nothing, cheaply, for
        personas with policy ``warn``.

        Returns:
            The reservation (settled when the call's generation is recorded), or None when
            no budget is enforced for ``persona``.

        Raises:
            BudgetExceededError: The budget is spent, or set aside by calls in flight.

        """
        if not self._any_blocking:
            return None
        name = canonical_name(persona)
        if self.policy(name) != "block":
            return None
        budget, cost_budget = self.budget(name), self.cost_budget(name)
        if not budget and cost_budget is None:
            return None
        self._sync()
        self._refresh(name)
        with self._lock:
            self._give_back_abandoned()
            account = self._account(name)
            used, cost = account.used_tokens, account.used_cost
            reserved, reserved_cost = account.reserved_tokens, account.reserved_cost
            over_tokens = bool(budget) and used + reserved >= (budget or 0)
            over_cost = cost_budget is not None and cost + reserved_cost >= cost_budget
            if not (over_tokens or over_cost):
                tokens, usd = self._estimate(name, account)
                account.reserved_tokens += tokens
                account.reserved_cost += usd
                account.in_flight += 1
                return _Reservation(self, account, name, tokens, usd, self._epoch)
        if over_tokens:
            raise BudgetExceededError(name, used, budget or 0, reserved=reserved)
        assert cost_budget is not None
        raise BudgetExceededError(
            name, round(cost, 4), cost_budget, "USD", reserved=round(reserved_cost, 4)
        )

    def check(self, persona: str) -> None:
        """Raise :class:`BudgetExceededError` when ``persona`` (policy ``block``) has spent it
        (or calls in flight have set it aside). Does nothing for personas with policy ``warn``.
        """
        reservation = self.admit(persona)
        if reservation is not None:
            reservation.release()

    def _estimate(self, name: str, account: Account) -> tuple[int, float]:
        """Expected tokens and USD of one call: the persona's mean, from this ledger's calls,
        else from others' (the store's), else nothing yet.
        """
        mean = self._means.get(name)
        if mean is not None and mean.calls:
            return round(mean.tokens / mean.calls), mean.cost / mean.calls
        others = account.others
        if others.calls:
            return round(others.tokens / others.calls), others.cost_usd / others.calls
        return 0, 0.0

    def _settle(self, reservation: _Reservation, tokens: int | None, cost: float | None) -> None:
        with self._lock:
            settled = reservation.open
            if settled:
                reservation.open = False
                self._unreserve(reservation)
            self._give_back_abandoned()
        if settled and tokens is not None:
            self.record(reservation.persona, tokens, cost)

    # -- recording -------------------------------------------------------------------------
    def record(self, persona: str, tokens: int, cost_usd: float | None = None) -> None:
        """Add ``tokens`` (and ``cost_usd``) to what ``persona`` used this period."""
        name = canonical_name(persona)
        tokens, cost = max(tokens, 0), max(cost_usd or 0.0, 0.0)
        with self._lock:
            account = self._account(name)
            account.tokens += tokens
            account.cost += cost
            if tokens:  # a failed call used nothing, and is no estimate of the next one
                mean = self._means.get(name)
                if mean is None:
                    mean = self._means[name] = Mean()
                mean.calls += 1
                mean.tokens += tokens
                mean.cost += cost
            warn = not account.warned and self._over(name, account)
            if warn:
                account.warned = True
            used, spent = account.used_tokens, account.used_cost
        if warn:
            logger.warning(
                "persona %r is over its budget this %s: %d tokens used of %s, $%.4f of %s",
                name,
                self.period(name),
                used,
                self.budget(name),
                spent,
                self.cost_budget(name),
            )

    def _over(self, name: str, account: Account) -> bool:
        budget, cost_budget = self.budget(name), self.cost_budget(name)
        return bool(budget and account.used_tokens >= budget) or (
            cost_budget is not None and account.used_cost >= cost_budget
        )

    # -- reading ---------------------------------------------------------------------------
    def used(self, persona: str, *, sync: bool = True) -> int:
        """Tokens used by ``persona`` this period (by every process sharing the history).

        Args:
            persona: The persona.
            sync: Count the generations still waiting for the recorder thread first.

        """
        if sync:
            self._sync()
        name = canonical_name(persona)
        self._refresh(name)
        with self._lock:
            return self._account(name).used_tokens

    def cost(self, persona: str) -> float:
        """USD spent by ``persona`` this period (calls with a known price)."""
        self._sync()
        name = canonical_name(persona)
        self._refresh(name)
        with self._lock:
            return self._account(name).used_cost

    def reserved(self, persona: str) -> int:
        """Tokens set aside by ``persona``'s calls in flight (policy ``block``)."""
        with self._lock:
            self._give_back_abandoned()
            return self._account(canonical_name(persona)).reserved_tokens

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
        """Restore the full budget of ``persona`` (of every persona when None) for the rest of
        the period: what was used until now, here and by others, no longer counts.
        """
        self._sync()
        with self._lock:
            names = list(self._accounts) if persona is None else [canonical_name(persona)]
            for name in names:
                account = self._account(name)
                account.tokens, account.cost, account.warned = 0, 0.0, False
                account.baseline = account.others

    def snapshot(self) -> dict[str, int]:
        """Tokens used per persona this period."""
        self._sync()
        with self._lock:
            return {name: a.used_tokens for name, a in self._accounts.items() if a.used_tokens}


def _nothing() -> None:
    return None
