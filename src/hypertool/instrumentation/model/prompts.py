"""Managed prompts as values: a prompt version, how it compiles, and how a generation made from
it is linked to it.

A :class:`ManagedPrompt` compiles ``{{ var }}`` like Langfuse's ``TemplateParser`` (a variable
not given stays as written; None becomes ""). What :meth:`ManagedPrompt.compile` returns
remembers where it came from: a :class:`PromptText` (a ``str``) for a text prompt, a
:class:`PromptMessages` (a ``list`` of messages) for a chat prompt. Given as the input of an
instrumented call, it links the generation to the prompt's name and version; so does any call
made inside ``with prompt.linked():``. Fallback prompts are never linked. No I/O here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final, Literal

PromptType = Literal["text", "chat"]
PROMPT_TYPES: Final = ("text", "chat")
SOURCE_LANGFUSE: Final = "langfuse"
SOURCE_LOCAL: Final = "local"
SOURCE_FALLBACK: Final = "fallback"
DEFAULT_LABEL: Final = "production"

_OPEN = "{{"
_CLOSE = "}}"


class PromptError(ValueError):
    """A prompt cannot be had as asked (unknown name or version, a malformed prompt file, an
    answer that is not a prompt); the message names the prompt, the file or the field.
    """


@dataclass(frozen=True, slots=True)
class PromptLink:
    """What a generation made from a managed prompt carries: the prompt's name and version
    (``langfuse.observation.prompt.name`` / ``.version``).
    """

    name: str
    version: int


class PromptText(str):
    """A compiled text prompt: a ``str`` that remembers its prompt (``prompt_link``)."""

    prompt_link: PromptLink | None

    def __new__(cls, text: str, link: PromptLink | None) -> PromptText:
        """The text ``text`` linked to ``link``."""
        made = super().__new__(cls, text)
        made.prompt_link = link
        return made


class PromptMessages(list[dict[str, Any]]):
    """Compiled chat messages: a ``list`` that remembers its prompt (``prompt_link``)."""

    prompt_link: PromptLink | None

    def __init__(self, messages: Sequence[dict[str, Any]], link: PromptLink | None) -> None:
        super().__init__(messages)
        self.prompt_link = link


ACTIVE_PROMPT: ContextVar[PromptLink | None] = ContextVar("hypertool_prompt", default=None)
"""The prompt entered with ``with prompt.linked():`` (read on the caller's path: ``.get()``)."""


def active_link() -> PromptLink | None:
    """The prompt entered with ``with prompt.linked():`` in this thread or task, if any."""
    return ACTIVE_PROMPT.get()


def link_of(value: Any) -> PromptLink | None:
    """The link ``value`` carries itself (a compiled prompt), else None. Cheap: for the
    caller's path.
    """
    if value.__class__ is str:
        return None
    link = getattr(value, "prompt_link", None)
    return link if isinstance(link, PromptLink) else None


def find_link(value: Any, depth: int = 3) -> PromptLink | None:
    """The first link in ``value`` or, a few levels down, in a list, tuple or dict of it
    (a compiled text put inside your own messages). For the recorder thread.
    """
    link = link_of(value)
    if link is not None or depth <= 0:
        return link
    if isinstance(value, Mapping):
        items: Any = value.values()
    elif isinstance(value, list | tuple):
        items = value
    else:
        return None
    for item in items:
        if item.__class__ is not str and item is not None:
            found = find_link(item, depth - 1)
            if found is not None:
                return found
    return None


# -- compiling, as langfuse's TemplateParser does ------------------------------------------
def _next_variable(content: str, start: int) -> tuple[str, int, int] | None:
    begin = content.find(_OPEN, start)
    if begin == -1:
        return None
    end = content.find(_CLOSE, begin)
    if end == -1:
        return None
    return content[begin + len(_OPEN) : end].strip(), begin, end + len(_CLOSE)


def template_variables(content: str) -> list[str]:
    """The names of the ``{{ var }}`` in ``content``, in order (repeats included)."""
    names: list[str] = []
    position = 0
    while position < len(content):
        found = _next_variable(content, position)
        if found is None:
            break
        names.append(found[0])
        position = found[2]
    return names


def compile_template(content: str, variables: Mapping[str, Any]) -> str:
    """``content`` with each ``{{ var }}`` given in ``variables`` replaced (None → "");
    variables not given stay as written.
    """
    parts: list[str] = []
    position = 0
    while position < len(content):
        found = _next_variable(content, position)
        if found is None:
            parts.append(content[position:])
            break
        name, begin, end = found
        parts.append(content[position:begin])
        if name in variables:
            value = variables[name]
            parts.append("" if value is None else str(value))
        else:
            parts.append(content[begin:end])
        position = end
    return "".join(parts)


def _compile_messages(
    messages: Sequence[Mapping[str, Any]], variables: Mapping[str, Any]
) -> list[dict[str, Any]]:
    compiled: list[dict[str, Any]] = []
    for message in messages:
        if message.get("type") == "placeholder":
            given = variables.get(str(message.get("name")))
            if isinstance(given, list):
                for item in given:
                    if isinstance(item, Mapping):
                        entry = dict(item)
                        entry["role"] = item.get("role", "NOT_GIVEN")
                        entry["content"] = compile_template(str(item.get("content", "")), variables)
                        compiled.append(entry)
                    else:
                        compiled.append({"role": "NOT_GIVEN", "content": str(given)})
            elif given is not None:
                compiled.append({"role": "NOT_GIVEN", "content": str(given)})
            else:
                compiled.append(dict(message))  # unresolved: kept, as Langfuse does
            continue
        compiled.append(
            {
                "role": message["role"],
                "content": compile_template(str(message["content"]), variables),
            }
        )
    return compiled


@dataclass(frozen=True)
class ManagedPrompt:
    """One version of a prompt, from Langfuse, the local prompts folder, or a fallback in code.

    Attributes:
        name: Prompt name (may contain ``/`` for folders).
        version: Version number (Langfuse's, or the local store's); 0 for a fallback.
        type: ``text`` or ``chat``.
        prompt: The template: a string, or messages (``{"role", "content"}``, or
            ``{"type": "placeholder", "name"}``).
        config: The prompt's config (model, temperature…).
        labels: Labels of this version (Langfuse's).
        tags: Tags of the prompt.
        source: ``langfuse``, ``local`` or ``fallback``.

    """

    name: str
    version: int
    type: PromptType
    prompt: str | tuple[dict[str, Any], ...]
    config: Mapping[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    source: str = SOURCE_LANGFUSE

    @property
    def is_fallback(self) -> bool:
        """True for the fallback given in code (never linked to generations)."""
        return self.source == SOURCE_FALLBACK

    @property
    def link(self) -> PromptLink | None:
        """What generations made from this prompt carry; None for a fallback."""
        return None if self.is_fallback else PromptLink(self.name, self.version)

    @property
    def variables(self) -> list[str]:
        """The template's variable names."""
        if isinstance(self.prompt, str):
            return template_variables(self.prompt)
        names: list[str] = []
        for message in self.prompt:
            if message.get("type") != "placeholder":
                names.extend(template_variables(str(message.get("content", ""))))
        return names

    def compile(self, **variables: Any) -> Any:
        """The prompt with ``{{ var }}`` replaced, as a :class:`PromptText` (text) or
        :class:`PromptMessages` (chat) that links the generation it is given to; a fallback
        compiles to a plain ``str`` or ``list``. Chat placeholders take a list of messages.
        """
        link = self.link
        if isinstance(self.prompt, str):
            text = compile_template(self.prompt, variables)
            return text if link is None else PromptText(text, link)
        messages = _compile_messages(self.prompt, variables)
        return messages if link is None else PromptMessages(messages, link)

    @contextlib.contextmanager
    def linked(self) -> Iterator[ManagedPrompt]:
        """Link every instrumented call made inside the block to this prompt (a fallback:
        none), whatever its input.
        """
        token = ACTIVE_PROMPT.set(self.link)
        try:
            yield self
        finally:
            ACTIVE_PROMPT.reset(token)

    def as_json(self) -> dict[str, Any]:
        """The prompt as a JSON object (Langfuse's field names)."""
        return {
            "name": self.name,
            "version": self.version,
            "type": self.type,
            "prompt": self.prompt if isinstance(self.prompt, str) else list(self.prompt),
            "config": dict(self.config),
            "labels": list(self.labels),
            "tags": list(self.tags),
            "source": self.source,
        }
