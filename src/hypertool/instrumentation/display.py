"""Numbers and times as people read them: one formatting for the CLI's tables and the web UI.

Costs are never shown as 0 when unknown; times are local; durations switch to seconds from one
second on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

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


def mean(value: float | None) -> str:
    """The mean of a score, to two decimals."""
    return NONE if value is None else f"{value:.2f}"


def score_value(value: float | str | bool | None, data_type: str) -> str:
    """A score's value as people read it: ``true``/``false`` for BOOLEAN, numbers short."""
    if data_type == "BOOLEAN":
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return NONE if value is None else str(value)


BEST = "★"
"""Marks the best version of a prompt for a persona."""


def best_version(answer: Mapping[str, Any]) -> str:
    """Which version of a prompt is best for a persona, or why that cannot be told (an answer
    of the prompts report's ``best``): ``version 2 (best)``, ``too close to tell``, and so on.
    """
    if answer["best_version"] is not None:
        return f"version {answer['best_version']} ({answer['verdict']})"
    return str(answer["verdict"])


def best_legend(score: str | None) -> str:
    """What :data:`BEST` means in a table of prompt versions best on ``score``."""
    return f"{BEST}: best version for that persona on {score}"
