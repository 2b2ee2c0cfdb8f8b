"""Pre-fork shapes through the public API: real ``os.fork()`` children and a real
``multiprocessing`` fork pool deliver every generation exactly once, and children forked while
the parent's threads hold the library's locks never hang."""

from __future__ import annotations

from pathlib import Path

from deploy.conftest import clean_env, only_once, received_tags, run_shape, stored_tags
from support.loopback import LoopbackOTLP

CHILDREN = 150
CALLS_PER_CHILD = 2
TASKS = 420
WORKERS = 4
BUSY_CHILDREN = 20


def test_forked_children_deliver_everything_once(receiver: LoopbackOTLP, store: Path) -> None:
    run = run_shape(clean_env(receiver, store), "children", CHILDREN, CALLS_PER_CHILD)
    report = run.report
    print(f"\nos.fork children: {report}")
    assert report["hung"] == 0 and report["failed"] == 0, run.stderr[-3000:]
    expected = {f"gen:child{c}-{k}" for c in range(CHILDREN) for k in range(CALLS_PER_CHILD)}
    expected |= {f"gen:parent-{i}" for i in range(report["parent_calls"])}
    arrived = received_tags(receiver)
    # Every child's generations reached Langfuse and the store; the parent's pending ones were
    # neither sent by a child nor lost.
    assert set(arrived) == expected, sorted(expected ^ set(arrived))[:10]
    assert only_once(arrived) == []
    assert set(stored_tags(store)) == expected, run.stderr[-3000:]
    # Nothing of the children is counted in the parent, and the parent lost nothing.
    assert report["parent_dropped"] == {"langfuse": 0, "store": 0}
    assert report["flushed"] is True
    assert "could not be delivered" not in run.stderr


def test_multiprocessing_fork_pool_delivers_every_task(receiver: LoopbackOTLP, store: Path) -> None:
    run = run_shape(clean_env(receiver, store), "pool", TASKS, WORKERS)
    report = run.report
    print(f"\nmultiprocessing fork Pool: {report}")
    assert report["workers"] > 1  # the tasks really ran in several forked workers
    expected = {f"gen:task-{i}" for i in range(TASKS)} | {"gen:pool-parent"}
    arrived = received_tags(receiver)
    # Workers end with os._exit after multiprocessing's finalizers: delivery happens there.
    assert set(arrived) == expected, sorted(expected ^ set(arrived))[:10]
    assert only_once(arrived) == []
    assert set(stored_tags(store)) == expected, run.stderr[-3000:]
    assert report["parent_dropped"] == {"langfuse": 0, "store": 0}
    assert report["flushed"] is True
    assert "could not be delivered" not in run.stderr


def test_children_forked_while_the_parent_is_busy_never_hang(
    receiver: LoopbackOTLP, store: Path
) -> None:
    env = clean_env(
        receiver,
        store,
        HYPERTOOL_BUDGET_POLICY="block",  # every call checks the budget (reads the store)
        HYPERTOOL_BUDGET_PERIOD="day",
        HYPERTOOL_QUEUE_SIZE="64",  # the recorder queue is full: callers record inline
    )
    run = run_shape(env, "busy", BUSY_CHILDREN, timeout=90)
    report = run.report
    print(f"\nforked while busy: {report}")
    # The parent's threads really were at work while the children were forked.
    assert all(count > 0 for count in report["loops"].values()), report
    assert report["hung"] == 0, report
    assert report["failed"] == 0, run.stderr[-3000:]
    expected = {f"gen:busychild{c}-{k}" for c in range(BUSY_CHILDREN) for k in range(2)}
    arrived = received_tags(receiver)
    children = {tag for tag in arrived if tag.startswith("gen:busychild")}
    assert children == expected, sorted(expected ^ children)[:10]
    assert only_once(arrived) == []
    assert expected <= set(stored_tags(store))
