"""How an integration ends: shut down, collected without ``shutdown()``, or at process exit.

Nothing of the library holds an integration strongly (its threads, the exit hook and the fork
registry hold weak references), so one dropped without ``shutdown()`` is collected; what it
still had pending is then delivered from a short-lived thread (within the exit timeout) and its
threads and files end. At process exit (and at the exit of a ``multiprocessing`` child) every
live integration is shut down, each within its exit timeout, of which a little is kept for the
interpreter's own teardown.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import TYPE_CHECKING, Protocol

from hypertool.instrumentation._fork import at_exit
from hypertool.instrumentation._log import logger
from hypertool.instrumentation.recording.deferred import DeferredWork

if TYPE_CHECKING:
    from hypertool.instrumentation.export.pipeline import Pipeline
    from hypertool.instrumentation.quality import Quality

EXIT_RESERVE_S = 0.2
"""Of the exit timeout, what process exit keeps for closing sinks and interpreter teardown."""


class Closable(Protocol):
    """What exit shuts down (an integration)."""

    def shutdown(self, timeout: float | None = None) -> bool:
        """Deliver what is pending within ``timeout`` seconds and stop."""

    def exit_budget(self) -> float:
        """Seconds the exit hook may deliver for."""


def exit_budget(exit_timeout: float) -> float:
    """Seconds the exit hook may deliver for: the exit timeout bounds the whole exit, so a
    little of it is left for closing the sinks and the interpreter's own teardown.
    """
    return max(exit_timeout - min(EXIT_RESERVE_S, exit_timeout / 2), 0.0)


def flush(
    deferred: DeferredWork, pipeline: Pipeline | None, quality: Quality, timeout: float
) -> bool:
    """Record what is pending and deliver it (spans and scores) within ``timeout`` seconds;
    True when everything reached every sink and nothing was dropped since the last flush.
    """
    deadline = time.monotonic() + max(timeout, 0.0)
    # Recording what is pending is part of the time allowed: a large backlog must not make
    # flush() overrun it (what is left is recorded by the recorder thread).
    recorded = deferred.drain(timeout)
    try:
        # Scores and spans are delivered at once, under the one deadline.
        scores = quality.request_flush()
        ok = recorded
        if pipeline is not None:
            ok = pipeline.flush(deadline - time.monotonic()) and ok
        return quality.wait(scores, deadline) and ok
    except Exception:
        logger.debug("flush failed", exc_info=True)
        return False


def close(
    deferred: DeferredWork, pipeline: Pipeline | None, quality: Quality, timeout: float
) -> bool:
    """Record what is pending and deliver it (spans and scores), within ``timeout`` seconds
    together; stop. What is left when the time runs out is counted as dropped.
    """
    deadline = time.monotonic() + timeout
    recorded = deferred.drain(timeout)
    # Of what was left unrecorded, scores are counted as dropped scores, the rest as spans.
    left, scores_left = (0, 0) if recorded else deferred.discard_counting(quality.owns)
    lost_scores = scores_left + quality.recorder.abandon_parked()
    if quality.delivery is None:
        quality.close(0.0, None, lost_scores)
        if pipeline is None:
            return recorded
        pipeline.count_dropped(left - scores_left)
        return pipeline.close(deadline - time.monotonic()) and recorded
    # Scores and spans are delivered at once; scores close first, as the store (a sink of
    # both) closes with the spans.
    scores = quality.request_flush() if timeout > 0 else None
    spans = pipeline.request_flush() if pipeline is not None and timeout > 0 else None
    ok = quality.close(max(deadline - time.monotonic(), 0.0), scores, lost_scores) and recorded
    if pipeline is not None:
        pipeline.count_dropped(left - scores_left)
        ok = pipeline.close(max(deadline - time.monotonic(), 0.0), spans) and ok
    return ok


def release(
    deferred: DeferredWork, pipeline: Pipeline | None, quality: Quality, timeout: float
) -> None:
    """An integration was collected without shutdown(): close it off the collecting thread
    (possibly the caller's); not a daemon, so process exit waits for it, within ``timeout``.
    """
    try:
        threading.Thread(
            target=close, args=(deferred, pipeline, quality, timeout), name="hypertool-release"
        ).start()
    except RuntimeError:  # interpreter shutdown: no new threads; count what is left
        close(deferred, pipeline, quality, 0.0)


_live: weakref.WeakSet[Closable] = weakref.WeakSet()


def track(integration: Closable) -> None:
    """Shut ``integration`` down at process exit, unless it was shut down or collected."""
    _live.add(integration)
    at_exit(_shutdown_all)


def untrack(integration: Closable) -> None:
    """Forget ``integration`` (it was shut down)."""
    _live.discard(integration)


def _shutdown_all() -> None:
    """At exit: shut every live integration down (each within its exit timeout)."""
    for integration in list(_live):
        try:
            integration.shutdown(integration.exit_budget())
        except Exception:
            logger.debug("shutdown at exit failed", exc_info=True)
