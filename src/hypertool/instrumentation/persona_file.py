"""The Hypertool persona file format (JSON, camelCase keys), validated with pydantic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hypertool.instrumentation.persona_names import PersonaError, canonical_name


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
