"""Compatibility path: the integration now lives in :mod:`hypertool.instrumentation.integration`."""

from hypertool.instrumentation.integration import (
    LangfuseIntegration,
    get_langfuse_integration,
    reset_langfuse_integration,
    set_langfuse_integration,
)

__all__ = [
    "LangfuseIntegration",
    "get_langfuse_integration",
    "reset_langfuse_integration",
    "set_langfuse_integration",
]
