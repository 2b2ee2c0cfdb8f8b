"""Numbers and times as people read them: one formatting for the CLI's tables and the web UI.

Costs are never shown as 0 when unknown; times are local; durations switch to seconds from one
second on.
"""

from __future__ import annotations

from datetime import datetime

NONE = "—"
"""Shown for a missing value."""
EXCERPT_CHARS = 160


def tokens(value: int | None) -> str:
    """A token count with thousands separators."""
    return NONE if value is None else f"{value:,}"


def cost(value: float | None, unknown: int = 0, *, short: bool = False) -> str:
    """A cost in USD; ``unknown`` generations without a price are said, never counted as 0."""
    if value is None:
        return "unknown" if unknown else NONE
    text = f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4f}" if value else "$0"
    if not unknown:
        return text
    return f"{text} +{unknown}?" if short else f"{text} (+{unknown} unknown)"


def duration(ms: float | None) -> str:
    """Milliseconds, or seconds from one second on."""
    if ms is None:
        return NONE
    if ms >= 1000:
        return f"{ms / 1000:,.2f} s"
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:,.1f} ms"


def moment(ns: int | None) -> str:
    """An epoch-nanosecond time in local time, to the second."""
    if ns is None:
        return NONE
    return datetime.fromtimestamp(ns / 1e9).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def excerpt(text: str | None, limit: int = EXCERPT_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else f"{flat[: limit - 1]}…"


def percent(value: float | None) -> str:
    """A fraction as a percentage with one decimal."""
    return NONE if value is None else f"{value:.1%}"


_UNITS = ((7 * 86_400, "week"), (86_400, "day"), (3_600, "h"), (60, "min"), (1, "s"))


def bucket(seconds: int) -> str:
    """A bucket size: ``5 min``, ``1 h``, ``1 day``, ``2 weeks``."""
    for size, name in _UNITS:
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            plural = "s" if count > 1 and name in ("day", "week") else ""
            return f"{count} {name}{plural}"
    return f"{seconds} s"
