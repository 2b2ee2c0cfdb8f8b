"""A process spending a shared ``day`` budget through the store (run as a subprocess).

Usage: ``python budget_worker.py STORE BUDGET THREADS REFRESH FLUSH LATENCY``. It builds an
integration writing to STORE, with persona ``shared`` (policy ``block``, period ``day``,
BUDGET tokens) whose ledger re-reads the store at most every REFRESH seconds, prints ``ready``,
waits for a line on standard input, then calls from THREADS threads until every thread is
blocked. Each call takes LATENCY seconds (an LLM's) and uses 10 tokens; with FLUSH = 1 it
is delivered to the store before the thread's next call. It prints
``done <calls> <blocked threads>``.
"""

from __future__ import annotations

import sys
import threading

from prometheus_client import CollectorRegistry

from hypertool.instrumentation import (
    BudgetExceededError,
    LangfuseIntegration,
    ObservableLLM,
    Persona,
    PersonaRegistry,
)

TOKENS_PER_CALL = 10
MAX_CALLS_PER_THREAD = 10_000  # a bound, far past any budget used here


def main(
    store: str, budget: int, threads: int, refresh_s: float, flush: bool, latency_s: float
) -> None:
    import os

    os.environ["HYPERTOOL_STORE"] = store
    personas = PersonaRegistry(
        [
            Persona.model_validate(
                {
                    "name": "shared",
                    "tokenBudget": budget,
                    "budgetPolicy": "block",
                    "budgetPeriod": "day",
                }
            )
        ]
    )
    integration = LangfuseIntegration(personas=personas, metrics_registry=CollectorRegistry())
    integration.budgets.refresh_s = refresh_s

    latency = threading.Event()  # never set: a bounded wait standing for the LLM's time

    def provider(prompt: str) -> dict[str, object]:
        if latency_s:
            latency.wait(latency_s)
        half = TOKENS_PER_CALL // 2
        return {
            "choices": [{"message": {"content": "ok"}}],
            "usage": {"prompt_tokens": half, "completion_tokens": half},
        }

    llm = ObservableLLM(provider, model="gpt-4o", langfuse=integration)
    llm("warm-up", persona="shared")  # the mean tokens per call is known from here on
    assert integration.flush(10)
    calls, blocked = [1], [0]
    lock = threading.Lock()

    def work() -> None:
        for _ in range(MAX_CALLS_PER_THREAD):
            try:
                llm("prompt", persona="shared")
            except BudgetExceededError:
                with lock:
                    blocked[0] += 1
                return
            with lock:
                calls[0] += 1
            if flush:
                integration.flush(10)

    print("ready", flush=True)
    sys.stdin.readline()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    integration.shutdown(10)
    print(f"done {calls[0]} {blocked[0]}", flush=True)


if __name__ == "__main__":
    store, budget, threads, refresh, flush, latency = sys.argv[1:7]
    main(store, int(budget), int(threads), float(refresh), flush == "1", float(latency))
