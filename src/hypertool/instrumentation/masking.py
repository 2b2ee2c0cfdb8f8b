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

# Three families, each searched only when a cheap substring test finds a hint of it: most
# prompts hold none, and a regex scan costs ~150 µs per KB against ~1 µs per KB for the tests.
_KEYS = re.compile(
    "|".join(
        (
            r"sk-ant-[A-Za-z0-9_\-]{16,}",  # Anthropic
            r"(?:sk|pk)-lf-[A-Za-z0-9\-]{8,}",  # Langfuse
            r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",  # OpenAI
            r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b",  # AWS access key id
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",  # GitHub
            r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",  # JWT
        )
    )
)
_BEARER = re.compile(r"(?P<kept>(?i:bearer)\s+)[A-Za-z0-9_\-\.=+/]{16,}")
# password=…, api_key: "…", client_secret=… (the name is kept, the value masked)
_PAIR_NAMES = (
    r"\b(?P<kept>(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token"
    r"|client[_-]?secret)\s*[=:]\s*[\"']?)[^\s\"'&,;]+"
)
# Searched in the lower-cased text: sre skips ahead on the names' first letters only when the
# pattern is case-sensitive, which makes it ~5x faster than re.IGNORECASE on long prompts.
_PAIR_LOWER = re.compile(_PAIR_NAMES)
_PAIR_ANY_CASE = re.compile(_PAIR_NAMES, re.IGNORECASE)


def _keep_name(match: re.Match[str]) -> str:
    return f"{match.group('kept')}{MASK}"


def mask_secrets(text: str) -> str:
    """Replace API keys, tokens, JWTs and ``password=``-style values in ``text``."""
    if not text:
        return text
    if _has_key_hint(text):
        text = _KEYS.sub(MASK, text)
    lower = text.lower()
    if "bearer" in lower:
        text = _BEARER.sub(_keep_name, text)
    if _has_pair_hint(lower):
        text = _mask_pairs(text, lower)
    return text


# The hints as one expression each: on every prompt and completion, ``any()`` over a generator
# costs more than the searches themselves.
def _has_key_hint(text: str) -> bool:
    return (
        "sk-" in text
        or "pk-lf-" in text
        or "AKIA" in text
        or "ASIA" in text
        or "eyJ" in text
        or "github_pat_" in text
        or ("gh" in text and _has_github_hint(text))
    )


def _has_github_hint(text: str) -> bool:
    return "ghp_" in text or "gho_" in text or "ghu_" in text or "ghs_" in text or "ghr_" in text


def _has_pair_hint(lower: str) -> bool:
    return (
        "pass" in lower or "pwd" in lower or "secret" in lower or "key" in lower or "token" in lower
    )


def _mask_pairs(text: str, lower: str) -> str:
    if len(lower) != len(text):  # lower() changed lengths (rare Unicode): positions differ
        return _PAIR_ANY_CASE.sub(_keep_name, text)
    parts: list[str] = []
    last = 0
    for match in _PAIR_LOWER.finditer(lower):
        parts.append(text[last : match.end("kept")])
        parts.append(MASK)
        last = match.end()
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)


def chain(user_mask: MaskFunction | None) -> MaskFunction:
    """The built-in masking, then ``user_mask`` when given."""
    if user_mask is None:
        return mask_secrets

    def masked(text: str) -> str:
        return user_mask(mask_secrets(text))

    return masked
