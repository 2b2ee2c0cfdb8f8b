"""Hypertool personas: the persona file format, canonical names, and the built-in set."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hypertool.instrumentation._log import warn_first

logger = logging.getLogger("hypertool.instrumentation")

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
        text = unicodedata.normalize("NFKC", text)
    text = _DASHES.sub("-", _SEPARATORS.sub("-", text.strip().lower())).strip("-")
    for prefix in _PREFIXES:
        # Repeatedly: "tta-tta-x" must give what its result gives ("x"), or one persona splits.
        while text.startswith(prefix) and len(text) > len(prefix):
            text = text[len(prefix) :]
    return text


def _canonical(text: str) -> str:
    key = _equivalence_key(text)
    if key.isascii():
        readable = _ASCII_NOT_ALLOWED.sub("", key)
    else:
        readable = "".join(
            char
            for char in key[: _MAX_CACHED_LENGTH * 4]
            if char == "-" or unicodedata.category(char)[0] in "LMN"
        )
    readable = _DASHES.sub("-", readable).strip("-")
    if readable == key and 0 < len(key) <= _MAX_NAME:
        result = key
    elif not key and not text.strip():
        result = UNKNOWN_PERSONA
    else:
        # Something was left out or cut: a digest of the whole keeps distinct names apart.
        whole = (key or text.strip()).encode("utf-8", "surrogatepass")
        digest = hashlib.blake2b(whole, digest_size=_DIGEST_BYTES).hexdigest()
        readable = readable[: _MAX_NAME - len(digest) - 1].strip("-") or "persona"
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


class Persona(BaseModel):
    """One Hypertool persona, as in a persona JSON file (camelCase keys)."""

    model_config = ConfigDict(populate_by_name=True, extra="allow", frozen=True)

    name: str = Field(min_length=1)
    display_name: str = Field(default="", alias="displayName")
    description: str = ""
    icon: str = ""
    token_budget: int = Field(default=0, alias="tokenBudget", ge=0)
    allowed_servers: list[str] = Field(default_factory=list, alias="allowedServers")
    allowed_tools: list[str] = Field(default_factory=list, alias="allowedTools")
    restricted_paths: list[str] = Field(default_factory=list, alias="restrictedPaths")
    context: dict[str, Any] = Field(default_factory=dict)
    security: dict[str, Any] = Field(default_factory=dict)
    workflows: list[str] = Field(default_factory=list)
    cost_budget_usd: float | None = Field(default=None, alias="costBudgetUsd", ge=0)
    budget_period: Literal["session", "day", "month"] | None = Field(
        default=None, alias="budgetPeriod"
    )
    budget_policy: Literal["warn", "block"] | None = Field(default=None, alias="budgetPolicy")

    @field_validator("name")
    @classmethod
    def _canonical(cls, value: str) -> str:
        return canonical_name(value)

    @classmethod
    def from_file(cls, path: str | Path) -> Persona:
        """Load one persona file.

        Raises:
            PersonaError: the file is unreadable, not JSON, or a field is invalid; the
                message names the file and the field.

        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise PersonaError(f"{path}: cannot read persona file: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise PersonaError(f"{path}: not valid JSON (line {exc.lineno}): {exc.msg}") from None
        if not isinstance(data, dict):
            raise PersonaError(f"{path}: a persona file must hold a JSON object")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "<root>"
            raise PersonaError(f"{path}: field {field!r}: {first['msg']}") from None


class PersonaRegistry(Mapping[str, Persona]):
    """Personas by canonical name."""

    def __init__(self, personas: Iterable[Persona] = ()) -> None:
        self._personas: dict[str, Persona] = {}
        for persona in personas:
            self._personas[persona.name] = persona

    def __getitem__(self, name: str) -> Persona:
        return self._personas[canonical_name(name)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._personas)

    def __len__(self) -> int:
        return len(self._personas)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and canonical_name(name) in self._personas

    def budget(self, name: str) -> int | None:
        """The persona's token budget, or None for an unknown persona."""
        persona = self._personas.get(canonical_name(name))
        return persona.token_budget if persona is not None else None

    def merged(self, other: Iterable[Persona]) -> PersonaRegistry:
        """A registry with ``other`` added, replacing personas of the same name."""
        return PersonaRegistry([*self._personas.values(), *other])


def load_personas(directory: str | Path) -> list[Persona]:
    """Load every ``*.json`` persona file in ``directory`` (sorted by file name).

    Raises:
        PersonaError: a file is invalid, or the directory does not exist.

    """
    directory = Path(directory)
    if not directory.is_dir():
        raise PersonaError(f"{directory}: persona directory does not exist")
    return [Persona.from_file(path) for path in sorted(directory.glob("*.json"))]


def builtin_personas() -> PersonaRegistry:
    """The built-in personas shipped with the package."""
    folder = resources.files("hypertool.instrumentation").joinpath("personas")
    personas = []
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".json"):
            personas.append(Persona.model_validate(json.loads(entry.read_text(encoding="utf-8"))))
    return PersonaRegistry(personas)
