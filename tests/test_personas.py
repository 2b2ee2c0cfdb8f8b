"""Persona names, the built-in personas and persona files."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypertool.instrumentation import (
    Persona,
    PersonaError,
    PersonaRegistry,
    builtin_personas,
    canonical_name,
    load_personas,
)
from hypertool.instrumentation.persona_names import _equivalence_key

BUILTIN = {
    "backend-engineer",
    "frontend-engineer",
    "devops-engineer",
    "testing-specialist",
    "observability-expert",
    "data-scientist",
}

VALID: dict[str, Any] = {
    "name": "release-manager",
    "displayName": "Release Manager",
    "description": "Ships packages",
    "icon": "🚢",
    "tokenBudget": 1234,
    "allowedServers": ["github"],
    "allowedTools": ["git", "twine"],
    "restrictedPaths": ["secrets/**"],
    "context": {"stack": "Python"},
    "security": {"requireApproval": True},
    "workflows": ["package-release"],
}


# -- canonical names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "Backend Engineer",
        "tta-backend-engineer",
        "backend_engineer",
        "  BACKEND-ENGINEER ",
        "backend-engineer",
        "Backend   Engineer",
        "backend.engineer",
        "TTA-Backend_Engineer",
    ],
)
def test_canonical_name_spellings(spelling: str) -> None:
    assert canonical_name(spelling) == "backend-engineer"


@pytest.mark.parametrize("empty", ["", "   ", "\t\n"])
def test_canonical_name_of_nothing_is_unknown(empty: str) -> None:
    assert canonical_name(empty) == "unknown"


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("エンジニア", "エンジニア"),
        ("инженер", "инженер"),
        ("مهندس", "مهندس"),
        ("Ingénieure", "ingénieure"),
        ("Инженер Данных", "инженер-данных"),
        ("हिन्दी इंजीनियर", "हिन्दी-इंजीनियर"),  # combining vowel signs are kept
        ("Ｂａｃｋｅｎｄ　Ｅｎｇｉｎｅｅｒ", "backend-engineer"),  # NFKC: full-width forms
        ("Inge\u0301nieure", "ingénieure"),  # NFKC: a combining accent is composed
        ("backend — engineer", "backend-engineer"),  # Unicode dashes separate words
    ],
)
def test_canonical_name_keeps_the_letters_of_every_script(name: str, canonical: str) -> None:
    assert canonical_name(name) == canonical


def test_distinct_names_never_merge_and_never_become_unknown() -> None:
    names = [
        "エンジニア",
        "инженер",
        "مهندس",
        "ingénieure",
        "ingenieure",
        "!!!",
        "???",
        "---",
        "C++ Dev",
        "C# Dev",
        "c-dev",
        "O'Brien",
        "OBrien",
        "🤖",
        "👾",
        "\ud800",
        "\udfff",
        "x" * 64 + "a",
        "x" * 64 + "b",
        "x" * 64,
    ]
    canonical = [canonical_name(name) for name in names]
    assert "unknown" not in canonical
    assert len(set(canonical)) == len(names), dict(zip(names, canonical, strict=True))
    for result in canonical:
        assert 0 < len(result) <= 64 and canonical_name(result) == result
        result.encode("utf-8")  # never a lone surrogate: every sink can encode it


def test_a_name_with_symbols_keeps_its_readable_part() -> None:
    result = canonical_name("C++ Dev")
    assert result.startswith("c-dev-") and len(result) == len("c-dev-") + 12
    assert canonical_name("tta-c++_dev") == result  # the usual spellings still agree


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_canonical_name_is_idempotent_on_any_text(name: str) -> None:
    once = canonical_name(name)
    assert canonical_name(once) == once
    assert 0 < len(once) <= 64
    assert once == "unknown" or name.strip()


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_names_merge_only_when_they_are_spellings_of_one_name(a: str, b: str) -> None:
    if canonical_name(a) == canonical_name(b):
        assert _equivalence_key(a) == _equivalence_key(b) or not (a.strip() or b.strip())


def test_warnings_stay_bounded_however_many_names(caplog: pytest.LogCaptureFixture) -> None:
    marker = uuid.uuid4().hex[:8]
    names = [f"Bounded {marker} {i}" for i in range(12_000)]
    with caplog.at_level(logging.WARNING, logger="hypertool.instrumentation"):
        for _ in range(2):
            for i, name in enumerate(names):
                assert canonical_name(name) == f"bounded-{marker}-{i}"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 101, len(warnings)  # the first 100 spellings, then one summary
    assert "further ones are not logged" in warnings[-1]


def test_canonical_name_does_not_strip_the_bare_prefix() -> None:
    assert canonical_name("tta") == "tta"


def test_canonical_name_is_idempotent() -> None:
    for raw in ["Data Scientist", "tta-devops-engineer", "Observability_Expert"]:
        once = canonical_name(raw)
        assert canonical_name(once) == once


def test_non_canonical_spelling_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    # A spelling never seen before in this process (the warning is once per spelling).
    marker = uuid.uuid4().hex[:8]
    raw = f"Warning Check {marker}"
    with caplog.at_level(logging.WARNING, logger="hypertool.instrumentation"):
        result = canonical_name(raw)
    assert result == f"warning-check-{marker}"
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(raw in m and result in m for m in messages), messages


def test_canonical_spelling_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    raw = f"already-canonical-{uuid.uuid4().hex[:8]}"
    with caplog.at_level(logging.WARNING, logger="hypertool.instrumentation"):
        assert canonical_name(raw) == raw
    assert not [r for r in caplog.records if raw in r.getMessage()]


# -- built-in personas -------------------------------------------------------------------


def test_builtin_personas_are_the_six() -> None:
    registry = builtin_personas()
    assert set(registry) == BUILTIN
    assert len(registry) == 6
    for name in BUILTIN:
        persona = registry[name]
        assert persona.name == name
        assert persona.token_budget > 0
        assert registry.budget(name) == persona.token_budget


def test_builtin_registry_accepts_any_spelling() -> None:
    registry = builtin_personas()
    assert "Backend Engineer" in registry
    assert registry["tta-backend-engineer"] is registry["backend-engineer"]
    assert registry.budget("Backend Engineer") == registry["backend-engineer"].token_budget
    assert registry.budget("no-such-persona") is None
    assert "no-such-persona" not in registry
    assert 42 not in registry


def test_registry_merged_replaces_same_name() -> None:
    registry = builtin_personas()
    override = Persona(name="Backend Engineer", tokenBudget=1)
    merged = registry.merged([override])
    assert merged.budget("backend-engineer") == 1
    assert registry.budget("backend-engineer") != 1
    assert set(merged) == set(registry)


def test_empty_registry() -> None:
    registry = PersonaRegistry()
    assert len(registry) == 0
    assert registry.budget("backend-engineer") is None


# -- persona files -----------------------------------------------------------------------


def write(path: Path, content: Any) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content), "utf-8")
    return path


def test_from_file_reads_camel_case_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "release.json", VALID)
    persona = Persona.from_file(path)
    assert persona.name == "release-manager"
    assert persona.display_name == VALID["displayName"]
    assert persona.token_budget == VALID["tokenBudget"]
    assert persona.allowed_servers == VALID["allowedServers"]
    assert persona.allowed_tools == VALID["allowedTools"]
    assert persona.restricted_paths == VALID["restrictedPaths"]
    assert persona.context == VALID["context"]
    assert persona.security == VALID["security"]
    assert persona.workflows == VALID["workflows"]


def test_from_file_round_trips_camel_case(tmp_path: Path) -> None:
    data = {**VALID, "customField": {"kept": True}}
    persona = Persona.from_file(write(tmp_path / "release.json", data))
    dumped = persona.model_dump(by_alias=True)
    # every camelCase key written comes back under the same key with the same value
    assert {key: dumped[key] for key in data} == data
    assert "token_budget" not in dumped and "display_name" not in dumped
    again = Persona.from_file(write(tmp_path / "again.json", dumped))
    assert again == persona


def test_from_file_canonicalises_the_name(tmp_path: Path) -> None:
    persona = Persona.from_file(write(tmp_path / "p.json", {"name": "TTA Release Manager"}))
    assert persona.name == "release-manager"
    assert persona.token_budget == 0


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("{not json", None),
        ("[1, 2, 3]", None),
        ('"just a string"', None),
        ({**VALID, "tokenBudget": -1}, "tokenBudget"),
        ({key: value for key, value in VALID.items() if key != "name"}, "name"),
        ({**VALID, "name": ""}, "name"),
        ({**VALID, "tokenBudget": "lots"}, "tokenBudget"),
        ({**VALID, "allowedTools": "git"}, "allowedTools"),
    ],
)
def test_invalid_file_raises_persona_error_naming_file_and_field(
    tmp_path: Path, content: Any, field: str | None
) -> None:
    path = write(tmp_path / "broken-persona.json", content)
    with pytest.raises(PersonaError) as info:
        Persona.from_file(path)
    message = str(info.value)
    assert str(path) in message
    if field is not None:
        assert field in message


def test_unreadable_file_raises_persona_error(tmp_path: Path) -> None:
    path = tmp_path / "missing.json"
    with pytest.raises(PersonaError) as info:
        Persona.from_file(path)
    assert str(path) in str(info.value)


def test_persona_error_is_a_value_error() -> None:
    assert issubclass(PersonaError, ValueError)


def test_load_personas_reads_every_json_file_sorted(tmp_path: Path) -> None:
    write(tmp_path / "b.json", {**VALID, "name": "zeta-persona", "tokenBudget": 2})
    write(tmp_path / "a.json", {**VALID, "name": "alpha-persona", "tokenBudget": 1})
    (tmp_path / "notes.txt").write_text("not a persona")
    personas = load_personas(tmp_path)
    assert [p.name for p in personas] == ["alpha-persona", "zeta-persona"]
    assert [p.token_budget for p in personas] == [1, 2]
    registry = PersonaRegistry(personas)
    assert registry.budget("Zeta Persona") == 2


def test_load_personas_accepts_str_path(tmp_path: Path) -> None:
    write(tmp_path / "one.json", VALID)
    assert [p.name for p in load_personas(str(tmp_path))] == ["release-manager"]


def test_load_personas_empty_directory(tmp_path: Path) -> None:
    assert load_personas(tmp_path) == []


def test_load_personas_names_the_bad_file(tmp_path: Path) -> None:
    write(tmp_path / "a-good.json", VALID)
    bad = write(tmp_path / "b-bad.json", {**VALID, "tokenBudget": -10})
    with pytest.raises(PersonaError) as info:
        load_personas(tmp_path)
    assert str(bad) in str(info.value)
    assert "tokenBudget" in str(info.value)


def test_load_personas_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    with pytest.raises(PersonaError) as info:
        load_personas(missing)
    assert str(missing) in str(info.value)


def test_load_personas_on_a_file_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "file.json", VALID)
    with pytest.raises(PersonaError):
        load_personas(path)
