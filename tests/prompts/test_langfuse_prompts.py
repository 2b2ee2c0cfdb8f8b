"""get_prompt against a loopback Langfuse: the request, the cache, and what happens under 200,
404, 500, a hanging host and an answer that is not a prompt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from hypertool.instrumentation import LangfuseIntegration, PromptError
from hypertool.instrumentation.model.prompts import PromptLink
from support.loopback import LoopbackOTLP, ReceivedRequest

PROMPTS = "/api/public/v2/prompts/"
NAME = "support/answer"  # a folder in the name: the slash is quoted in the path
FALLBACK = "Answer {{question}} (fallback)"


def prompt_body(version: int, text: str, name: str = NAME) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "type": "text",
        "prompt": text,
        "config": {"temperature": 0.2},
        "labels": ["production", "latest"],
        "tags": ["support"],
        "commitMessage": None,
    }


@pytest.fixture
def receiver() -> Iterator[LoopbackOTLP]:
    with LoopbackOTLP(hang_max=20) as loopback:
        yield loopback


@pytest.fixture
def integration(
    receiver: LoopbackOTLP, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LangfuseIntegration]:
    monkeypatch.setenv("HYPERTOOL_PROMPT_TIMEOUT", "0.5")
    built = LangfuseIntegration("pk-lf-prompts", "sk-lf-prompts", host=receiver.url)
    yield built
    built.shutdown(0)


def gets(receiver: LoopbackOTLP) -> list[ReceivedRequest]:
    return [r for r in receiver.requests if r.method == "GET" and r.path.startswith(PROMPTS)]


def query(request: ReceivedRequest) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.path).query)


def test_a_prompt_from_langfuse_is_fetched_once_and_cached(
    receiver: LoopbackOTLP, integration: LangfuseIntegration
) -> None:
    receiver.route("GET", PROMPTS, lambda request: (200, prompt_body(7, "Answer {{question}}")))
    first = integration.get_prompt(NAME, fallback=FALLBACK)
    again = integration.get_prompt(NAME, fallback=FALLBACK)
    assert first is again
    assert (first.name, first.version, first.type, first.source) == (NAME, 7, "text", "langfuse")
    assert first.prompt == "Answer {{question}}" and dict(first.config) == {"temperature": 0.2}
    assert first.labels == ("production", "latest") and first.tags == ("support",)
    assert first.link == PromptLink(NAME, 7)
    [request] = gets(receiver)
    assert urlsplit(request.path).path == PROMPTS + "support%2Fanswer"
    assert query(request) == {}  # no version, no label: Langfuse serves "production"
    assert (request.header("Authorization") or "").startswith("Basic ")


def test_version_and_label_are_asked_for_and_cached_apart(
    receiver: LoopbackOTLP, integration: LangfuseIntegration
) -> None:
    def answer(request: ReceivedRequest) -> tuple[int, Any]:
        asked = query(request)
        version = int(asked["version"][0]) if "version" in asked else 9
        return 200, prompt_body(version, f"v{version}")

    receiver.route("GET", PROMPTS, answer)
    assert integration.get_prompt(NAME, version=3).prompt == "v3"
    assert integration.get_prompt(NAME, label="staging").prompt == "v9"
    assert integration.get_prompt(NAME).prompt == "v9"
    assert integration.get_prompt(NAME, version=3).prompt == "v3"  # cached
    assert [query(r) for r in gets(receiver)] == [{"version": ["3"]}, {"label": ["staging"]}, {}]


def test_a_stale_entry_is_served_while_it_is_refreshed_in_the_background(
    receiver: LoopbackOTLP, integration: LangfuseIntegration
) -> None:
    versions = iter([1, 2, 2, 2])
    receiver.route(
        "GET", PROMPTS, lambda request: (200, prompt_body(v := next(versions), f"text {v}"))
    )
    assert integration.get_prompt(NAME, cache_ttl_seconds=0.2).version == 1
    time.sleep(0.3)
    started = time.perf_counter()
    stale = integration.get_prompt(NAME, cache_ttl_seconds=0.2)
    assert stale.version == 1 and time.perf_counter() - started < 0.1  # no waiting on the host
    receiver.wait_for(lambda: len(gets(receiver)) == 2, timeout=5, what="the background refresh")
    deadline = time.monotonic() + 5
    while integration.get_prompt(NAME, cache_ttl_seconds=0.2).version != 2:
        assert time.monotonic() < deadline, "the refreshed version never came"
        time.sleep(0.02)


def test_caching_off_fetches_every_time(
    receiver: LoopbackOTLP, integration: LangfuseIntegration
) -> None:
    receiver.route("GET", PROMPTS, lambda request: (200, prompt_body(1, "x")))
    for _ in range(3):
        assert integration.get_prompt(NAME, cache_ttl_seconds=0).version == 1
    assert len(gets(receiver)) == 3


def test_not_in_langfuse_is_served_from_the_local_folder_else_the_fallback(
    receiver: LoopbackOTLP, integration: LangfuseIntegration
) -> None:
    receiver.route("GET", PROMPTS, lambda request: (404, {"message": "Prompt not found"}))
    # The package ships release/version-bump: the local copy answers, linked to its version.
    local = integration.get_prompt("release/version-bump", fallback="never used")
    assert local.source == "local" and local.version >= 1
    assert local.prompt == "Implement backend for: Update version to {{version}}"
    fallback = integration.get_prompt(NAME, fallback=FALLBACK)
    assert fallback.is_fallback and fallback.link is None
    assert fallback.compile(question="why").__class__ is str
    with pytest.raises(PromptError) as raised:
        integration.get_prompt("support/unknown")
    message = str(raised.value)
    assert "'support/unknown' not found" in message and "HTTP 404" in message
    assert "local prompts" in message and "no fallback" in message


@pytest.mark.parametrize("answer", [(500, {"message": "boom"}), (200, {})])
def test_a_failing_or_odd_answer_gives_the_fallback_with_one_warning(
    receiver: LoopbackOTLP,
    integration: LangfuseIntegration,
    caplog: pytest.LogCaptureFixture,
    answer: tuple[int, Any],
) -> None:
    receiver.route("GET", PROMPTS, lambda request: answer)
    with caplog.at_level(logging.WARNING, "hypertool.instrumentation"):
        first = integration.get_prompt(NAME, fallback=FALLBACK)
        for _ in range(5):
            assert integration.get_prompt(NAME, fallback=FALLBACK) is first
    assert first.is_fallback
    # One fetch: a 5xx is retried within the time bound (3 attempts at most), then the answer
    # is cached and the later gets ask nothing.
    assert 1 <= len(gets(receiver)) <= (3 if answer[0] == 500 else 1)
    warnings = [r.getMessage() for r in caplog.records if NAME in r.getMessage()]
    if answer[0] == 500:
        assert len(warnings) == 1 and "HTTP 500" in warnings[0] and "fallback" in warnings[0]
    else:
        assert any("is not a prompt: no name, version, type, prompt" in w for w in warnings)
        assert len([w for w in warnings if "not a prompt" in w]) == 1


def test_a_hanging_host_is_waited_for_no_longer_than_the_prompt_timeout(
    receiver: LoopbackOTLP, integration: LangfuseIntegration
) -> None:
    receiver.route("GET", PROMPTS, lambda request: ("hang", prompt_body(1, "late")))
    started = time.perf_counter()
    prompt = integration.get_prompt(NAME, fallback=FALLBACK)
    waited = time.perf_counter() - started
    assert prompt.is_fallback
    assert 0.45 < waited < 1.0  # HYPERTOOL_PROMPT_TIMEOUT=0.5
    started = time.perf_counter()
    assert integration.get_prompt(NAME, fallback=FALLBACK).is_fallback
    assert time.perf_counter() - started < 0.05  # served from the cache, never waiting again
    with pytest.raises(PromptError, match=r"no answer within 0\.5 s"):
        integration.get_prompt("support/other")


@pytest.mark.parametrize(
    "kwargs,says",
    [
        ({"name": NAME, "version": 2, "label": "staging"}, "a version or a label, not both"),
        ({"name": NAME, "version": 0}, "must be at least 1"),
        ({"name": NAME, "version": "2"}, "not a whole number"),
        ({"name": "../secrets"}, "cannot be a path out of the prompts folder"),
        ({"name": ""}, "non-empty name"),
        ({"name": NAME, "fallback": 42}, "a fallback is a string or a list of messages"),
    ],
)
def test_malformed_requests_are_a_clear_error(
    integration: LangfuseIntegration, kwargs: dict[str, Any], says: str
) -> None:
    with pytest.raises(PromptError, match=says):
        integration.get_prompt(**kwargs)
