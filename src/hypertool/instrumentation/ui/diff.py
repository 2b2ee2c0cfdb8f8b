"""Two versions of a prompt side by side: which lines stayed, changed, went or came, and within
a changed line which characters — computed by :mod:`difflib` on the server, shown by the
template as escaped text (a prompt holding ``<script>`` is shown, never run).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any, Literal

Kind = Literal["equal", "replace", "delete", "insert"]
INLINE_LIMIT = 2_000
"""Characters a changed line may have for its changed characters to be marked (beyond, the
line is marked as a whole: comparing characters costs the product of the lengths).
"""


@dataclass(frozen=True)
class Side:
    """One side of a row: its line number and its text, in parts marked changed or not."""

    number: int
    parts: tuple[tuple[str, bool], ...]


@dataclass(frozen=True)
class Row:
    """One row of the side-by-side view; a side is None where the other version has no line."""

    kind: Kind
    left: Side | None
    right: Side | None


@dataclass(frozen=True)
class Diff:
    """Two texts compared line by line."""

    rows: list[Row]
    removed: int
    added: int

    @property
    def same(self) -> bool:
        """True when the texts are equal."""
        return all(row.kind == "equal" for row in self.rows)


def prompt_lines(version: Mapping[str, Any]) -> list[str]:
    """The lines of a stored prompt version: a text prompt's lines; a chat prompt's messages,
    each line of a message's content after its role.
    """
    prompt = version["prompt"]
    if isinstance(prompt, str):
        return prompt.splitlines()
    lines = []
    for message in prompt:
        content = message.get("content") if isinstance(message, Mapping) else message
        role = message.get("role", "") if isinstance(message, Mapping) else ""
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        first, *rest = text.splitlines() or [""]
        lines.append(f"{role}: {first}")
        lines.extend(rest)
    return lines


def config_lines(version: Mapping[str, Any]) -> list[str]:
    """A version's config as indented JSON lines (none when it has no config)."""
    config = version.get("config") or {}
    if not config:
        return []
    return json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def _inline(before: str, after: str) -> tuple[tuple[tuple[str, bool], ...], ...]:
    if len(before) > INLINE_LIMIT or len(after) > INLINE_LIMIT:
        return ((before, True),), ((after, True),)
    left: list[tuple[str, bool]] = []
    right: list[tuple[str, bool]] = []
    matcher = SequenceMatcher(None, before, after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        changed = tag != "equal"
        if i2 > i1:
            left.append((before[i1:i2], changed))
        if j2 > j1:
            right.append((after[j1:j2], changed))
    return tuple(left), tuple(right)


def side_by_side(before: Sequence[str], after: Sequence[str]) -> Diff:
    """``before`` and ``after`` (lines) compared: one row per line pair, changed characters
    marked within lines that changed.
    """
    rows: list[Row] = []
    removed = added = 0
    matcher = SequenceMatcher(None, before, after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows.extend(
                Row("equal", Side(i + 1, ((before[i], False),)), Side(j + 1, ((after[j], False),)))
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            )
            continue
        removed += i2 - i1
        added += j2 - j1
        for offset in range(max(i2 - i1, j2 - j1)):
            i, j = i1 + offset, j1 + offset
            if i < i2 and j < j2:
                left, right = _inline(before[i], after[j])
                rows.append(Row("replace", Side(i + 1, left), Side(j + 1, right)))
            elif i < i2:
                rows.append(Row("delete", Side(i + 1, ((before[i], True),)), None))
            else:
                rows.append(Row("insert", None, Side(j + 1, ((after[j], True),))))
    return Diff(rows, removed, added)
