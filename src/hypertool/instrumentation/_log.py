"""The library's logger and its once-per-process warnings.

No NullHandler on purpose: without logging configured, Python's last-resort handler shows our
few warnings ("Langfuse not configured", rejected keys, dropped spans) on stderr, as the guide
promises; each is logged once, never per call.
"""

from __future__ import annotations

import logging
import threading

from hypertool.instrumentation._fork import on_fork_in_child

logger = logging.getLogger("hypertool.instrumentation")

_warned: set[str] = set()
_warn_lock = threading.Lock()
_families: dict[str, set[str]] = {}
_families_full: set[str] = set()


def _fresh_lock() -> None:
    global _warn_lock
    _warn_lock = threading.Lock()


on_fork_in_child(_fresh_lock)


def warn_once(key: str, message: str, *args: object) -> None:
    """Log ``message`` as a warning the first time ``key`` is seen in this process."""
    with _warn_lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.warning(message, *args)


def warn_first(family: str, key: str, limit: int, message: str, *args: object) -> None:
    """Log ``message`` once per ``key``, for the first ``limit`` keys of ``family``.

    The next new key gets one last warning, that further ones go unreported: however many
    distinct keys arrive (persona names, say), at most ``limit + 1`` warnings are logged and
    at most ``limit`` keys remembered.
    """
    with _warn_lock:
        seen = _families.setdefault(family, set())
        if key in seen or family in _families_full:
            return
        full = len(seen) >= limit
        if full:
            _families_full.add(family)
        else:
            seen.add(key)
    if full:
        logger.warning("more than %d %s: further ones are not logged", limit, family)
    else:
        logger.warning(message, *args)


def forget_warnings() -> None:
    """Let every once-per-process warning be logged again (for tests)."""
    with _warn_lock:
        _warned.clear()
        _families.clear()
        _families_full.clear()


def enable_debug_logging() -> None:
    """Send this library's debug output to stderr (``LANGFUSE_DEBUG=true``)."""
    if not any(getattr(h, "_hypertool_debug", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler._hypertool_debug = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
