"""5,000 instrumented calls against a Langfuse endpoint that answers 200, 500, 401, 429, 503,
refuses connections, hangs, or takes 2 s per request.

For every mode: the application's results are those of the bare calls and nothing escapes;
the calls and ``end_trace`` never wait on the network; ``flush(timeout=1)`` returns within
1.5 s; every span Langfuse did not accept is counted in
``hypertool_export_dropped_spans_total{sink="langfuse"}``; the local store holds every
generation; drop warnings come at most once a minute; a 401 gives one clear message.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from faults.scenario import (
    ERROR_EVERY,
    FAILING_MODES,
    MODES,
    Result,
    expected_tokens,
    run,
)
from hypertool.instrumentation import LangfuseIntegration

CALLS = 5000
# A call that waited on the network would take at least the export timeout (1 s; the slow
# receiver 2 s). The bound is half of that, far above the measured p99 (~50 µs).
MAX_CALL_S = 0.5
# 5,000 calls cost ~0.1 s here; 3 s leaves room for a loaded CI machine, and is still less
# than three batches' worth of waiting on a hanging endpoint would be.
MAX_CALLS_TOTAL_S = 3.0
DROP_WARNING = "could not be delivered to the langfuse sink"
LOGGER = "hypertool.instrumentation"


def drop_warnings(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.levelno == logging.WARNING and DROP_WARNING in r.message]


class LogPhases:
    """Log records split at shutdown: warnings are rate limited while running, and one
    closing summary is allowed when the integration stops."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.before_shutdown: list[logging.LogRecord] = []
        self.dropped_before_shutdown = 0

    def mark(self, integration: LangfuseIntegration, receiver: object) -> None:
        self.before_shutdown = list(self.caplog.records)
        assert integration.pipeline is not None
        (processor,) = [p for p in integration.pipeline.processors if p.sink == "langfuse"]
        self.dropped_before_shutdown = processor.dropped

    @property
    def after_shutdown(self) -> list[logging.LogRecord]:
        return self.caplog.records[len(self.before_shutdown) :]


def wait_until_langfuse_settles(integration: LangfuseIntegration, timeout: float) -> None:
    """Let the export thread fail (or send) a few batches before shutdown, so the warning
    rate limit is exercised by several drops inside the same minute."""
    assert integration.pipeline is not None
    (processor,) = [p for p in integration.pipeline.processors if p.sink == "langfuse"]
    deadline = time.monotonic() + timeout
    while processor.dropped + processor.exported < 1024 and time.monotonic() < deadline:
        time.sleep(0.02)


def check_common(result: Result) -> None:
    """What holds whatever the endpoint does."""
    assert result.outcomes_match, result.mismatches
    assert len(result.call_s) == CALLS
    assert max(result.call_s) < MAX_CALL_S, f"slowest call {max(result.call_s):.3f} s"
    assert max(result.end_trace_s) < MAX_CALL_S, f"slowest end_trace {max(result.end_trace_s)}"
    assert result.calls_total_s < MAX_CALLS_TOTAL_S, f"{CALLS} calls: {result.calls_total_s} s"
    assert result.flush_s < 1.5, f"flush(timeout=1) took {result.flush_s:.3f} s"
    # Shutdown was given 1 s; it may not overrun it by more than scheduling noise.
    assert result.shutdown_s < 1.5, f"shutdown(timeout=1) took {result.shutdown_s:.3f} s"
    # The store kept everything, whatever happened to Langfuse.
    assert result.store_dropped_metric == 0
    assert result.store_generations == CALLS
    assert result.store_traces == result.traces
    assert result.errors_expected == sum(
        1 for n in range(CALLS) if n % ERROR_EVERY == ERROR_EVERY - 1
    )
    assert result.store_errors == result.errors_expected
    assert result.store_tokens == expected_tokens(CALLS)
    # No silent loss: each span Langfuse did not take is counted, once.
    assert result.dropped_metric == result.langfuse_dropped_processor
    assert result.langfuse_exported + result.langfuse_dropped_processor == result.spans


def test_mode_list_covers_the_brief() -> None:
    assert set(MODES) == {200, 500, 401, 429, 503, "refused", "hang", "slow"}


def test_endpoint_accepting_everything(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    result = run(200, tmp_path / "store.db", calls=CALLS, full_delivery_timeout=15)
    check_common(result)
    assert result.dropped_metric == 0
    assert result.langfuse_exported == result.spans
    assert result.received_statuses == {200}
    assert result.received_spans == result.spans
    assert len(result.received_span_ids) == result.spans  # each span once
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [
        r.message for r in caplog.records
    ]


@pytest.mark.parametrize("mode", [m for m in FAILING_MODES if m != "slow"], ids=str)
def test_endpoint_failing(
    mode: int | str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    phases = LogPhases(caplog)

    def settle_then_mark(integration: LangfuseIntegration, receiver: object) -> None:
        wait_until_langfuse_settles(integration, timeout=4.0)
        phases.mark(integration, receiver)

    result = run(mode, tmp_path / "store.db", calls=CALLS, after_calls=settle_then_mark)
    check_common(result)
    assert result.flush_ok is False  # nothing could be delivered, and flush says so
    # The receiver accepted nothing (or nothing listened): every span is counted as dropped.
    assert result.langfuse_exported == 0
    assert result.dropped_metric == result.spans
    if mode != "refused":
        assert result.received_requests >= 1
        if mode != "hang":
            assert result.received_statuses == {mode}

    # Several batches (of 512) failed inside the same minute, yet one warning reported them
    # while running, and flush(), which returned False, said once what it found dropped;
    # stopping adds at most one summary of what was left.
    assert phases.dropped_before_shutdown > 512
    running = drop_warnings(phases.before_shutdown)
    assert 1 <= len(running) <= 2, [r.message for r in running]
    assert len(drop_warnings(phases.after_shutdown)) <= 1
    # Nothing else floods the log (the OTLP exporter's per-batch errors are folded in ours).
    rejected = [r for r in caplog.records if "Langfuse rejected the keys" in r.message]
    others = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and DROP_WARNING not in r.message and r not in rejected
    ]
    assert not others, [f"{r.name}: {r.message}" for r in others]
    if mode == 401:
        assert result.received_requests >= 2, "need several rejected batches to test 'once'"
        assert len(rejected) == 1
        assert rejected[0].levelno == logging.ERROR
        assert rejected[0].name == LOGGER
        assert f"Langfuse rejected the keys for {result.host}" in rejected[0].message
        assert "sk-lf-faults-secret" not in rejected[0].message
    else:
        assert not rejected


def test_endpoint_slow(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """2 s per request with a 3 s export timeout: batches get through, slowly. Whatever had
    not when the integration stops is counted, and everything is in the store."""
    caplog.set_level(logging.WARNING)

    def one_batch_through(integration: LangfuseIntegration, receiver: object) -> None:
        assert integration.pipeline is not None
        (processor,) = [p for p in integration.pipeline.processors if p.sink == "langfuse"]
        deadline = time.monotonic() + 6.0
        while processor.exported == 0 and time.monotonic() < deadline:
            time.sleep(0.02)

    result = run("slow", tmp_path / "store.db", calls=CALLS, after_calls=one_batch_through)
    check_common(result)
    assert result.flush_ok is False
    assert 0 < result.langfuse_exported < result.spans
    assert result.dropped_metric == result.spans - result.langfuse_exported
    # The receiver saw every exported span; at most one more batch was on the wire when the
    # integration stopped (counted as dropped: its answer came too late).
    assert result.langfuse_exported <= result.received_spans <= result.langfuse_exported + 512
    assert len(drop_warnings(caplog.records)) <= 2
