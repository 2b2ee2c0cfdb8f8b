"""Two versions of a prompt side by side: rows, marked characters, chat prompts, configs."""

from __future__ import annotations

from hypertool.instrumentation.ui.diff import (
    INLINE_LIMIT,
    config_lines,
    prompt_lines,
    side_by_side,
)


def texts(side: object) -> str:
    return "".join(text for text, _ in side.parts)  # type: ignore[attr-defined]


def test_rows_pair_lines_and_mark_what_changed() -> None:
    diff = side_by_side(["a", "keep it short", "c"], ["a", "keep it short and kind", "d", "e"])
    assert [row.kind for row in diff.rows] == ["equal", "replace", "replace", "insert"]
    assert (diff.removed, diff.added, diff.same) == (2, 3, False)
    changed = diff.rows[1]
    assert changed.right is not None and changed.left is not None
    assert [part for part in changed.right.parts if part[1]] == [(" and kind", True)]
    assert (
        texts(changed.left) == "keep it short" and texts(changed.right) == "keep it short and kind"
    )
    inserted = diff.rows[3]
    assert inserted.left is None and inserted.right is not None and inserted.right.number == 4
    gone = side_by_side(["x", "y"], ["x"])
    assert [row.kind for row in gone.rows] == ["equal", "delete"] and gone.rows[1].right is None


def test_equal_texts_and_long_lines() -> None:
    assert side_by_side(["same"], ["same"]).same
    long_a, long_b = "a" * (INLINE_LIMIT + 1), "b" * (INLINE_LIMIT + 1)
    row = side_by_side([long_a], [long_b]).rows[0]
    assert row.left is not None and row.left.parts == ((long_a, True),)  # marked whole


def test_chat_prompts_show_each_message_after_its_role_and_configs_as_json() -> None:
    version = {
        "prompt": [
            {"role": "system", "content": "You answer.\nBriefly."},
            {"role": "user", "content": "{{q}}"},
        ],
        "config": {"temperature": 0.2, "model": "gpt-4o"},
    }
    assert prompt_lines(version) == ["system: You answer.", "Briefly.", "user: {{q}}"]
    assert prompt_lines({"prompt": "one\ntwo"}) == ["one", "two"]
    assert config_lines(version) == ["{", '  "model": "gpt-4o",', '  "temperature": 0.2', "}"]
    assert config_lines({"prompt": "x", "config": {}}) == []
