"""Budgets per persona, in tokens and optionally USD, over a period, with a policy.

Remaining = budget - used, and may go negative so an overrun stays visible. Policy ``warn``
logs once per persona and period and lets calls through; ``block`` raises
:class:`BudgetExceededError` before an instrumented call when the persona's budget is spent,
and holds under concurrency (see :mod:`.ledger`). :mod:`.accounts` holds the values budgets
are kept in.
"""

from hypertool.instrumentation.budget.accounts import (
    DEFAULT_REFRESH_S,
    NOTHING,
    PERIODS,
    POLICIES,
    BudgetExceededError,
    BudgetStatus,
    History,
    Period,
    Policy,
    Spent,
    period_start_ns,
)
from hypertool.instrumentation.budget.ledger import BudgetLedger

__all__ = [
    "DEFAULT_REFRESH_S",
    "NOTHING",
    "PERIODS",
    "POLICIES",
    "BudgetExceededError",
    "BudgetLedger",
    "BudgetStatus",
    "History",
    "Period",
    "Policy",
    "Spent",
    "period_start_ns",
]
