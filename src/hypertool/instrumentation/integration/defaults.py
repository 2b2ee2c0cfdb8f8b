"""The process default integration: the one ``get_langfuse_integration()`` builds and returns,
the one thing of the package kept at module level (with a documented reset for tests).
"""

from __future__ import annotations

import threading

from hypertool.instrumentation._fork import on_fork_in_child
from hypertool.instrumentation._log import forget_warnings
from hypertool.instrumentation.integration.core import LangfuseIntegration

_default: LangfuseIntegration | None = None
_default_lock = threading.Lock()


def _fresh_default_lock() -> None:
    global _default_lock
    _default_lock = threading.Lock()


on_fork_in_child(_fresh_default_lock)


def get_langfuse_integration() -> LangfuseIntegration:
    """The process default integration, built from the environment on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = LangfuseIntegration()
    return _default


def set_langfuse_integration(integration: LangfuseIntegration | None) -> None:
    """Make ``integration`` the process default (None: build anew from the environment)."""
    global _default
    with _default_lock:
        _default = integration


def reset_langfuse_integration() -> None:
    """Forget the process default and the once-per-process warnings (for tests)."""
    global _default
    with _default_lock:
        previous, _default = _default, None
    if previous is not None:
        previous.shutdown(0.0)
    forget_warnings()
