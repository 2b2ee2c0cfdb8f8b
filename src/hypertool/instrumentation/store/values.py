"""Stored numbers as the store's answers give them: times as ISO 8601 UTC, nanoseconds as
milliseconds, latency percentiles.

Percentiles interpolate linearly between the closest ranks (numpy's default, and
``statistics.quantiles(..., method="inclusive")``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """The ``fraction`` quantile of ascending ``ordered`` values (linear interpolation)."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def iso(ns: int | None) -> str | None:
    """An epoch-nanosecond time as ISO 8601 UTC, to the millisecond."""
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat(timespec="milliseconds")


def ms(ns: int | float | None) -> float | None:
    """Nanoseconds as milliseconds, to the microsecond; None stays None."""
    return None if ns is None else round(ns / 1e6, 3)
