"""An integration dropped without ``shutdown()`` is collected: its threads end, its files close,
and what it still had pending is delivered."""

from __future__ import annotations

from pathlib import Path

from deploy.conftest import clean_env, run_shape, stored_tags
from support.loopback import LoopbackOTLP

INTEGRATIONS = 200


def test_dropped_integrations_are_collected(receiver: LoopbackOTLP, store: Path) -> None:
    # Store on, Langfuse on (loopback) and an in-memory exporter: three export threads, a
    # recorder thread and the store's file descriptors per integration while it lives.
    run = run_shape(clean_env(receiver, store), "lifetimes", INTEGRATIONS)
    report = run.report
    print(
        f"\n{INTEGRATIONS} integrations dropped: threads {report['base_threads']} -> peak "
        f"{report['peak_threads']} -> {report['threads']}; fds {report['base_fds']} -> "
        f"{report['fds']}"
    )
    # Without collection this would be ~4 threads and ~3 fds per integration (800 and 600).
    assert report["threads"] <= report["base_threads"], report["thread_names"]
    assert report["fds"] <= report["base_fds"] + 2, report
    # Half of them were dropped with their generation still waiting for the recorder thread:
    # it was recorded and delivered all the same, to every sink.
    assert report["delivered"] == INTEGRATIONS
    tags = stored_tags(store)
    assert {f"gen:life-{i}" for i in range(INTEGRATIONS)} <= set(tags)
    assert "could not be delivered" not in run.stderr
