"""Deployment shapes, each run in a clean interpreter: ``python shapes.py SHAPE [N ...]``.

Langfuse keys, host (a loopback receiver) and the store come from the environment. Every
generation's prompt is ``gen:<tag>``, unique per call, so the test can tell which arrived and
how often. The program ends with one line ``report <json>``.

Shapes:
    children N CALLS: ``os.fork()`` N children (4 at a time) that each make CALLS calls and exit
        with ``sys.exit``; the parent makes calls between forks, so its queues are never empty.
    busy N: fork N children while parent threads read budgets, call under policy ``block``, keep
        the recorder queue full and flush the store; a child that is not done in
        ``CHILD_TIMEOUT_S`` counts as hung (and is killed).
    pool TASKS WORKERS: a ``multiprocessing`` fork ``Pool`` runs TASKS calls; ``close(); join()``.
    lifetimes N: N integrations made, used and dropped without ``shutdown()``.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hypertool.instrumentation import LangfuseIntegration, ObservableLLM

CHILD_TIMEOUT_S = 20.0
PARALLEL = 4
PERSONA = "backend-engineer"
UNBUDGETED = "deploy-tester"


def llm(prompt: str) -> dict[str, Any]:
    return {
        "choices": [{"message": {"content": f"echo {prompt}"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4},
    }


def report(**fields: Any) -> None:
    print("report " + json.dumps(fields), flush=True)


def dropped(integration: LangfuseIntegration) -> dict[str, int]:
    assert integration.pipeline is not None
    return {p.sink: p.dropped for p in integration.pipeline.processors}


class Children:
    """Forked children, at most PARALLEL at a time, each waited for with a timeout."""

    def __init__(self) -> None:
        self.running: dict[int, float] = {}
        self.hung = 0
        self.failed = 0
        self.longest_s = 0.0

    def fork(self, work: Any) -> None:
        while len(self.running) >= PARALLEL:
            self.reap()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                work()
            except BaseException as exc:  # the child reports, then exits like a program would
                print(f"child failed: {exc!r}", file=sys.stderr, flush=True)
                code = 1
            sys.exit(code)  # interpreter exit: the library's atexit hook delivers
        self.running[pid] = time.monotonic()

    def reap(self) -> None:
        for pid, started in list(self.running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            elapsed = time.monotonic() - started
            if done:
                del self.running[pid]
                self.longest_s = max(self.longest_s, elapsed)
                if os.waitstatus_to_exitcode(status) != 0:
                    self.failed += 1
            elif elapsed > CHILD_TIMEOUT_S:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                del self.running[pid]
                self.hung += 1
        time.sleep(0.002)

    def wait_all(self) -> None:
        while self.running:
            self.reap()


def children(count: int, calls: int) -> None:
    integration = LangfuseIntegration()
    observed = ObservableLLM(llm, model="gpt-4", langfuse=integration, persona=PERSONA)
    made = 0

    def child_work(child: int) -> None:
        for call in range(calls):
            observed(f"gen:child{child}-{call}")

    for child in range(count):
        for _ in range(3):  # pending in the parent's queues at every fork
            observed(f"gen:parent-{made}")
            made += 1
        pool.fork(lambda child=child: child_work(child))  # type: ignore[misc]
    pool.wait_all()
    flushed = integration.flush(10)
    report(
        parent_calls=made,
        hung=pool.hung,
        failed=pool.failed,
        longest_child_s=pool.longest_s,
        parent_dropped=dropped(integration),
        flushed=flushed,
    )


def busy(count: int) -> None:
    integration = LangfuseIntegration()  # policy block, period day, small queues: from env
    # A persona without a budget: every call checks it (policy block: the recorder queue is
    # drained, the store's usage read) and none is ever refused.
    observed = ObservableLLM(llm, model="gpt-4", langfuse=integration, persona=UNBUDGETED)
    stop = threading.Event()
    loops = {"budget_reads": 0, "calls": 0, "flushes": 0}

    def read_budgets() -> None:
        while not stop.is_set():
            integration.budgets.used(UNBUDGETED)
            loops["budget_reads"] += 1

    def call(name: str) -> None:
        i = 0
        while not stop.is_set():
            observed(f"gen:busy-{name}-{i}")
            i += 1
            loops["calls"] += 1

    def flush() -> None:
        while not stop.is_set():
            integration.flush(0.05)
            loops["flushes"] += 1

    threads = [
        threading.Thread(target=read_budgets),
        threading.Thread(target=call, args=("a",)),
        threading.Thread(target=call, args=("b",)),
        threading.Thread(target=flush),
    ]
    for thread in threads:
        thread.start()

    def child_work(child: int) -> None:
        observed(f"gen:busychild{child}-0")
        integration.budgets.used(UNBUDGETED)  # drains the recorder queue under its lock
        observed(f"gen:busychild{child}-1")

    time.sleep(0.2)
    for child in range(count):
        pool.fork(lambda child=child: child_work(child))  # type: ignore[misc]
        time.sleep(0.01)
    pool.wait_all()
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    report(hung=pool.hung, failed=pool.failed, longest_child_s=pool.longest_s, loops=loops)


_pool_observed: ObservableLLM | None = None


def _task(i: int) -> int:
    assert _pool_observed is not None
    _pool_observed(f"gen:task-{i}")
    return os.getpid()


def pool_shape(tasks: int, workers: int) -> None:
    global _pool_observed
    integration = LangfuseIntegration()  # built before the pool forks (gunicorn --preload)
    _pool_observed = ObservableLLM(llm, model="gpt-4", langfuse=integration, persona=PERSONA)
    _pool_observed("gen:pool-parent")
    context = multiprocessing.get_context("fork")
    started = time.monotonic()
    workers_pool = context.Pool(workers)
    pids = workers_pool.map(_task, range(tasks), chunksize=5)
    mapped = time.monotonic()
    workers_pool.close()
    workers_pool.join()  # each worker delivers in its exit finalizer
    joined = time.monotonic()
    report(
        workers=len(set(pids)),
        map_s=mapped - started,
        join_s=joined - mapped,
        parent_dropped=dropped(integration),
        flushed=integration.flush(10),
    )


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def lifetimes(count: int) -> None:
    def use(i: int, flush: bool) -> InMemorySpanExporter:
        exporter = InMemorySpanExporter()
        integration = LangfuseIntegration(exporters={"memory": exporter})
        ObservableLLM(llm, model="gpt-4", langfuse=integration, persona=PERSONA)(f"gen:life-{i}")
        if flush:  # threads running and the store open
            assert integration.flush(5)
        return exporter  # the integration is dropped here, without shutdown()

    use(-1, True)  # imports, the store file's creation, the logging setup
    gc.collect()
    time.sleep(0.2)
    base_threads, base_fds = threading.active_count(), _fds()
    peak_threads = 0
    exporters = []
    for i in range(count):
        exporters.append(use(i, flush=i % 2 == 0))  # odd ones still pending when dropped
        peak_threads = max(peak_threads, threading.active_count())
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        gc.collect()
        if threading.active_count() <= base_threads and _fds() <= base_fds:
            break
        time.sleep(0.05)
    report(
        base_threads=base_threads,
        peak_threads=peak_threads,
        threads=threading.active_count(),
        thread_names=sorted(t.name for t in threading.enumerate()),
        base_fds=base_fds,
        fds=_fds(),
        delivered=sum(len(e.get_finished_spans()) for e in exporters),
    )


pool = Children()

if __name__ == "__main__":
    shape, *numbers = sys.argv[1:]
    args = [int(n) for n in numbers]
    {"children": children, "busy": busy, "pool": pool_shape, "lifetimes": lifetimes}[shape](*args)
