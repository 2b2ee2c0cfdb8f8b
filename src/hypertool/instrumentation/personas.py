"""Hypertool personas: the persona file format, canonical names, and the built-in set."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

logger = logging.getLogger("hypertool.instrumentation")

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
