"""Canonical persona names: one spelling per persona everywhere (Langfuse user, metric label,
store column), so analytics never split one persona in two.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata

from hypertool.instrumentation._log import warn_first

UNKNOWN_PERSONA = "unknown"
_PREFIXES = ("tta-",)
# Whitespace, "_", ".", "/" and dashes (ASCII and Unicode) separate words.
_SEPARATORS = re.compile(r"[\s_./\u2010-\u2015\u2212-]+")
_ASCII_NOT_ALLOWED = re.compile(r"[^a-z0-9-]+")
_DASHES = re.compile(r"-{2,}")
_MAX_NAME = 64
_DIGEST_BYTES = 6  # 12 hex digits: distinct names collide with odds of ~1e-7 among 10,000
_MAX_CACHED_LENGTH = 256
_MAX_WARNED_NAMES = 100
_SHOWN = 80


class PersonaError(ValueError):
    """A persona file is invalid; the message names the file and the field."""


def canonical_name(name: str) -> str:
    """Return the canonical persona name: lower-case kebab, without the ``tta-`` prefix.

    ``Backend Engineer`` and ``tta-backend-engineer`` both become ``backend-engineer``:
    case, separators (spaces, ``_``, ``.``, ``/``, dashes) and the prefix never split one
    persona in two. Letters and digits of every script are kept (NFKC-normalised, so
    ``Ingénieure`` becomes ``ingénieure`` and ``エンジニア`` stays itself). Distinct names never
    merge: a name with other characters (``C++ Dev``) or longer than 64 characters keeps a
    readable part and gains a short digest of the whole (``c-dev-1f0e…``); only a name with
    nothing but whitespace is ``unknown``. The first time a non-canonical spelling is seen, a
    warning names both (for the first 100 such spellings; then one last warning).
    """
    text = name if type(name) is str else str(name)
    if len(text) > _MAX_CACHED_LENGTH:
        return _canonical(text)  # not cached: a cache of huge names would be a leak
    return _canonical_cached(text)


def _equivalence_key(text: str) -> str:
    """What every spelling of one persona has in common: NFKC, lower case, one dash between
    words, no surrounding dashes, no ``tta-`` prefix.
    """
    if not text.isascii():
        # Lower case can undo NFKC (a mark left out of order): normalise again after it.
        text = _nfkc_lower(text)
    text = _DASHES.sub("-", _SEPARATORS.sub("-", text.strip().lower())).strip("-")
    for prefix in _PREFIXES:
        # Repeatedly: "tta-tta-x" must give what its result gives ("x"), or one persona splits.
        while text.startswith(prefix) and len(text) > len(prefix):
            text = text[len(prefix) :]
    return text


def _nfkc_lower(text: str) -> str:
    for _ in range(4):  # settles at once but for a few characters; never loops long
        settled = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).lower())
        if settled == text:
            break
        text = settled
    return text


def _letters(text: str) -> str:
    """The letters, marks, digits and single dashes of ``text``, still NFKC and lower case:
    leaving characters out can put marks side by side that normalisation reorders or
    composes, so it is normalised again until nothing changes.
    """
    for _ in range(4):
        kept = "".join(
            char for char in text if char == "-" or unicodedata.category(char)[0] in "LMN"
        )
        kept = _DASHES.sub("-", _nfkc_lower(kept)).strip("-")
        if kept == text:
            break
        text = kept
    return text


def _canonical(text: str) -> str:
    key = _equivalence_key(text)
    if key.isascii():
        readable = _ASCII_NOT_ALLOWED.sub("", key)
    else:
        readable = _letters(key[: _MAX_CACHED_LENGTH * 4])
    readable = _DASHES.sub("-", readable).strip("-")
    if readable == key and 0 < len(key) <= _MAX_NAME:
        result = key
    elif not key and not text.strip():
        result = UNKNOWN_PERSONA
    else:
        # Something was left out or cut: a digest of the whole keeps distinct names apart.
        whole = (key or text.strip()).encode("utf-8", "surrogatepass")
        digest = hashlib.blake2b(whole, digest_size=_DIGEST_BYTES).hexdigest()
        readable = readable[: _MAX_NAME - len(digest) - 1].strip("-")
        if not readable.isascii():
            readable = _letters(readable)  # a cut may leave marks that combine differently
        readable = readable or "persona"
        result = f"{readable}-{digest}"
    if result != text:
        shown = text if len(text) <= _SHOWN else f"{text[:_SHOWN]}…"
        warn_first(
            "non-canonical persona names",
            text if len(text) <= _MAX_CACHED_LENGTH else result,
            _MAX_WARNED_NAMES,
            "persona %r is recorded as %r (canonical name)",
            shown,
            result,
        )
    return result


_canonical_cached = functools.lru_cache(maxsize=4096)(_canonical)
