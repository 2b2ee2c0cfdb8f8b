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


def forget_warnings() -> None:
    """Let every once-per-process warning be logged again (for tests)."""
    with _warn_lock:
        _warned.clear()


def enable_debug_logging() -> None:
    """Send this library's debug output to stderr (``LANGFUSE_DEBUG=true``)."""
    if not any(getattr(h, "_hypertool_debug", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler._hypertool_debug = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
