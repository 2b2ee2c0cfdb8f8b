"""Hypertool personas: canonical names, the registry, and the built-in set.

The persona file model (:class:`Persona`, pydantic) lives in :mod:`.persona_file` and is
imported when personas are first loaded, so importing the package stays light; it is also
available here as ``personas.Persona``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypertool.instrumentation.persona_names import (
    UNKNOWN_PERSONA,
    PersonaError,
    canonical_name,
)

if TYPE_CHECKING:
    from hypertool.instrumentation.persona_file import Persona

__all__ = [
    "UNKNOWN_PERSONA",
    "Persona",
    "PersonaError",
    "PersonaRegistry",
    "builtin_personas",
    "canonical_name",
    "load_personas",
]


def __getattr__(name: str) -> Any:
    if name == "Persona":
        from hypertool.instrumentation.persona_file import Persona

        return Persona
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class PersonaRegistry(Mapping[str, "Persona"]):
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
    from hypertool.instrumentation.persona_file import Persona

    directory = Path(directory)
    if not directory.is_dir():
        raise PersonaError(f"{directory}: persona directory does not exist")
    return [Persona.from_file(path) for path in sorted(directory.glob("*.json"))]


def builtin_personas() -> PersonaRegistry:
    """The built-in personas shipped with the package."""
    from hypertool.instrumentation.persona_file import Persona

    folder = resources.files("hypertool.instrumentation").joinpath("personas")
    personas = []
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".json"):
            personas.append(Persona.model_validate(json.loads(entry.read_text(encoding="utf-8"))))
    return PersonaRegistry(personas)
