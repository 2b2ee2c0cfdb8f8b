"""Budgets under policy ``block`` hold under concurrency: threads, asyncio tasks, processes.

Before: every caller checked "used < budget" and went on, so N callers in flight overspent by
N - 1 calls (16 threads: 2.4x a small budget), and two processes sharing a ``day`` budget
through the store each read the other's usage once (1.9x). Now a call admitted reserves the
persona's mean tokens per call until it is recorded, and processes re-read the store.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from hypertool.instrumentation import (
    BudgetExceededError,
    LangfuseIntegration,
    ObservableLLM,
    Persona,
    PersonaRegistry,
    last_generation,
    observe_llm,
)

TOKENS = 10  # per call
BUDGET = 1_000  # 100 calls
WORKER = Path(__file__).with_name("budget_worker.py")


def response(prompt: Any = None) -> dict[str, Any]:
    return {
        "choices": [{"message": {"content": "ok"}}],
        "usage": {"prompt_tokens": TOKENS // 2, "completion_tokens": TOKENS // 2},
    }


def capped(**fields: Any) -> PersonaRegistry:
    definition = {"name": "capped", "tokenBudget": BUDGET, "budgetPolicy": "block", **fields}
    return PersonaRegistry([Persona.model_validate(definition)])


@pytest.fixture
def integration() -> Any:
    made = LangfuseIntegration(
        personas=capped(),
        exporters={"memory": InMemorySpanExporter()},
        metrics_registry=CollectorRegistry(),
    )
    yield made
    made.shutdown(0)


@pytest.mark.parametrize("threads", [16, 64])
def test_threads_overspend_by_at_most_one_call(
    integration: LangfuseIntegration, threads: int
) -> None:
    gate = threading.Event()

    def provider(prompt: str) -> dict[str, Any]:
        gate.wait(0.002)  # the LLM's latency: calls overlap (never set: a bounded wait)
        return response()

    llm = ObservableLLM(provider, model="gpt-4o", langfuse=integration)
    llm("warm-up", persona="capped")  # from here the mean tokens per call is known
    blocked: list[BudgetExceededError] = []
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait()
        for _ in range(BUDGET):  # a bound: each thread is blocked long before
            try:
                llm("prompt", persona="capped")
            except BudgetExceededError as exc:
                blocked.append(exc)
                return

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert len(blocked) == threads  # every thread was stopped by the budget
    used = integration.budgets.used("capped")
    assert BUDGET <= used <= BUDGET + TOKENS  # was BUDGET + (threads - 1) * TOKENS
    assert integration.budgets.reserved("capped") == 0  # every reservation was settled


async def test_asyncio_tasks_behind_a_semaphore_hold_the_budget(
    integration: LangfuseIntegration,
) -> None:
    @observe_llm(model="gpt-4o", persona="capped", langfuse=integration)
    async def call(prompt: str) -> dict[str, Any]:
        await asyncio.sleep(0)  # the task yields, as an awaited LLM call would
        return response()

    await call("warm-up")
    semaphore = asyncio.Semaphore(16)
    outcomes: list[str] = []

    async def one(number: int) -> None:
        async with semaphore:
            try:
                await call(f"prompt {number}")
                outcomes.append("done")
            except BudgetExceededError:
                outcomes.append("blocked")

    await asyncio.gather(*(one(n) for n in range(300)))
    used = integration.budgets.used("capped")
    assert BUDGET <= used <= BUDGET + TOKENS
    assert outcomes.count("done") == BUDGET // TOKENS - 1  # the warm-up was the first call
    assert integration.budgets.reserved("capped") == 0


def test_a_failed_or_unrecorded_call_gives_its_reservation_back(
    integration: LangfuseIntegration,
) -> None:
    def failing(prompt: str) -> str:
        raise TimeoutError("the provider timed out")

    llm = ObservableLLM(lambda prompt: response(), model="gpt-4o", langfuse=integration)
    llm("warm-up", persona="capped")
    with pytest.raises(TimeoutError):
        ObservableLLM(failing, model="gpt-4o", langfuse=integration)("p", persona="capped")
    reservation = integration.admit("capped")  # admitted, then never recorded at all
    assert reservation is not None and integration.budgets.reserved("capped") == TOKENS
    del reservation
    assert integration.budgets.reserved("capped") == 0
    assert integration.budgets.used("capped") == TOKENS  # the failed call used nothing


def test_a_call_whose_recording_fails_gives_its_reservation_back_at_once(
    integration: LangfuseIntegration, monkeypatch: pytest.MonkeyPatch
) -> None:
    """last_generation() holds the call until the next one: its reservation must not wait."""
    llm = ObservableLLM(lambda prompt: response(), model="gpt-4o", langfuse=integration)
    llm("warm-up", persona="capped")
    integration.drain()  # recorded before recording breaks

    def broken(generation: Any) -> Any:
        raise RuntimeError("recording failed")

    monkeypatch.setattr(integration, "record", broken)
    llm("p", persona="capped")
    integration.drain()
    assert last_generation() is not None and last_generation().recorded is None  # type: ignore[union-attr]
    assert integration.budgets.reserved("capped") == 0
    assert integration.budgets.used("capped") == TOKENS  # the warm-up only


def run_workers(
    store: Path, threads: int, refresh_s: float, flush: bool, budget: int, latency_s: float
) -> list[tuple[int, int]]:
    """Two processes spending the same ``day`` budget through ``store``, started together."""
    command = [sys.executable, str(WORKER), str(store), str(budget), str(threads)]
    command += [str(refresh_s), "1" if flush else "0", str(latency_s)]
    workers = [
        subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=store.parent
        )
        for _ in range(2)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        for worker in workers:  # both start spending at once
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    results = []
    for output in outputs:
        done, calls, blocked = output.split()
        assert done == "done"
        results.append((int(calls), int(blocked)))
    return results


def stored_tokens(store: Path) -> int:
    connection = sqlite3.connect(store)
    try:
        (tokens,) = connection.execute(
            "SELECT sum(total_tokens) FROM observations WHERE type = 'generation'"
        ).fetchone()
    finally:
        connection.close()
    return int(tokens)


def test_two_processes_sharing_a_store_hold_a_day_budget(tmp_path: Path) -> None:
    """Each process re-reads the store on every call (refresh 0) and delivers each call
    before its next: what one cannot see of the other is the other's call in flight, so the
    two together overspend by at most one call each (they used 2x the budget before).
    """
    store = tmp_path / "traces.db"
    results = run_workers(store, 1, refresh_s=0.0, flush=True, budget=BUDGET, latency_s=0.0)
    assert [blocked for _, blocked in results] == [1, 1]
    used = stored_tokens(store)
    assert sum(calls for calls, _ in results) * TOKENS == used  # the store holds every call
    assert BUDGET <= used <= BUDGET + 2 * TOKENS


def test_two_busy_processes_see_each_other_within_the_refresh_bound(tmp_path: Path) -> None:
    """4 threads each, 20 ms calls, the default refresh (1 s) and store delivery (0.2 s):
    alone, one process would spend the whole budget in 2 s; each sees the other's spending
    within about 1.2 s, so neither can. Together they stop past the budget by what the other
    spent in that window, not at 2x.
    """
    store = tmp_path / "traces.db"
    budget = 4 * BUDGET  # 400 calls
    results = run_workers(store, 4, refresh_s=1.0, flush=False, budget=budget, latency_s=0.02)
    assert [blocked for _, blocked in results] == [4, 4]
    used = stored_tokens(store)
    assert used >= budget
    assert all(calls * TOKENS < budget for calls, _ in results), results
    print(f"2 processes x 4 threads, 20 ms calls: used {used / budget:.2f}x the budget")
