"""The local prompts folder: prompts as files, in ``HYPERTOOL_PROMPTS_DIR`` and shipped with the
package (``prompts/builtin``; the folder's own file of the same name wins).

A prompt named ``release/version-bump`` is the file ``release/version-bump.json`` (or
``.txt``) under the folder. A ``.txt`` file is a text prompt, its whole content the template.
A ``.json`` file is an object::

    {"type": "text", "prompt": "Update version to {{version}}", "config": {"model": "gpt-4"}}
    {"type": "chat", "prompt": [{"role": "system", "content": "You are {{persona}}"},
                                {"type": "placeholder", "name": "history"}]}

``type`` defaults to ``text`` for a string and ``chat`` for a list; ``config`` (an object)
and ``tags`` (strings) are optional; ``name``, when given, must be the file's name. Anything
else is a :class:`PromptError` naming the file and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from hypertool.instrumentation.model.prompts import PROMPT_TYPES, PromptError, PromptType

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
SUFFIXES = (".json", ".txt")
_KEYS = frozenset({"name", "type", "prompt", "config", "tags"})
MAX_FILE_BYTES = 1_000_000


def check_name(name: Any) -> str:
    """``name`` if it can be a prompt's name (and a path under the folder).

    Raises:
        PromptError: empty, not a string, absolute, or climbing out of the folder.

    """
    if not isinstance(name, str) or not name.strip():
        raise PromptError(f"a prompt needs a non-empty name, not {name!r}")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or "\\" in name or any(part in ("..", ".") for part in parts):
        raise PromptError(f"prompt name {name!r} cannot be a path out of the prompts folder")
    return name


@dataclass(frozen=True)
class LocalPrompt:
    """A prompt read from a file.

    Attributes:
        name: Its name (the file's path under the folder, without the suffix).
        type: ``text`` or ``chat``.
        prompt: The template text, or the messages.
        config: Its config.
        tags: Its tags.
        path: The file.

    """

    name: str
    type: PromptType
    prompt: str | tuple[dict[str, Any], ...]
    config: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    path: Path | None = None

    def content(self) -> tuple[str, str]:
        """The template (text, or messages as JSON) and the config as JSON: what a version is
        made of.
        """
        prompt = (
            self.prompt
            if isinstance(self.prompt, str)
            else json.dumps(list(self.prompt), sort_keys=True, ensure_ascii=False)
        )
        return prompt, json.dumps(self.config, sort_keys=True, ensure_ascii=False)


def _messages(value: list[Any], where: str) -> tuple[dict[str, Any], ...]:
    messages = []
    for index, message in enumerate(value):
        at = f"{where}: prompt[{index}]"
        if not isinstance(message, dict):
            raise PromptError(f"{at} must be an object with role and content")
        if message.get("type") == "placeholder":
            if not isinstance(message.get("name"), str) or not message["name"]:
                raise PromptError(f"{at}: a placeholder needs a name")
            messages.append({"type": "placeholder", "name": message["name"]})
            continue
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not role or not isinstance(content, str):
            raise PromptError(f"{at} needs a role and a content, both strings")
        messages.append({"role": role, "content": content})
    return tuple(messages)


def parse(data: Any, name: str, where: str) -> LocalPrompt:
    """A prompt from the JSON object of a file (``where`` names the file in errors).

    Raises:
        PromptError: the object is malformed; the message names the file and the field.

    """
    if not isinstance(data, dict):
        raise PromptError(f"{where}: a prompt file holds a JSON object, not {type(data).__name__}")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise PromptError(f"{where}: unknown field(s) {', '.join(unknown)}")
    if "name" in data and data["name"] != name:
        raise PromptError(f"{where}: name {data['name']!r} is not the file's name {name!r}")
    template = data.get("prompt")
    kind = data.get("type", "chat" if isinstance(template, list) else "text")
    if kind not in PROMPT_TYPES:
        raise PromptError(f"{where}: type {kind!r} must be text or chat")
    if kind == "text" and not isinstance(template, str):
        raise PromptError(f"{where}: prompt of a text prompt must be a string")
    if kind == "chat" and not isinstance(template, list):
        raise PromptError(f"{where}: prompt of a chat prompt must be a list of messages")
    config = data.get("config", {})
    if not isinstance(config, dict):
        raise PromptError(f"{where}: config must be an object")
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise PromptError(f"{where}: tags must be a list of strings")
    prompt = template if isinstance(template, str) else _messages(list(template or ()), where)
    return LocalPrompt(name, kind, prompt, config, tuple(tags))


def load(path: Path, name: str) -> LocalPrompt:
    """The prompt in ``path``.

    Raises:
        PromptError: unreadable, too large, not UTF-8, not JSON, or malformed (naming the file).

    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PromptError(f"{path}: cannot read the prompt file: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise PromptError(f"{path}: a prompt file is at most {MAX_FILE_BYTES:,} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PromptError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if path.suffix == ".txt":
        return LocalPrompt(name, "text", text, path=path)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PromptError(f"{path}: not valid JSON ({exc})") from None
    prompt = parse(data, name, str(path))
    return LocalPrompt(prompt.name, prompt.type, prompt.prompt, prompt.config, prompt.tags, path)


def find(directories: Sequence[Path], name: str) -> LocalPrompt | None:
    """The prompt ``name`` from the first folder that has it, or None.

    Raises:
        PromptError: its file is malformed, or the name cannot be a prompt's.

    """
    *folders, last = PurePosixPath(check_name(name)).parts
    for directory in directories:
        for suffix in SUFFIXES:
            path = directory.joinpath(*folders, last + suffix)
            if path.is_file():
                return load(path, name)
    return None


def scan(directories: Iterable[Path]) -> tuple[list[LocalPrompt], list[str]]:
    """Every prompt in the folders (an earlier folder's file wins), and the problems of the
    files that could not be read (one line each, naming the file).
    """
    found: dict[str, LocalPrompt] = {}
    problems: list[str] = []
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in sorted(directory.rglob("*")):
            if path.suffix not in SUFFIXES or not path.is_file():
                continue
            name = path.relative_to(directory).with_suffix("").as_posix()
            if name in found:
                continue
            try:
                found[name] = load(path, name)
            except PromptError as exc:
                problems.append(str(exc))
    return [found[name] for name in sorted(found)], problems
