"""Budgets under policy ``block`` with callers in flight: how far past the budget they stop.

Run with ``python benchmarks/budgets.py``. A persona with a budget of 1,000 tokens (100 calls
of 10 tokens, each call taking ``--latency`` seconds like an LLM's) is spent by:

1. 16 and then 64 threads of one process (the ledger's mean per call already known);
2. two processes of 4 threads each sharing a ``day`` budget through one store, with the
   default refresh (``HYPERTOOL_BUDGET_REFRESH_SECONDS`` = 1) and store delivery (0.2 s), for
   budgets of 400 and 2,000 calls.

It prints the tokens used as a multiple of the budget. Before reservations, N threads stopped
N - 1 calls past the budget (16 threads: 1.15x here, 2.4x on a 100-token budget), and two
processes each spent the whole shared budget (2.0x).
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

for _name in list(os.environ):
    if _name.startswith(("LANGFUSE_", "HYPERTOOL_", "OTEL_")):
        del os.environ[_name]
os.environ["HYPERTOOL_STORE"] = "off"

from prometheus_client import CollectorRegistry  # noqa: E402

from hypertool.instrumentation import (  # noqa: E402
    BudgetExceededError,
    LangfuseIntegration,
    ObservableLLM,
    Persona,
    PersonaRegistry,
)

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "deploy" / "budget_worker.py"
TOKENS, BUDGET = 10, 1_000


def threads_run(threads: int, latency_s: float) -> float:
    personas = PersonaRegistry(
        [Persona.model_validate({"name": "capped", "tokenBudget": BUDGET, "budgetPolicy": "block"})]
    )
    # No sink: the ledger is all that is measured here.
    integration = LangfuseIntegration(personas=personas, metrics_registry=CollectorRegistry())
    wait = threading.Event()

    def provider(prompt: str) -> dict[str, Any]:
        wait.wait(latency_s)
        return {
            "choices": [{"message": {"content": "ok"}}],
            "usage": {"prompt_tokens": TOKENS // 2, "completion_tokens": TOKENS // 2},
        }

    llm = ObservableLLM(provider, model="gpt-4o", langfuse=integration)
    llm("warm-up", persona="capped")
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait()
        for _ in range(BUDGET):
            try:
                llm("prompt", persona="capped")
            except BudgetExceededError:
                return

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    used = integration.budgets.used("capped")
    integration.shutdown(0)
    return used / BUDGET


def processes_run(budget: int, latency_s: float) -> float:
    with tempfile.TemporaryDirectory() as directory:
        store = Path(directory) / "traces.db"
        command = [sys.executable, str(WORKER), str(store), str(budget), "4", "1.0", "0"]
        command.append(str(latency_s))
        env = {k: v for k, v in os.environ.items() if k != "HYPERTOOL_STORE"}
        workers = [
            subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=env,
            )
            for _ in range(2)
        ]
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        for worker in workers:
            worker.communicate(timeout=300)
        connection = sqlite3.connect(store)
        (used,) = connection.execute(
            "SELECT sum(total_tokens) FROM observations WHERE type = 'generation'"
        ).fetchone()
        connection.close()
    return int(used) / budget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per call (0.02)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each case (3)")
    args = parser.parse_args()
    logging.getLogger("hypertool.instrumentation").setLevel(logging.ERROR)  # "over budget"
    cases = [
        (f"{threads} threads, one process", lambda t=threads: threads_run(t, args.latency))
        for threads in (16, 64)
    ]
    cases += [
        (
            f"2 processes x 4 threads, budget {budget // TOKENS} calls",
            lambda b=budget: processes_run(b, args.latency),
        )
        for budget in (4 * BUDGET, 20 * BUDGET)
    ]
    print(f"tokens used / budget ({args.latency * 1000:.0f} ms calls, {args.rounds} rounds)")
    for label, run in cases:
        ratios = [run() for _ in range(args.rounds)]
        shown = ", ".join(f"{ratio:.3f}" for ratio in ratios)
        print(f"  {label:<44} {min(ratios):.3f}-{max(ratios):.3f}x  ({shown})")


if __name__ == "__main__":
    main()
