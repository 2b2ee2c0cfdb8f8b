"""Each persona at a glance: its budget this period, and what it did in a time range.

The ``hypertool personas`` command and the web UI's Personas page are this one function.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

from hypertool.instrumentation.store.filters import Filters
from hypertool.instrumentation.store.quality import quality_of
from hypertool.instrumentation.store.reports import EMPTY_ACTIVITY, scored_report
from hypertool.instrumentation.store.usage import usage_since
from hypertool.instrumentation.store.values import iso

if TYPE_CHECKING:
    from hypertool.instrumentation.budget import Period
    from hypertool.instrumentation.personas import PersonaRegistry

DEFAULT_PERIOD = "month"
"""Budget period shown for personas that set none, unless HYPERTOOL_BUDGET_PERIOD says.

A reader of the store has no session; a month is what a budget usually means.
"""


@dataclass(frozen=True)
class Budgets:
    """The personas known to this configuration and the budget period of those without one."""

    registry: PersonaRegistry
    default_period: str


def configured_budgets() -> Budgets:
    """The built-in personas plus ``HYPERTOOL_PERSONAS_DIR``'s, and the default period.

    Raises:
        PersonaError: a persona file is malformed (the message names it).
        ConfigError: a setting is malformed (the message names the variable).

    """
    from hypertool.instrumentation._config import load_settings
    from hypertool.instrumentation.personas import builtin_personas, load_personas

    settings = load_settings()
    registry = builtin_personas()
    if settings.personas_dir:
        registry = registry.merged(load_personas(settings.personas_dir))
    period = settings.budget_period if settings.budget_period_set else DEFAULT_PERIOD
    return Budgets(registry, period)


def personas(
    connection: sqlite3.Connection,
    budgets: Budgets,
    filters: Filters,
    now_ns: int | None = None,
    *,
    only: str | None = None,
) -> list[dict[str, Any]]:
    """One row per persona: budget, used and remaining this period; activity in ``filters``.

    Registered personas come first, in the registry's order, then personas found only in
    the store, then generations without a persona (``persona`` None), if any.

    Each row: ``persona``, ``display_name``, ``registered``, ``budget_period``, ``since``
    (start of the period; None for ``session``: all stored), ``budget_tokens``,
    ``used_tokens``, ``remaining_tokens`` (negative when overrun), ``cost_usd`` (this period),
    ``cost_budget_usd``, ``cost_remaining_usd``, and ``activity``: the ``report --by persona``
    row of that persona for ``filters`` (traces, generations, tokens, cost, errors, p50/p95,
    the mean of each score and the gate pass rate).
    With ``only``, the row of that one persona (registered or not).
    """
    from hypertool.instrumentation.budget import period_start_ns

    now = time.time_ns() if now_ns is None else now_ns
    if only is not None:
        filters = replace(filters, persona=only)
    activity = {row.pop("group"): row for row in scored_report(connection, "persona", filters)}
    names: list[str | None]
    if only is not None:
        names = [only]
    else:
        names = list(budgets.registry)
        names += sorted(n for n in activity if n is not None and n not in budgets.registry)
        if None in activity:
            names.append(None)
    rows = []
    for name in names:
        persona = budgets.registry.get(name) if name is not None else None
        period = (persona.budget_period if persona else None) or budgets.default_period
        since = None if period == "session" else period_start_ns(cast("Period", period), now)
        used, cost = usage_since(connection, name, since) if name is not None else (None, None)
        budget = (persona.token_budget or None) if persona else None
        cost_budget = persona.cost_budget_usd if persona else None
        rows.append(
            {
                "persona": name,
                "display_name": persona.display_name if persona else name,
                "registered": persona is not None,
                "budget_period": period,
                "since": iso(since),
                "budget_tokens": budget,
                "used_tokens": used,
                "remaining_tokens": None if budget is None or used is None else budget - used,
                "cost_usd": cost,
                "cost_budget_usd": cost_budget,
                "cost_remaining_usd": (
                    None if cost_budget is None or cost is None else cost_budget - cost
                ),
                "activity": activity.get(name, {**EMPTY_ACTIVITY, **quality_of(None)}),
            }
        )
    return rows
