"""Masking of API keys and tokens in prompts, completions and metadata before they leave.

Applied on the recorder thread to everything sent to any sink (Langfuse, OTLP, the local
store). Users can add their own ``mask=`` function, applied after these patterns.
"""

from __future__ import annotations

import re
from collections.abc import Callable

MASK = "[REDACTED]"

MaskFunction = Callable[[str], str]
"""Takes a text, returns it with whatever must not leave the process replaced."""

# One alternation; the specific key formats come before the generic ones.
_SECRET = re.compile(
    "|".join(
        (
            r"sk-ant-[A-Za-z0-9_\-]{16,}",  # Anthropic
            r"(?:sk|pk)-lf-[A-Za-z0-9\-]{8,}",  # Langfuse
            r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",  # OpenAI
            r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b",  # AWS access key id
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",  # GitHub
            r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",  # JWT
            r"(?P<bearer>(?i:bearer)\s+)[A-Za-z0-9_\-\.=+/]{16,}",
            # password=…, api_key: "…", client_secret=… (the name is kept, the value masked)
            r"(?P<pair>(?<![A-Za-z0-9_])(?i:password|passwd|pwd|secret|api[_-]?key"
            r"|access[_-]?token|auth[_-]?token|client[_-]?secret)\s*[=:]\s*[\"']?)"
            r"[^\s\"'&,;]+",
        )
    )
)


def _replace(match: re.Match[str]) -> str:
    kept = match.group("pair") or match.group("bearer") or ""
    return f"{kept}{MASK}"


def mask_secrets(text: str) -> str:
    """Replace API keys, tokens, JWTs and ``password=``-style values in ``text``."""
    if not text:
        return text
    return _SECRET.sub(_replace, text)


def chain(user_mask: MaskFunction | None) -> MaskFunction:
    """The built-in masking, then ``user_mask`` when given."""
    if user_mask is None:
        return mask_secrets

    def masked(text: str) -> str:
        return user_mask(mask_secrets(text))

    return masked
