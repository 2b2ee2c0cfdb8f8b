"""Canonical persona names: one spelling per persona everywhere (Langfuse user, metric label,
store column), so analytics never split one persona in two.
"""

from __future__ import annotations

import re

from hypertool.instrumentation._log import logger

UNKNOWN_PERSONA = "unknown"
_PREFIXES = ("tta-",)
_SEPARATORS = re.compile(r"[\s_./]+")
_NOT_ALLOWED = re.compile(r"[^a-z0-9-]+")
_DASHES = re.compile(r"-{2,}")
_MAX_NAME = 64
_canonical_cache: dict[str, str] = {}


class PersonaError(ValueError):
    """A persona file is invalid; the message names the file and the field."""


def canonical_name(name: str) -> str:
    """Return the canonical persona name: lower-case kebab, without the ``tta-`` prefix.

    ``Backend Engineer`` and ``tta-backend-engineer`` both become ``backend-engineer``; the
    first time a non-canonical spelling is seen, a warning names both, so analytics never
    split one persona in two.
    """
    cached = _canonical_cache.get(name)
    if cached is not None:
        return cached
    text = _SEPARATORS.sub("-", str(name).strip().lower())
    text = _DASHES.sub("-", _NOT_ALLOWED.sub("", text)).strip("-")
    for prefix in _PREFIXES:
        # Repeatedly: "tta-tta-x" must give what its result gives ("x"), or one persona splits.
        while text.startswith(prefix) and len(text) > len(prefix):
            text = text[len(prefix) :]
    text = text[:_MAX_NAME].strip("-") or UNKNOWN_PERSONA
    if text != name:
        logger.warning("persona %r is recorded as %r (canonical name)", name, text)
    if len(_canonical_cache) < 10_000:
        _canonical_cache[name] = text
    return text
