"""The local prompts folder: versions numbered in the store as the text changes, older versions
served again, malformed files named, the package's own prompts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hypertool.instrumentation import LangfuseIntegration, PromptError
from hypertool.instrumentation.prompts import BUILTIN_DIR
from hypertool.instrumentation.prompts.files import scan
from hypertool.instrumentation.store import TraceStore

NAME = "support/answer"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "prompts"
    (directory / "support").mkdir(parents=True)
    monkeypatch.setenv("HYPERTOOL_PROMPTS_DIR", str(directory))
    return directory


@pytest.fixture
def store_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "traces.db"
    monkeypatch.setenv("HYPERTOOL_STORE", str(path))
    return path


@pytest.fixture
def build() -> Iterator[Callable[[], LangfuseIntegration]]:
    made: list[LangfuseIntegration] = []

    def factory() -> LangfuseIntegration:
        made.append(LangfuseIntegration())
        return made[-1]

    yield factory
    for integration in made:
        integration.shutdown(0)


def write(folder: Path, name: str, content: Any, suffix: str = ".json") -> Path:
    path = folder / f"{name}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_each_change_of_text_is_a_new_version_kept_in_the_store(
    folder: Path, store_path: Path, build: Callable[[], LangfuseIntegration]
) -> None:
    langfuse = build()
    texts = ["Answer {{q}}", "Answer {{q}} briefly", "Answer {{q}}"]
    versions = []
    for text in texts:
        write(folder, NAME, {"prompt": text, "config": {"model": "gpt-4o"}})
        prompt = langfuse.get_prompt(NAME, cache_ttl_seconds=0)
        assert prompt.source == "local" and prompt.prompt == text
        assert dict(prompt.config) == {"model": "gpt-4o"}
        versions.append(prompt.version)
        assert langfuse.get_prompt(NAME, cache_ttl_seconds=0).version == prompt.version
    assert versions == [1, 2, 3]  # back to the first text is a change too, as in Langfuse
    old = langfuse.get_prompt(NAME, version=2)
    assert (old.version, old.prompt, old.source) == (2, "Answer {{q}} briefly", "local")
    with pytest.raises(PromptError, match="no version 9"):
        langfuse.get_prompt(NAME, version=9)
    with TraceStore(store_path, create=False) as store:
        history = [v for v in store.prompt_versions() if v["name"] == NAME]
    assert [(v["version"], v["prompt"]) for v in history] == list(enumerate(texts, start=1))
    # Another process (integration) sees the same numbering.
    assert build().get_prompt(NAME).version == 3


def test_the_cache_keeps_a_version_for_its_time(
    folder: Path, store_path: Path, build: Callable[[], LangfuseIntegration]
) -> None:
    langfuse = build()
    write(folder, NAME, {"prompt": "one"})
    assert langfuse.get_prompt(NAME).prompt == "one"
    write(folder, NAME, {"prompt": "two"})
    assert langfuse.get_prompt(NAME).prompt == "one"  # cached 60 s, as langfuse's SDK does
    assert langfuse.get_prompt(NAME, cache_ttl_seconds=0).prompt == "two"


def test_without_a_store_versions_are_kept_in_memory(
    folder: Path, build: Callable[[], LangfuseIntegration]
) -> None:
    langfuse = build()  # HYPERTOOL_STORE=off (the test default)
    write(folder, NAME, {"prompt": "one"})
    assert langfuse.get_prompt(NAME, cache_ttl_seconds=0).version == 1
    write(folder, NAME, "two", suffix=".txt")
    (folder / f"{NAME}.json").unlink()
    second = langfuse.get_prompt(NAME, cache_ttl_seconds=0)
    assert (second.version, second.type, second.prompt) == (2, "text", "two")


def test_chat_prompt_files(folder: Path, build: Callable[[], LangfuseIntegration]) -> None:
    messages = [
        {"role": "system", "content": "You are {{persona}}"},
        {"type": "placeholder", "name": "history"},
        {"role": "user", "content": "{{question}}"},
    ]
    write(folder, "chat/helper", {"type": "chat", "prompt": messages})
    prompt = build().get_prompt("chat/helper")
    assert prompt.type == "chat" and list(prompt.prompt) == messages
    compiled = prompt.compile(persona="a tester", question="why?", history=[])
    assert list(compiled) == [
        {"role": "system", "content": "You are a tester"},
        {"role": "user", "content": "why?"},
    ]


@pytest.mark.parametrize(
    "content,says",
    [
        ("{not json", "not valid JSON"),
        ([1, 2], "holds a JSON object"),
        ({"prompt": "x", "temperature": 1}, "unknown field(s) temperature"),
        ({"prompt": 3}, "prompt of a text prompt must be a string"),
        ({"type": "chat", "prompt": [{"role": "user"}]}, "prompt[0] needs a role and a content"),
        ({"type": "audio", "prompt": "x"}, "type 'audio' must be text or chat"),
        ({"prompt": "x", "config": []}, "config must be an object"),
        ({"name": "other", "prompt": "x"}, "is not the file's name"),
    ],
)
def test_a_malformed_file_is_an_error_naming_it_or_one_warning_with_a_fallback(
    folder: Path,
    build: Callable[[], LangfuseIntegration],
    caplog: pytest.LogCaptureFixture,
    content: Any,
    says: str,
) -> None:
    path = write(folder, NAME, content)
    langfuse = build()
    with pytest.raises(PromptError) as raised:
        langfuse.get_prompt(NAME)
    assert str(path) in str(raised.value) and says in str(raised.value)
    with caplog.at_level(logging.WARNING, "hypertool.instrumentation"):
        for _ in range(3):
            fallback = langfuse.get_prompt(NAME, fallback="fallback {{q}}", cache_ttl_seconds=0)
            assert fallback.is_fallback
    warned = [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
    assert len(warned) == 1 and says in warned[0]


def test_not_a_utf8_file(folder: Path, build: Callable[[], LangfuseIntegration]) -> None:
    path = folder / f"{NAME}.txt"
    path.write_bytes(b"caf\xe9")
    with pytest.raises(PromptError, match="not UTF-8 text"):
        build().get_prompt(NAME)


def test_your_folder_wins_over_the_packages_prompts(
    folder: Path, build: Callable[[], LangfuseIntegration]
) -> None:
    langfuse = build()
    shipped = langfuse.get_prompt("release/publish")
    assert shipped.prompt == "Deploy: Publish package {{version}} to PyPI"
    write(folder, "release/publish", {"prompt": "Ship {{version}}"})
    assert langfuse.get_prompt("release/publish", cache_ttl_seconds=0).prompt == "Ship {{version}}"


def test_the_package_ships_its_prompts_and_they_are_all_valid() -> None:
    prompts, problems = scan([BUILTIN_DIR])
    assert problems == []
    assert {p.name for p in prompts} >= {
        "release/version-bump",
        "release/quality-validation",
        "release/publish",
    }


def test_unknown_prompt_without_fallback_names_where_it_looked(
    folder: Path, build: Callable[[], LangfuseIntegration]
) -> None:
    with pytest.raises(PromptError) as raised:
        build().get_prompt("nowhere/to-be-found")
    message = str(raised.value)
    assert "'nowhere/to-be-found' not found" in message
    assert str(folder) in message and str(BUILTIN_DIR) in message
    assert "Langfuse" not in message  # no keys: Langfuse was not asked
