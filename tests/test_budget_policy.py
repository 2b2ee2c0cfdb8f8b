"""Budget policies (warn/block), USD budgets, periods, history and their configuration."""

from __future__ import annotations

import json
import logging
import types
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hypertool.instrumentation import (
    BudgetExceededError,
    BudgetLedger,
    ConfigError,
    LangfuseIntegration,
    ObservableLLM,
    Persona,
    PersonaError,
    PersonaRegistry,
    PriceTable,
    load_personas,
)
from hypertool.instrumentation import semconv as attr
from hypertool.instrumentation.budget import accounts as budget_accounts
from hypertool.instrumentation.budget import ledger as budget_ledger
from hypertool.instrumentation.budget import period_start_ns

OVER_BUDGET = "over its budget"


def persona(name: str, **fields: Any) -> Persona:
    return Persona.model_validate({"name": name, **fields})


def registry(*personas: Persona) -> PersonaRegistry:
    return PersonaRegistry(personas)


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


class Clock:
    """Stands in for the ``time`` module inside budget.py."""

    def __init__(self, moment: datetime) -> None:
        self.now = ns(moment)

    def set(self, moment: datetime) -> None:
        self.now = ns(moment)

    def time_ns(self) -> int:
        return self.now

    def monotonic(self) -> float:
        return self.now / 1e9


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(utc(2024, 3, 15, 10, 0, 0))
    clock_module = types.SimpleNamespace(time_ns=fake.time_ns, monotonic=fake.monotonic)
    for module in (budget_accounts, budget_ledger):  # the budget's clock: periods and refreshes
        monkeypatch.setattr(module, "time", clock_module)
    return fake


def response(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "choices": [{"message": {"content": "ok"}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
    }


class CountingLLM:
    """A provider stand-in that counts its calls and reports fixed usage."""

    def __init__(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.calls = 0
        self.usage = (prompt_tokens, completion_tokens)

    def __call__(self, prompt: str) -> dict[str, Any]:
        self.calls += 1
        return response(*self.usage)


def integration_with(
    personas: PersonaRegistry, exporter: InMemorySpanExporter | None = None
) -> LangfuseIntegration:
    return LangfuseIntegration(
        personas=personas, exporters={"memory": exporter or InMemorySpanExporter()}
    )


@pytest.fixture
def cleanup() -> Iterator[list[LangfuseIntegration]]:
    made: list[LangfuseIntegration] = []
    yield made
    for integration in made:
        integration.shutdown(0)


# -- the ledger with policy "block" ----------------------------------------------------------
def test_check_raises_once_used_reaches_the_budget() -> None:
    ledger = BudgetLedger(
        registry(persona("blocker", tokenBudget=100, budgetPolicy="block")),
    )
    ledger.check("blocker")
    ledger.record("blocker", 99)
    ledger.check("blocker")
    ledger.record("blocker", 1)
    with pytest.raises(BudgetExceededError) as raised:
        ledger.check("blocker")
    error = raised.value
    assert error.persona == "blocker"
    assert error.used == 100
    assert error.budget == 100
    assert "blocker" in str(error) and "block" in str(error)
    assert ledger.remaining("blocker") == 0
    ledger.record("blocker", 30)
    with pytest.raises(BudgetExceededError):
        ledger.check("blocker")
    assert ledger.remaining("blocker") == -30


def test_check_accepts_any_spelling_of_the_persona() -> None:
    ledger = BudgetLedger(registry(persona("api-dev", tokenBudget=10, budgetPolicy="block")))
    ledger.record("API Dev", 10)
    with pytest.raises(BudgetExceededError):
        ledger.check("tta-api-dev")


def test_check_ignores_warn_personas_and_personas_without_budget() -> None:
    ledger = BudgetLedger(
        registry(
            persona("blocker", tokenBudget=100, budgetPolicy="block"),
            persona("warner", tokenBudget=100, budgetPolicy="warn"),
            persona("unlimited", budgetPolicy="block"),
        )
    )
    ledger.record("warner", 500)
    ledger.record("unlimited", 500)
    ledger.check("warner")
    ledger.check("unlimited")
    assert ledger.status("warner").exceeded
    assert not ledger.status("unlimited").exceeded


def test_reset_unblocks() -> None:
    ledger = BudgetLedger(registry(persona("blocker", tokenBudget=100, budgetPolicy="block")))
    ledger.record("blocker", 150)
    with pytest.raises(BudgetExceededError):
        ledger.check("blocker")
    ledger.reset("blocker")
    ledger.check("blocker")
    assert ledger.remaining("blocker") == 100


# -- through ObservableLLM -------------------------------------------------------------------
def test_block_stops_the_llm_call_once_the_budget_is_spent(
    cleanup: list[LangfuseIntegration],
) -> None:
    exporter = InMemorySpanExporter()
    integration = integration_with(
        registry(persona("blocker", tokenBudget=100, budgetPolicy="block")), exporter
    )
    cleanup.append(integration)
    provider = CountingLLM(70, 50)
    llm = ObservableLLM(provider, model="gpt-4o", langfuse=integration, name="blocked-llm")

    llm("first", persona="blocker")
    assert provider.calls == 1
    with pytest.raises(BudgetExceededError) as raised:
        llm("second", persona="blocker")
    assert provider.calls == 1
    assert raised.value.persona == "blocker"
    assert raised.value.used == 120
    assert raised.value.budget == 100
    with pytest.raises(BudgetExceededError):
        llm("third", persona="blocker")
    assert provider.calls == 1

    assert integration.flush(timeout=5.0)
    generations = [
        span
        for span in exporter.get_finished_spans()
        if (span.attributes or {}).get(attr.OBSERVATION_TYPE) == attr.TYPE_GENERATION
    ]
    assert len(generations) == 1
    assert integration.budgets.used("blocker") == 120


async def test_block_stops_an_async_llm_call(cleanup: list[LangfuseIntegration]) -> None:
    integration = integration_with(
        registry(persona("blocker", tokenBudget=100, budgetPolicy="block"))
    )
    cleanup.append(integration)
    calls: list[str] = []

    async def provider(prompt: str) -> dict[str, Any]:
        calls.append(prompt)
        return response(100, 1)

    llm = ObservableLLM(provider, model="gpt-4o", langfuse=integration)
    await llm("first", persona="blocker")
    with pytest.raises(BudgetExceededError):
        await llm("second", persona="blocker")
    assert calls == ["first"]


def test_block_applies_per_persona(cleanup: list[LangfuseIntegration]) -> None:
    integration = integration_with(
        registry(
            persona("blocker", tokenBudget=100, budgetPolicy="block"),
            persona("other", tokenBudget=100, budgetPolicy="block"),
        )
    )
    cleanup.append(integration)
    provider = CountingLLM(100, 0)
    llm = ObservableLLM(provider, model="gpt-4o", langfuse=integration)
    llm("spend it", persona="blocker")
    with pytest.raises(BudgetExceededError):
        llm("blocked", persona="blocker")
    llm("still fine", persona="other")
    assert provider.calls == 2


def test_warn_logs_once_and_lets_calls_through(
    cleanup: list[LangfuseIntegration], caplog: pytest.LogCaptureFixture
) -> None:
    integration = integration_with(
        registry(persona("warner", tokenBudget=100, budgetPolicy="warn"))
    )
    cleanup.append(integration)
    provider = CountingLLM(80, 40)
    llm = ObservableLLM(provider, model="gpt-4o", langfuse=integration)
    with caplog.at_level(logging.WARNING, logger="hypertool.instrumentation"):
        for number in range(4):
            llm(f"call {number}", persona="warner")
        assert integration.flush(timeout=5.0)
    assert provider.calls == 4
    assert integration.budgets.remaining("warner") == 100 - 4 * 120
    warnings = [
        record
        for record in caplog.records
        if OVER_BUDGET in record.getMessage() and "warner" in record.getMessage()
    ]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


def test_cost_budget_blocks_on_usd(cleanup: list[LangfuseIntegration]) -> None:
    price = PriceTable().price("gpt-4o")
    assert price is not None
    per_call = (1_000 * price.input + 1_000 * price.output) / 1_000_000
    budget_usd = 1.5 * per_call
    integration = integration_with(
        registry(persona("spender", costBudgetUsd=budget_usd, budgetPolicy="block"))
    )
    cleanup.append(integration)
    provider = CountingLLM(1_000, 1_000)
    llm = ObservableLLM(provider, model="gpt-4o", langfuse=integration)

    llm("one", persona="spender")  # 0 spent before
    llm("two", persona="spender")  # 1 call's cost spent: under 1.5 calls
    with pytest.raises(BudgetExceededError) as raised:
        llm("three", persona="spender")  # 2 calls' cost spent: over
    assert provider.calls == 2
    assert "USD" in str(raised.value)
    assert raised.value.budget == pytest.approx(budget_usd)
    assert raised.value.used == pytest.approx(2 * per_call, abs=1e-4)
    status = integration.budgets.status("spender")
    assert status.cost_usd == pytest.approx(2 * per_call)
    assert status.cost_remaining_usd == pytest.approx(budget_usd - 2 * per_call)
    assert status.exceeded


def test_cost_budget_with_warn_lets_calls_through(cleanup: list[LangfuseIntegration]) -> None:
    integration = integration_with(registry(persona("spender", costBudgetUsd=0.000001)))
    cleanup.append(integration)
    provider = CountingLLM(1_000, 1_000)
    llm = ObservableLLM(provider, model="gpt-4o", langfuse=integration)
    for _ in range(3):
        llm("go", persona="spender")
    assert provider.calls == 3


# -- periods ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("moment", "day", "month"),
    [
        (utc(2024, 3, 15, 13, 45, 10, 500_000), utc(2024, 3, 15), utc(2024, 3, 1)),
        (utc(2024, 2, 29, 23, 59, 59, 999_999), utc(2024, 2, 29), utc(2024, 2, 1)),
        (utc(2025, 1, 1, 0, 0, 0), utc(2025, 1, 1), utc(2025, 1, 1)),
        (utc(2024, 12, 31, 23, 30), utc(2024, 12, 31), utc(2024, 12, 1)),
    ],
)
def test_period_start_is_the_utc_boundary(moment: datetime, day: datetime, month: datetime) -> None:
    now = ns(moment)
    assert period_start_ns("day", now) == ns(day)
    assert period_start_ns("month", now) == ns(month)
    assert period_start_ns("session", now, session_ns=12345) == 12345


def test_day_account_rolls_over_at_utc_midnight(clock: Clock) -> None:
    ledger = BudgetLedger(registry(persona("daily", tokenBudget=100, budgetPeriod="day")))
    clock.set(utc(2024, 3, 15, 10, 0))
    ledger.record("daily", 80)
    clock.set(utc(2024, 3, 15, 23, 59, 59))
    ledger.record("daily", 5)
    assert ledger.used("daily") == 85
    clock.set(utc(2024, 3, 16, 0, 0, 1))
    assert ledger.used("daily") == 0
    assert ledger.remaining("daily") == 100
    ledger.record("daily", 7)
    assert ledger.used("daily") == 7


def test_month_account_rolls_over_on_the_first(clock: Clock) -> None:
    ledger = BudgetLedger(
        registry(persona("monthly", tokenBudget=1_000)),
        period="month",
    )
    assert ledger.period("monthly") == "month"
    clock.set(utc(2024, 3, 1, 0, 0, 1))
    ledger.record("monthly", 300)
    clock.set(utc(2024, 3, 31, 23, 0))
    ledger.record("monthly", 200)
    assert ledger.used("monthly") == 500
    clock.set(utc(2024, 4, 1, 0, 0, 1))
    assert ledger.used("monthly") == 0


def test_session_account_does_not_roll_over(clock: Clock) -> None:
    ledger = BudgetLedger(registry(persona("sess", tokenBudget=100)))
    assert ledger.period("sess") == "session"
    ledger.record("sess", 40)
    clock.set(utc(2024, 5, 20, 12, 0))
    assert ledger.used("sess") == 40


def test_blocked_persona_is_unblocked_by_a_new_day(clock: Clock) -> None:
    ledger = BudgetLedger(
        registry(persona("daily", tokenBudget=100, budgetPeriod="day", budgetPolicy="block"))
    )
    ledger.record("daily", 100)
    with pytest.raises(BudgetExceededError):
        ledger.check("daily")
    clock.set(utc(2024, 3, 16, 0, 0, 0))
    ledger.check("daily")


def test_persona_period_overrides_the_default() -> None:
    ledger = BudgetLedger(
        registry(persona("daily", tokenBudget=10, budgetPeriod="day"), persona("plain")),
        period="month",
    )
    assert ledger.period("daily") == "day"
    assert ledger.period("plain") == "month"


# -- history ---------------------------------------------------------------------------------
def test_history_counts_earlier_usage_for_day_periods(clock: Clock) -> None:
    asked: list[tuple[str, int]] = []

    def history(name: str, since_ns: int) -> tuple[int, float]:
        asked.append((name, since_ns))
        return 40, 0.25

    ledger = BudgetLedger(
        registry(persona("daily", tokenBudget=100, budgetPeriod="day")), history=history
    )
    clock.set(utc(2024, 3, 15, 10, 0))
    assert ledger.used("daily") == 40
    assert ledger.cost("daily") == 0.25
    ledger.record("daily", 10, 0.5)
    assert ledger.used("daily") == 50
    assert ledger.cost("daily") == pytest.approx(0.75)
    assert ledger.remaining("daily") == 50
    assert asked == [("daily", ns(utc(2024, 3, 15)))]

    clock.set(utc(2024, 3, 16, 8, 0))
    assert ledger.used("daily") == 40
    assert asked[-1] == ("daily", ns(utc(2024, 3, 16)))
    assert len(asked) == 2


def test_history_counts_earlier_usage_for_month_periods(clock: Clock) -> None:
    asked: list[int] = []

    def history(name: str, since_ns: int) -> tuple[int, float]:
        asked.append(since_ns)
        return 900, 0.0

    ledger = BudgetLedger(
        registry(persona("monthly", tokenBudget=1_000, budgetPolicy="block")),
        period="month",
        history=history,
    )
    clock.set(utc(2024, 3, 15, 10, 0))
    ledger.check("monthly")
    ledger.record("monthly", 100)
    with pytest.raises(BudgetExceededError) as raised:
        ledger.check("monthly")
    assert raised.value.used == 1_000
    assert asked == [ns(utc(2024, 3, 1))]


def test_history_is_not_used_for_session_periods() -> None:
    asked: list[str] = []

    def history(name: str, since_ns: int) -> tuple[int, float]:
        asked.append(name)
        return 1_000, 1.0

    ledger = BudgetLedger(registry(persona("sess", tokenBudget=100)), history=history)
    ledger.record("sess", 10)
    assert ledger.used("sess") == 10
    assert ledger.cost("sess") == 0.0
    assert asked == []


def test_failing_history_counts_from_zero_and_logs(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    def history(name: str, since_ns: int) -> tuple[int, float]:
        raise OSError("store locked")

    ledger = BudgetLedger(
        registry(persona("daily", tokenBudget=100, budgetPeriod="day")), history=history
    )
    with caplog.at_level(logging.WARNING, logger="hypertool.instrumentation"):
        ledger.record("daily", 5)
    assert ledger.used("daily") == 5
    assert any("daily" in record.getMessage() for record in caplog.records)


# -- configuration ---------------------------------------------------------------------------
def test_env_budget_policy_block(
    monkeypatch: pytest.MonkeyPatch, cleanup: list[LangfuseIntegration]
) -> None:
    monkeypatch.setenv("HYPERTOOL_BUDGET_POLICY", "block")
    integration = integration_with(
        registry(persona("plain", tokenBudget=100), persona("lenient", budgetPolicy="warn"))
    )
    cleanup.append(integration)
    assert integration.budgets.policy("plain") == "block"
    assert integration.budgets.policy("lenient") == "warn"
    provider = CountingLLM(100, 0)
    llm = ObservableLLM(provider, model="gpt-4o", langfuse=integration)
    llm("spend", persona="plain")
    with pytest.raises(BudgetExceededError):
        llm("blocked", persona="plain")
    assert provider.calls == 1


def test_default_policy_is_warn_and_period_is_session(cleanup: list[LangfuseIntegration]) -> None:
    integration = integration_with(registry(persona("plain", tokenBudget=100)))
    cleanup.append(integration)
    assert integration.budgets.policy("plain") == "warn"
    assert integration.budgets.period("plain") == "session"


@pytest.mark.parametrize("period", ["day", "month", "session"])
def test_env_budget_period(
    monkeypatch: pytest.MonkeyPatch, cleanup: list[LangfuseIntegration], period: str
) -> None:
    monkeypatch.setenv("HYPERTOOL_BUDGET_PERIOD", period.upper())
    integration = integration_with(
        registry(persona("plain", tokenBudget=100), persona("daily", budgetPeriod="day"))
    )
    cleanup.append(integration)
    assert integration.budgets.period("plain") == period
    assert integration.budgets.period("daily") == "day"


@pytest.mark.parametrize(
    ("variable", "bad"),
    [("HYPERTOOL_BUDGET_POLICY", "stop"), ("HYPERTOOL_BUDGET_PERIOD", "week")],
)
def test_bad_env_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, bad: str
) -> None:
    monkeypatch.setenv(variable, bad)
    with pytest.raises(ConfigError) as raised:
        LangfuseIntegration()
    assert variable in str(raised.value)
    assert bad in str(raised.value)


def test_env_read_from_dotenv(cleanup: list[LangfuseIntegration]) -> None:
    Path(".env").write_text("HYPERTOOL_BUDGET_POLICY=block\n", encoding="utf-8")
    integration = integration_with(registry(persona("plain", tokenBudget=100)))
    cleanup.append(integration)
    assert integration.budgets.policy("plain") == "block"


# -- persona files ---------------------------------------------------------------------------
def write_persona(directory: Path, data: dict[str, Any], name: str = "p.json") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"tokenBudget": -1}, "tokenBudget"),
        ({"budgetPolicy": "stop"}, "budgetPolicy"),
        ({"budgetPeriod": "week"}, "budgetPeriod"),
        ({"costBudgetUsd": -0.5}, "costBudgetUsd"),
    ],
)
def test_invalid_budget_field_in_a_persona_file(
    tmp_path: Path, fields: dict[str, Any], field: str
) -> None:
    path = write_persona(tmp_path / "personas", {"name": "broken", **fields})
    with pytest.raises(PersonaError) as raised:
        Persona.from_file(path)
    assert str(path) in str(raised.value)
    assert field in str(raised.value)
    with pytest.raises(PersonaError) as from_dir:
        load_personas(path.parent)
    assert str(path) in str(from_dir.value)


def test_invalid_persona_dir_fails_the_integration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_persona(tmp_path / "personas", {"name": "broken", "budgetPolicy": "maybe"})
    monkeypatch.setenv("HYPERTOOL_PERSONAS_DIR", str(path.parent))
    with pytest.raises(PersonaError) as raised:
        LangfuseIntegration()
    assert str(path) in str(raised.value)
    assert "budgetPolicy" in str(raised.value)


def test_valid_persona_file_sets_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cleanup: list[LangfuseIntegration]
) -> None:
    path = write_persona(
        tmp_path / "personas",
        {
            "name": "file-persona",
            "tokenBudget": 50,
            "costBudgetUsd": 2.5,
            "budgetPeriod": "month",
            "budgetPolicy": "block",
        },
    )
    monkeypatch.setenv("HYPERTOOL_PERSONAS_DIR", str(path.parent))
    integration = LangfuseIntegration(exporters={"memory": InMemorySpanExporter()})
    cleanup.append(integration)
    budgets = integration.budgets
    assert budgets.budget("file-persona") == 50
    assert budgets.cost_budget("file-persona") == 2.5
    assert budgets.period("file-persona") == "month"
    assert budgets.policy("file-persona") == "block"
    provider = CountingLLM(50, 0)
    llm = ObservableLLM(provider, model="gpt-4o", langfuse=integration)
    llm("spend", persona="file-persona")
    with pytest.raises(BudgetExceededError):
        llm("blocked", persona="file-persona")
    assert provider.calls == 1


# -- reservations (calls in flight) ----------------------------------------------------------
def blocker_ledger(**kwargs: Any) -> BudgetLedger:
    return BudgetLedger(
        registry(persona("blocker", tokenBudget=100, budgetPolicy="block")), **kwargs
    )


def test_admit_reserves_the_mean_until_settled() -> None:
    ledger = blocker_ledger()
    ledger.record("blocker", 30)  # one call seen: the mean is 30
    first = ledger.admit("blocker")
    second = ledger.admit("blocker")
    assert first is not None and second is not None
    assert ledger.reserved("blocker") == 60 and ledger.used("blocker") == 30
    # 30 used + 60 reserved < 100: one more is admitted; then 120 >= 100: refused.
    third = ledger.admit("blocker")
    assert third is not None
    with pytest.raises(BudgetExceededError, match="90 more reserved by calls in flight"):
        ledger.admit("blocker")
    first.settle(10, None)  # the real usage replaces the estimate
    second.release()  # never recorded: nothing used
    third.settle(45, None)
    third.settle(45, None)  # idempotent
    assert ledger.reserved("blocker") == 0 and ledger.used("blocker") == 30 + 10 + 45


def test_a_reservation_dropped_unsettled_is_given_back() -> None:
    ledger = blocker_ledger()
    ledger.record("blocker", 50)
    reservation = ledger.admit("blocker")
    assert ledger.reserved("blocker") == 50
    del reservation  # instrumentation failed after admission: nobody will settle it
    assert ledger.reserved("blocker") == 0
    assert ledger.admit("blocker") is not None


def test_admit_does_nothing_without_a_block_policy_or_a_budget() -> None:
    ledger = BudgetLedger(
        registry(
            persona("warner", tokenBudget=10, budgetPolicy="warn"),
            persona("unlimited", budgetPolicy="block"),
        )
    )
    assert ledger.admit("warner") is None and ledger.admit("unlimited") is None
    assert BudgetLedger(registry(persona("x", tokenBudget=1))).admit("x") is None


def test_failed_calls_do_not_lower_the_estimate() -> None:
    ledger = blocker_ledger()
    ledger.record("blocker", 20)
    ledger.record("blocker", 0)  # a failed call: nothing used
    reservation = ledger.admit("blocker")
    assert reservation is not None and reservation.tokens == 20


def test_usd_budgets_reserve_the_mean_cost() -> None:
    ledger = BudgetLedger(
        registry(persona("payer", costBudgetUsd=1.0, budgetPolicy="block")), policy="block"
    )
    ledger.record("payer", 10, 0.4)
    kept = [ledger.admit("payer"), ledger.admit("payer")]  # 0.4 used, then 0.4 and 0.8 set aside
    with pytest.raises(BudgetExceededError, match=r"0\.4 of 1\.0 USD, 0\.8 more reserved"):
        ledger.admit("payer")
    assert all(reservation is not None for reservation in kept)


# -- processes sharing the history -------------------------------------------------------------
def test_history_is_read_again_at_most_every_refresh_seconds(clock: Clock) -> None:
    others = [0]
    asked: list[int] = []

    def history(name: str, since_ns: int) -> tuple[int, float]:
        asked.append(since_ns)
        return others[0], 0.0

    ledger = BudgetLedger(
        registry(persona("daily", tokenBudget=100, budgetPeriod="day", budgetPolicy="block")),
        history=history,
        refresh_s=1.0,
    )
    assert ledger.used("daily") == 0
    ledger.record("daily", 5)  # our own, counted exactly whenever the store has it
    others[0] = 60  # another process spends
    clock.now += 999_000_000  # 0.999 s: not read again yet
    assert ledger.used("daily") == 5 and len(asked) == 1
    clock.now += 1_000_000
    assert ledger.used("daily") == 65 and len(asked) == 2
    others[0] = 95
    clock.now += 1_000_000_000
    with pytest.raises(BudgetExceededError):
        ledger.admit("daily")  # 95 + 5 >= 100, seen within the refresh bound
    assert len(asked) == 3


def test_an_unreadable_history_keeps_the_last_view_and_is_read_on_the_next_call(
    clock: Clock,
) -> None:
    answers: list[tuple[int, float] | None] = [(40, 0.0), None, (70, 0.0)]

    def history(name: str, since_ns: int) -> tuple[int, float] | None:
        return answers.pop(0)

    ledger = BudgetLedger(
        registry(persona("daily", tokenBudget=100, budgetPeriod="day")),
        history=history,
        refresh_s=1.0,
    )
    assert ledger.used("daily") == 40
    clock.now += 2_000_000_000
    assert ledger.used("daily") == 40  # read, inconsistent: the last view stays
    assert ledger.used("daily") == 70  # and it is read again at once
    assert answers == []


def test_reset_forgets_what_others_had_spent_until_then(clock: Clock) -> None:
    others = [50]
    ledger = BudgetLedger(
        registry(persona("daily", tokenBudget=100, budgetPeriod="day")),
        history=lambda name, since: (others[0], 0.0),
        refresh_s=1.0,
    )
    ledger.record("daily", 10)
    assert ledger.used("daily") == 60
    ledger.reset("daily")
    assert ledger.used("daily") == 0
    others[0] = 70
    clock.now += 2_000_000_000
    assert ledger.used("daily") == 20  # only what others spent since the reset


def test_the_refresh_bound_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, cleanup: list[LangfuseIntegration]
) -> None:
    monkeypatch.setenv("HYPERTOOL_BUDGET_REFRESH_SECONDS", "0.25")
    integration = LangfuseIntegration()
    cleanup.append(integration)
    assert integration.budgets.refresh_s == 0.25


def test_a_forked_child_does_not_wait_for_the_parents_calls_in_flight() -> None:
    ledger = blocker_ledger()
    ledger.record("blocker", 40)
    parents = [ledger.admit("blocker"), ledger.admit("blocker")]  # 40 + 80 >= 100: full
    with pytest.raises(BudgetExceededError):
        ledger.admit("blocker")
    ledger._after_fork()  # what the fork hook runs in the child
    assert ledger.reserved("blocker") == 0
    child = ledger.admit("blocker")  # the parent's calls are not the child's to wait for
    assert child is not None
    for reservation in parents:
        assert reservation is not None
        reservation.release()  # made before the fork: changes nothing here
    assert ledger.reserved("blocker") == 40
