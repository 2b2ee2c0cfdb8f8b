"""One fault scenario: N instrumented calls while the Langfuse endpoint misbehaves.

Shared by the fault suite (``tests/faults``) and ``benchmarks/faults.py``. Everything runs on
127.0.0.1: a :class:`~loopback.LoopbackOTLP` receiver answers as the mode says, or, for
``"refused"``, nothing listens on the port at all. Beside Langfuse the local store is a sink
(a :class:`StoreExporter` on a temporary file), so what Langfuse cannot take can be checked
to be kept there.

The application is a deterministic stand-in LLM function; the same prompts are run through it
bare first, so "the instrumented call returned what the bare call returns" is checked against
values computed without any instrumentation. Every :data:`ERROR_EVERY`-th call raises, as a
real provider would, and the exception must reach the caller unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from hypertool.instrumentation import LangfuseIntegration, ObservableLLM
from hypertool.instrumentation.store import StoreError, StoreExporter, TraceStore
from support.loopback import LoopbackOTLP

REFUSED = "refused"
MODES: tuple[int | str, ...] = (200, 500, 401, 429, 503, REFUSED, "hang", "slow")
FAILING_MODES = tuple(mode for mode in MODES if mode != 200)

PERSONA = "fault-tester"  # no built-in budget: no budget warning muddles the log checks
MODEL = "gpt-4"  # a priced model: no "no price known" warning either
CALLS_PER_TRACE = 100
ERROR_EVERY = 97
DROPPED = "hypertool_export_dropped_spans_total"
EXPORT_TIMEOUT_S = 1.0
# The slow receiver answers after SLOW_S; its export timeout is longer, so batches do get
# through, just slowly: the interesting case of partial delivery.
SLOW_S = 2.0
SLOW_EXPORT_TIMEOUT_S = 3.0
CHILD = Path(__file__).with_name("exit_child.py")
ENV_PREFIXES = ("LANGFUSE_", "HYPERTOOL_", "OTEL_")
CHILD_CALLS_TIMEOUT_S = 60.0
HANG_MAX_S = 30.0  # a hanging answer also ends as soon as the receiver stops
# Recording and storing run beside the application: ~2,500 generations/s here with two sinks.
STORE_TIMEOUT_S = 20.0


class AppError(RuntimeError):
    """What the stand-in LLM raises now and then, as a provider would."""


def app_llm(prompt: str) -> dict[str, Any]:
    """The application's LLM function: deterministic, OpenAI-shaped, with usage."""
    number = int(prompt.rsplit("-", 1)[1])
    if number % ERROR_EVERY == ERROR_EVERY - 1:
        raise AppError(f"provider failed on {prompt}")
    return {
        "id": f"chatcmpl-{prompt}",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": f"echo {prompt}"}}],
        "usage": {"prompt_tokens": 3 + number % 5, "completion_tokens": 7 + number % 3},
    }


def bare_outcome(prompt: str) -> tuple[str, Any]:
    """What the application sees without instrumentation: ("ok", value) or ("error", repr)."""
    try:
        return "ok", app_llm(prompt)
    except AppError as exc:
        return "error", repr(exc)


def prompts_for(calls: int) -> list[str]:
    return [f"t{i // CALLS_PER_TRACE}-{i}" for i in range(calls)]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def endpoint(mode: int | str) -> Iterator[tuple[str, LoopbackOTLP | None]]:
    """The Langfuse host for ``mode`` and its receiver (None when connections are refused)."""
    if mode == REFUSED:
        yield f"http://127.0.0.1:{closed_port()}", None
        return
    with LoopbackOTLP(mode, hang_max=HANG_MAX_S, slow_s=SLOW_S) as receiver:
        yield receiver.url, receiver


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


@dataclass
class Result:
    """What one scenario measured; the tests assert on it, the benchmark prints it."""

    mode: int | str
    host: str
    calls: int
    traces: int
    errors_expected: int
    outcomes_match: bool = False
    mismatches: list[str] = field(default_factory=list)
    call_s: list[float] = field(default_factory=list)
    end_trace_s: list[float] = field(default_factory=list)
    calls_total_s: float = 0.0
    flush_s: float = 0.0
    flush_ok: bool = False
    shutdown_s: float = 0.0
    langfuse_exported: int = 0
    langfuse_dropped_processor: int = 0
    dropped_metric: float = 0.0
    store_dropped_metric: float = 0.0
    received_spans: int = 0
    received_span_ids: set[str] = field(default_factory=set)
    received_requests: int = 0
    received_statuses: set[int] = field(default_factory=set)
    store_generations: int = 0
    store_traces: int = 0
    store_errors: int = 0
    store_tokens: int = 0
    store_catch_up_s: float | None = None

    @property
    def spans(self) -> int:
        """Spans produced: one per generation plus one root per trace."""
        return self.calls + self.traces

    @property
    def call_p99_us(self) -> float:
        return p99(self.call_s) * 1e6


def run(
    mode: int | str,
    store_path: Path,
    *,
    calls: int = 5000,
    after_calls: Any = None,
    full_delivery_timeout: float = 0.0,
    shutdown_timeout: float = 1.0,
    store_timeout: float = STORE_TIMEOUT_S,
) -> Result:
    """Run ``calls`` instrumented calls against ``mode`` and measure what the brief asks.

    Args:
        mode: Receiver mode, or ``"refused"``.
        store_path: Where the local store sink writes.
        calls: Instrumented calls, in traces of :data:`CALLS_PER_TRACE`.
        after_calls: Called with (integration, receiver) after ``flush(timeout=1)``, before
            shutdown (a test may wait for something there).
        full_delivery_timeout: When > 0, a second flush with this timeout before shutdown
            (the 200 mode checks that everything does arrive).
        shutdown_timeout: Seconds ``shutdown`` may take.
        store_timeout: Longest wait for the store to hold every generation after the flush.

    """
    prompts = prompts_for(calls)
    expected = [bare_outcome(prompt) for prompt in prompts]
    traces = (calls + CALLS_PER_TRACE - 1) // CALLS_PER_TRACE
    registry = CollectorRegistry()
    with endpoint(mode) as (host, receiver):
        result = Result(
            mode, host, calls, traces, sum(1 for kind, _ in expected if kind == "error")
        )
        integration = LangfuseIntegration(
            "pk-lf-faults-public",
            "sk-lf-faults-secret-0123456789",
            host=host,
            export_timeout=SLOW_EXPORT_TIMEOUT_S if mode == "slow" else EXPORT_TIMEOUT_S,
            exit_timeout=shutdown_timeout,
            metrics_registry=registry,
            exporters={"store": StoreExporter(store_path)},
        )
        try:
            llm = ObservableLLM(app_llm, model=MODEL, langfuse=integration, persona=PERSONA)
            outcomes: list[tuple[str, Any]] = []
            started = time.perf_counter()
            for t in range(traces):
                trace = integration.start_trace(f"faults-{t}", PERSONA, "debugging")
                for prompt in prompts[t * CALLS_PER_TRACE : (t + 1) * CALLS_PER_TRACE]:
                    before = time.perf_counter()
                    try:
                        outcomes.append(("ok", llm(prompt, trace=trace)))
                    except AppError as exc:
                        outcomes.append(("error", repr(exc)))
                    result.call_s.append(time.perf_counter() - before)
                before = time.perf_counter()
                integration.end_trace(trace)
                result.end_trace_s.append(time.perf_counter() - before)
            result.calls_total_s = time.perf_counter() - started
            result.outcomes_match = outcomes == expected
            result.mismatches = [
                f"{prompt}: {got!r} != {want!r}"
                for prompt, got, want in zip(prompts, outcomes, expected, strict=True)
                if got != want
            ][:5]

            before = time.perf_counter()
            result.flush_ok = integration.flush(timeout=1)
            result.flush_s = time.perf_counter() - before
            # The application goes on running: the recorder and the store's delivery thread
            # catch up on their own, whatever Langfuse does.
            result.store_catch_up_s = wait_for_store(
                store_path, calls, traces, timeout=store_timeout
            )
            if after_calls is not None:
                after_calls(integration, receiver)
            if full_delivery_timeout > 0:
                integration.flush(timeout=full_delivery_timeout)
        finally:
            before = time.perf_counter()
            integration.shutdown(timeout=shutdown_timeout)
            result.shutdown_s = time.perf_counter() - before
        assert integration.pipeline is not None
        (langfuse,) = [p for p in integration.pipeline.processors if p.sink == "langfuse"]
        result.langfuse_exported = langfuse.exported
        result.langfuse_dropped_processor = langfuse.dropped
        result.dropped_metric = registry.get_sample_value(DROPPED, {"sink": "langfuse"}) or 0.0
        result.store_dropped_metric = registry.get_sample_value(DROPPED, {"sink": "store"}) or 0.0
        if receiver is not None:
            requests = receiver.trace_requests()
            result.received_requests = len(requests)
            result.received_statuses = {request.status for request in requests}
            spans = [span for request in requests for span in request.spans()]
            result.received_spans = len(spans)
            result.received_span_ids = {span.span_id for span in spans}
    with TraceStore(store_path, create=False) as store:
        stats = store.stats()
        result.store_generations = int(stats["generations"])
        result.store_traces = int(stats["traces"])
        rows = store.report(by="persona")
        result.store_errors = sum(int(row["errors"]) for row in rows)
        result.store_tokens = sum(int(row["total_tokens"]) for row in rows)
    return result


def wait_for_store(path: Path, generations: int, traces: int, *, timeout: float) -> float | None:
    """Seconds until the store holds ``generations`` and ``traces`` (None: not in time).

    Read through a connection of its own while the delivery thread writes (WAL mode).
    """
    started = time.monotonic()
    while True:
        with contextlib.suppress(StoreError):
            with TraceStore(path, create=False) as store:
                stats = store.stats()
            if stats["generations"] >= generations and stats["traces"] >= traces:
                return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        time.sleep(0.1)


def expected_tokens(calls: int) -> int:
    """Tokens the store must sum: the usage app_llm reports (0 for failed calls)."""
    total = 0
    for prompt in prompts_for(calls):
        kind, value = bare_outcome(prompt)
        if kind == "ok":
            total += value["usage"]["prompt_tokens"] + value["usage"]["completion_tokens"]
    return total


@dataclass
class Exit:
    """How a child process that exited without flushing did (see ``exit_child.py``)."""

    exit_s: float
    library_exit_s: float
    dropped_langfuse: float
    dropped_store: float
    stderr: str


def run_child(calls: int, host: str, store: Path, exit_timeout: str | None) -> Exit:
    """Run ``exit_child.py`` against ``host``; time from its last statement to its end.

    ``exit_timeout`` sets HYPERTOOL_EXIT_TIMEOUT (None: the default).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIXES)}
    env.update(
        LANGFUSE_PUBLIC_KEY="pk-lf-exit-test",
        LANGFUSE_SECRET_KEY="sk-lf-exit-test-secret",
        LANGFUSE_HOST=host,
        HYPERTOOL_STORE=str(store),
        HYPERTOOL_EXPORT_TIMEOUT="1",
    )
    if exit_timeout is not None:
        env["HYPERTOOL_EXIT_TIMEOUT"] = exit_timeout
    # Unbuffered bytes: a buffered readline() could take the exit report along with the first
    # line (a quick exit writes both at once), and communicate() would never see it.
    process = subprocess.Popen(
        [sys.executable, CHILD, str(calls)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        bufsize=0,
    )
    try:
        assert process.stdout is not None
        # Wait (bounded) until the calls are done, or the child died.
        ready, _, _ = select.select([process.stdout], [], [], CHILD_CALLS_TIMEOUT_S)
        first = process.stdout.readline().decode() if ready else ""
        assert first.startswith("calls-done "), (first, process.stderr and process.stderr.read())
        calls_done = float(first.split()[1])
        out_bytes, err_bytes = process.communicate(timeout=30)
        out, err = out_bytes.decode(), err_bytes.decode()
        exited = time.time()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
    assert process.returncode == 0, err
    report = json.loads(out.split("exit-report ", 1)[1])
    return Exit(
        exit_s=exited - calls_done,
        library_exit_s=report["library_exit_s"],
        dropped_langfuse=report["dropped_langfuse"],
        dropped_store=report["dropped_store"],
        stderr=err,
    )
