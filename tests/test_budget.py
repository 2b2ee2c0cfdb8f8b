"""Per-persona token budgets: used, remaining (negative when overrun), reset."""

from __future__ import annotations

import threading

from hypertool.instrumentation import BudgetLedger, Persona, PersonaRegistry, builtin_personas


def registry() -> PersonaRegistry:
    return PersonaRegistry(
        [
            Persona(name="backend-engineer", tokenBudget=1000),
            Persona(name="frontend-engineer", tokenBudget=500),
        ]
    )


def test_default_ledger_uses_builtin_budgets() -> None:
    ledger = BudgetLedger()
    builtin = builtin_personas()
    for name in builtin:
        assert ledger.budget(name) == builtin.budget(name)
        assert ledger.remaining(name) == builtin.budget(name)
        assert ledger.used(name) == 0


def test_record_used_remaining() -> None:
    ledger = BudgetLedger(registry())
    ledger.record("backend-engineer", 300)
    ledger.record("backend-engineer", 150)
    assert ledger.used("backend-engineer") == 450
    assert ledger.remaining("backend-engineer") == 1000 - 450
    assert ledger.used("frontend-engineer") == 0
    assert ledger.remaining("frontend-engineer") == 500


def test_remaining_goes_negative_when_overrun() -> None:
    ledger = BudgetLedger(registry())
    ledger.record("frontend-engineer", 400)
    ledger.record("frontend-engineer", 350)
    remaining = ledger.remaining("frontend-engineer")
    assert remaining is not None
    assert remaining < 0
    assert remaining == 500 - 750


def test_non_positive_records_are_ignored() -> None:
    ledger = BudgetLedger(registry())
    ledger.record("backend-engineer", 0)
    ledger.record("backend-engineer", -50)
    assert ledger.used("backend-engineer") == 0
    assert ledger.snapshot() == {}


def test_reset_one_persona_restores_its_full_budget() -> None:
    ledger = BudgetLedger(registry())
    ledger.record("backend-engineer", 1200)
    ledger.record("frontend-engineer", 100)
    assert ledger.remaining("backend-engineer") == -200
    ledger.reset("backend-engineer")
    assert ledger.used("backend-engineer") == 0
    assert ledger.remaining("backend-engineer") == 1000
    # other personas untouched
    assert ledger.used("frontend-engineer") == 100


def test_reset_accepts_any_spelling() -> None:
    ledger = BudgetLedger(registry())
    ledger.record("backend-engineer", 10)
    ledger.reset("Backend Engineer")
    assert ledger.used("backend-engineer") == 0


def test_reset_all() -> None:
    ledger = BudgetLedger(registry())
    ledger.record("backend-engineer", 10)
    ledger.record("frontend-engineer", 20)
    ledger.record("someone-else", 30)
    ledger.reset()
    assert ledger.snapshot() == {}
    assert ledger.remaining("backend-engineer") == 1000
    assert ledger.remaining("frontend-engineer") == 500


def test_unknown_persona_has_no_budget_but_counts_usage() -> None:
    ledger = BudgetLedger(registry())
    ledger.record("mystery-persona", 42)
    assert ledger.budget("mystery-persona") is None
    assert ledger.remaining("mystery-persona") is None
    assert ledger.used("mystery-persona") == 42


def test_canonical_names_merge() -> None:
    ledger = BudgetLedger(registry())
    ledger.record("Backend Engineer", 100)
    ledger.record("tta-backend-engineer", 20)
    ledger.record("backend_engineer", 3)
    assert ledger.used("backend-engineer") == 123
    assert ledger.used("BACKEND ENGINEER") == 123
    assert ledger.remaining("backend-engineer") == 1000 - 123
    assert ledger.snapshot() == {"backend-engineer": 123}


def test_sync_runs_before_reads() -> None:
    calls: list[str] = []
    ledger: BudgetLedger

    def sync() -> None:
        calls.append("sync")
        ledger.record("backend-engineer", 1)

    ledger = BudgetLedger(registry(), sync=sync)
    assert ledger.used("backend-engineer") == 1
    assert ledger.remaining("backend-engineer") == 1000 - 2
    assert calls == ["sync", "sync"]


def test_concurrent_records_are_all_counted() -> None:
    ledger = BudgetLedger(registry())

    def work() -> None:
        for _ in range(1000):
            ledger.record("backend-engineer", 1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert ledger.used("backend-engineer") == 8000
