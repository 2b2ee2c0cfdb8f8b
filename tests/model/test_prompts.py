"""Managed prompts compile like langfuse's own clients, and what they compile to links calls."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langfuse.api import Prompt_Chat, Prompt_Text
from langfuse.model import ChatPromptClient, TemplateParser, TextPromptClient

from hypertool.instrumentation.model.prompts import (
    ManagedPrompt,
    PromptLink,
    PromptMessages,
    PromptText,
    active_link,
    compile_template,
    find_link,
    link_of,
    template_variables,
)

# Templates made of the characters that matter: braces, spaces, variable names, and text.
_TEMPLATE = st.text(alphabet="{} ab_xyz.\n", max_size=40)
_VARIABLES = st.dictionaries(
    st.sampled_from(["a", "b", "x", "ab", "x_y", " a", "a "]),
    st.one_of(st.none(), st.text(alphabet=string.ascii_letters + "{}", max_size=5), st.integers()),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(_TEMPLATE, _VARIABLES)
def test_text_compiles_like_langfuse(template: str, variables: dict[str, Any]) -> None:
    ours = ManagedPrompt("p", 3, "text", template).compile(**variables)
    theirs = TextPromptClient(
        Prompt_Text(name="p", version=3, prompt=template, config={}, labels=[], tags=[])
    ).compile(**variables)
    assert ours == theirs == compile_template(template, variables)
    assert template_variables(template) == TemplateParser.find_variable_names(template)


@settings(max_examples=200, deadline=None)
@given(_TEMPLATE, _TEMPLATE, _VARIABLES, st.booleans())
def test_chat_compiles_like_langfuse(
    system: str, user: str, variables: dict[str, Any], give_history: bool
) -> None:
    messages = [
        {"role": "system", "content": system},
        {"type": "placeholder", "name": "history"},
        {"role": "user", "content": user},
    ]
    if give_history:
        variables = {**variables, "history": [{"role": "user", "content": "{{a}} before"}]}
    ours = ManagedPrompt("p", 2, "chat", tuple(messages)).compile(**variables)
    theirs = ChatPromptClient(
        Prompt_Chat(name="p", version=2, prompt=messages, config={}, labels=[], tags=[])
    ).compile(**variables)
    assert list(ours) == [dict(message) for message in theirs]


def test_compiled_values_carry_their_link_and_fallbacks_none() -> None:
    text = ManagedPrompt("release/bump", 4, "text", "Bump to {{v}}").compile(v="1.2")
    assert isinstance(text, PromptText) and text == "Bump to 1.2"
    assert link_of(text) == PromptLink("release/bump", 4)
    assert str(text).__class__ is str  # plain text for every sink

    chat = ManagedPrompt("chat", 1, "chat", ({"role": "user", "content": "hi {{n}}"},))
    messages = chat.compile(n="Ann")
    assert isinstance(messages, PromptMessages)
    assert messages == [{"role": "user", "content": "hi Ann"}]
    assert link_of(messages) == PromptLink("chat", 1)

    fallback = ManagedPrompt("release/bump", 0, "text", "Bump to {{v}}", source="fallback")
    assert fallback.is_fallback and fallback.link is None
    compiled = fallback.compile(v="1.2")
    assert compiled.__class__ is str and link_of(compiled) is None


def test_a_compiled_text_inside_your_own_messages_is_found() -> None:
    text = ManagedPrompt("p", 7, "text", "{{q}}").compile(q="why?")
    messages = ({"role": "system", "content": "be brief"}, {"role": "user", "content": text})
    assert link_of(messages) is None  # not on the caller's path…
    assert find_link(messages) == PromptLink("p", 7)  # …but on the recorder thread
    assert find_link("plain") is None and find_link([{"content": "plain"}]) is None


def test_linked_sets_the_link_for_the_block_only() -> None:
    prompt = ManagedPrompt("p", 5, "text", "x")
    assert active_link() is None
    with prompt.linked():
        assert active_link() == PromptLink("p", 5)
        with ManagedPrompt("p", 0, "text", "x", source="fallback").linked():
            assert active_link() is None  # a fallback links nothing
        assert active_link() == PromptLink("p", 5)
    assert active_link() is None


@pytest.mark.parametrize(
    "prompt,expected",
    [
        (ManagedPrompt("p", 1, "text", "{{a}} and {{ b }}"), ["a", "b"]),
        (
            ManagedPrompt(
                "p",
                1,
                "chat",
                ({"role": "user", "content": "{{x}}"}, {"type": "placeholder", "name": "h"}),
            ),
            ["x"],
        ),
    ],
)
def test_variables(prompt: ManagedPrompt, expected: list[str]) -> None:
    assert prompt.variables == expected
