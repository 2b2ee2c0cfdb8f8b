"""A process that makes 5,000 calls and exits without flushing, while Langfuse hangs, exits
within the exit timeout (HYPERTOOL_EXIT_TIMEOUT, 2 s by default); nothing is lost silently.

The wall time measured is from the child's last statement to the end of the process. Part of
it is the interpreter's own teardown, which the library does not control (~0.2 s here: the
``langfuse`` package brings ~560 modules whose objects the final collections walk); it is
measured with the same program making no calls and allowed on top of the exit timeout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from faults.scenario import run_child
from hypertool.instrumentation.store import TraceStore
from support.loopback import LoopbackOTLP

CALLS = 5000
SCHEDULING_SLACK_S = 0.3
IN_FLIGHT_WRITE_S = 0.25


def store_generations(path: Path) -> int:
    with TraceStore(path, create=False) as store:
        return int(store.stats()["generations"])


@pytest.fixture(scope="module")
def teardown_s(tmp_path_factory: pytest.TempPathFactory) -> float:
    """Exit time of the same program with nothing to deliver: the interpreter's teardown."""
    store = tmp_path_factory.mktemp("baseline") / "store.db"
    with LoopbackOTLP(200) as receiver:
        return min(run_child(0, receiver.url, store, None).exit_s for _ in range(2))


@pytest.mark.parametrize(
    ("exit_timeout", "budget"), [(None, 2.0), ("0.5", 0.5)], ids=["default-2s", "configured-0.5s"]
)
def test_exit_without_flush_is_bounded_while_langfuse_hangs(
    exit_timeout: str | None, budget: float, teardown_s: float, tmp_path: Path
) -> None:
    store = tmp_path / "store.db"
    with LoopbackOTLP("hang", hang_max=30) as receiver:
        result = run_child(CALLS, receiver.url, store, exit_timeout)
        hung_requests = len(receiver.trace_requests())
    print(
        f"\nexit timeout {budget} s: process exit {result.exit_s:.3f} s "
        f"(library {result.library_exit_s:.3f} s, interpreter teardown ~{teardown_s:.3f} s); "
        f"dropped langfuse={result.dropped_langfuse:.0f} store={result.dropped_store:.0f}"
    )
    assert hung_requests >= 1, "the endpoint was never reached: nothing was tested"
    # The library's exit work stays within the exit timeout, overrun at most by the commit of
    # a store batch already claimed when time ran out (it is let finish: milliseconds).
    assert result.library_exit_s < budget + IN_FLIGHT_WRITE_S, result
    # The whole exit adds the interpreter's teardown (measured without calls) to that.
    assert result.exit_s < budget + IN_FLIGHT_WRITE_S + teardown_s + SCHEDULING_SLACK_S, result
    # Langfuse took nothing (it hung): every span is counted as dropped.
    assert result.dropped_langfuse == CALLS
    # No silent loss in the store, and no double count: what it holds plus what it counted
    # is every generation, exactly (a batch being written when time ran out is either
    # committed and not counted, or rolled back and counted).
    kept = store_generations(store)
    assert kept + result.dropped_store == CALLS, (kept, result.dropped_store)
    if exit_timeout is None:
        # With the default 2 s there is time to record and store all of it.
        assert kept == CALLS
        assert result.dropped_store == 0
    # The warnings about drops reach stderr (no logging configured in the child).
    assert "could not be delivered to the langfuse sink" in result.stderr


def test_teardown_baseline_is_small(teardown_s: float) -> None:
    # If the interpreter's teardown grew past this, the exit bounds above would be too loose.
    assert teardown_s < 1.0
