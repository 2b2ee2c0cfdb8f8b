"""The guide's API: :class:`LangfuseIntegration` (the composition root) and the process default.

:mod:`.core` is the class users call, :mod:`.assembly` builds its parts from the settings,
:mod:`.lifetime` ends it (shutdown, collection, process exit), :mod:`.defaults` keeps the
process default.
"""

from hypertool.instrumentation.integration.core import LangfuseIntegration
from hypertool.instrumentation.integration.defaults import (
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
