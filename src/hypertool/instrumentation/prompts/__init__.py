"""Managed prompts: from Langfuse prompt management, the local prompts folder
(``HYPERTOOL_PROMPTS_DIR``, and the prompts shipped with the package), or a fallback in code.

:class:`~.manager.PromptManager` answers ``get_prompt``; :mod:`.files` reads prompt files;
:mod:`.langfuse_api` speaks Langfuse's prompt API; :mod:`.cache` caches and refreshes.
"""

from __future__ import annotations

from hypertool.instrumentation.prompts.files import BUILTIN_DIR
from hypertool.instrumentation.prompts.manager import MemoryVersions, PromptManager, PromptVersions

__all__ = ["BUILTIN_DIR", "MemoryVersions", "PromptManager", "PromptVersions"]
