"""The counters of spans and scores a sink could not deliver, shared by every integration and
collector.

``prometheus_client`` is imported when the counter is first needed, not with the package.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter

from hypertool.instrumentation._fork import on_fork_in_child

DROPPED_SPANS = "hypertool_export_dropped_spans_total"
DROPPED_SCORES = "hypertool_export_dropped_scores_total"

_counters: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Counter]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def _fresh_lock() -> None:
    global _lock
    _lock = threading.Lock()


on_fork_in_child(_fresh_lock)


def dropped_spans_counter(registry: CollectorRegistry | None = None) -> Counter:
    """``hypertool_export_dropped_spans_total{sink}`` in ``registry`` (the default one when
    None), registered once however many integrations and collectors use it.
    """
    return _registered(registry, DROPPED_SPANS, "Spans a sink could not deliver")


def dropped_scores_counter(registry: CollectorRegistry | None = None) -> Counter:
    """``hypertool_export_dropped_scores_total{sink}``, like :func:`dropped_spans_counter`."""
    return _registered(registry, DROPPED_SCORES, "Scores a sink could not deliver")


def _registered(registry: CollectorRegistry | None, name: str, documentation: str) -> Counter:
    from prometheus_client import REGISTRY, Counter

    registry = registry if registry is not None else REGISTRY
    with _lock:
        counters = _counters.setdefault(registry, {})
        counter = counters.get(name)
        if counter is None:
            counter = Counter(name, documentation, ["sink"], registry=registry)
            counters[name] = counter
    return counter


def start_at_zero(registry: CollectorRegistry | None, sinks: Iterable[str]) -> Counter:
    """The counter, with a series at 0 for each of ``sinks``.

    A series born with its first drop has no earlier sample, so ``rate()`` and ``increase()``
    (the ``TraceExportDropping`` alert) would not see that drop: known sinks start at 0.
    """
    counter = dropped_spans_counter(registry)
    for sink in sinks:
        counter.labels(sink)
    return counter
