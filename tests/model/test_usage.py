"""Usage and completion text from provider responses and plain values."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest

from hypertool.instrumentation import Usage
from hypertool.instrumentation.model.usage import (
    completion_text,
    estimate_tokens,
    extract,
    usage_from_argument,
    usage_from_mapping,
)

# -- usage_from_mapping: the three forms -----------------------------------------------------


def test_openai_dict_form() -> None:
    usage = usage_from_mapping({"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42})
    assert usage == Usage(12, 30, False, ())
    assert usage is not None and usage.total == 42


def test_openai_dict_form_with_details() -> None:
    usage = usage_from_mapping(
        {
            "prompt_tokens": 100,
            "completion_tokens": 50,
            "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 64},
            "completion_tokens_details": {"reasoning_tokens": 20},
        }
    )
    assert usage is not None
    assert (usage.input, usage.output, usage.estimated) == (100, 50, False)
    assert dict(usage.details) == {"input_cached_tokens": 64, "output_reasoning_tokens": 20}


def test_openai_zero_details_are_left_out() -> None:
    usage = usage_from_mapping(
        {
            "prompt_tokens": 5,
            "completion_tokens": 6,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": None,
        }
    )
    assert usage == Usage(5, 6)


def test_openai_completion_only_derives_prompt_from_total() -> None:
    usage = usage_from_mapping({"completion_tokens": 7, "total_tokens": 19})
    assert usage == Usage(12, 7)


def test_anthropic_form() -> None:
    usage = usage_from_mapping(
        {
            "input_tokens": 25,
            "output_tokens": 9,
            "cache_read_input_tokens": 11,
            "cache_creation_input_tokens": 3,
        }
    )
    assert usage is not None
    # Anthropic's input_tokens leave the cache reads and writes out; Usage.input has them all.
    assert (usage.input, usage.output, usage.estimated) == (25 + 11 + 3, 9, False)
    assert dict(usage.details) == {"input_cache_read": 11, "input_cache_creation": 3}


def test_langfuse_form() -> None:
    assert usage_from_mapping({"input": 8, "output": 2}) == Usage(8, 2)
    assert usage_from_mapping({"input": 8}) == Usage(8, 0)


def test_openai_like_object() -> None:
    usage_obj = SimpleNamespace(
        prompt_tokens=31,
        completion_tokens=4,
        total_tokens=35,
        prompt_tokens_details=SimpleNamespace(cached_tokens=16),
        completion_tokens_details=SimpleNamespace(reasoning_tokens=2),
    )
    usage = usage_from_mapping(usage_obj)
    assert usage is not None
    assert (usage.input, usage.output) == (31, 4)
    assert dict(usage.details) == {"input_cached_tokens": 16, "output_reasoning_tokens": 2}


def test_anthropic_like_object() -> None:
    usage = usage_from_mapping(
        SimpleNamespace(input_tokens=3, output_tokens=4, cache_read_input_tokens=None)
    )
    assert usage == Usage(3, 4)


@pytest.mark.parametrize("value", [None, {}, {"unrelated": 1}, "text", 42, SimpleNamespace()])
def test_unrecognised_usage_is_none(value: Any) -> None:
    assert usage_from_mapping(value) is None


# -- bad numbers are ignored -------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, -0.5, math.nan, math.inf, "many", True, None, [1]])
def test_bad_counts_are_ignored(bad: Any) -> None:
    usage = usage_from_mapping({"prompt_tokens": bad, "completion_tokens": 9})
    assert usage is not None
    assert usage.input == 0
    assert usage.output == 9


def test_all_counts_bad_is_no_usage() -> None:
    assert usage_from_mapping({"prompt_tokens": -3, "completion_tokens": math.nan}) is None
    assert usage_from_mapping({"input_tokens": -1, "output_tokens": -2}) is None
    assert usage_from_mapping({"input": math.nan, "output": -1}) is None


def test_bad_detail_counts_are_ignored() -> None:
    usage = usage_from_mapping(
        {
            "prompt_tokens": 4,
            "completion_tokens": 4,
            "prompt_tokens_details": {"cached_tokens": -2},
            "completion_tokens_details": {"reasoning_tokens": math.nan},
        }
    )
    assert usage == Usage(4, 4)


def test_numeric_strings_and_floats_are_counted() -> None:
    assert usage_from_mapping({"prompt_tokens": "10", "completion_tokens": 2.0}) == Usage(10, 2)


# -- extract ----------------------------------------------------------------------------


def openai_response(content: str, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def test_extract_openai_dict_is_exact() -> None:
    text, usage = extract(openai_response("Hello there", 17, 3), "ignored prompt")
    assert text == "Hello there"
    assert usage == Usage(17, 3, False)


def test_extract_openai_object_is_exact() -> None:
    response = SimpleNamespace(
        choices=[SimpleNamespace(message=SimpleNamespace(role="assistant", content="obj text"))],
        usage=SimpleNamespace(prompt_tokens=21, completion_tokens=5, total_tokens=26),
    )
    text, usage = extract(response, "prompt")
    assert text == "obj text"
    assert (usage.input, usage.output, usage.estimated) == (21, 5, False)


def test_extract_anthropic_object_is_exact() -> None:
    response = SimpleNamespace(
        content=[
            SimpleNamespace(type="text", text="Part one. "),
            SimpleNamespace(type="tool_use", name="search"),
            SimpleNamespace(type="text", text="Part two."),
        ],
        usage=SimpleNamespace(input_tokens=40, output_tokens=12, cache_read_input_tokens=8),
    )
    text, usage = extract(response, "prompt")
    assert text == "Part one. Part two."
    assert (usage.input, usage.output, usage.estimated) == (40 + 8, 12, False)
    assert dict(usage.details) == {"input_cache_read": 8}


def test_extract_plain_dict_with_usage() -> None:
    text, usage = extract({"text": "plain", "usage": {"input": 3, "output": 1}}, "prompt")
    assert text == "plain"
    assert usage == Usage(3, 1, False)


def test_extract_plain_string_is_estimated() -> None:
    prompt = "Summarise the release notes for version 1.2.0"
    answer = "The release adds persona-aware tracing."
    text, usage = extract(answer, prompt)
    assert text == answer
    assert usage.estimated is True
    assert usage.input == estimate_tokens(prompt) > 0
    assert usage.output == estimate_tokens(answer) > 0


def test_extract_string_estimate_grows_with_text() -> None:
    _, short = extract("ok", "p")
    _, long = extract("ok " * 50, "p")
    assert long.output > short.output


def test_extract_none_is_estimated_empty_completion() -> None:
    text, usage = extract(None, "a prompt")
    assert text == ""
    assert usage.estimated is True
    assert usage.output == 0


def test_extract_unknown_object_is_text_of_it() -> None:
    text, usage = extract({"answer": 42}, "p")
    assert text == '{"answer": 42}'
    assert usage.estimated is True


# -- completion_text ---------------------------------------------------------------------


def test_completion_text_openai_choices() -> None:
    assert completion_text(openai_response("from choices", 1, 1)) == "from choices"


def test_completion_text_legacy_completion_choice() -> None:
    assert completion_text({"choices": [{"text": "legacy"}]}) == "legacy"


def test_completion_text_anthropic_blocks_as_dicts() -> None:
    response = {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    assert completion_text(response) == "ab"


def test_completion_text_content_string() -> None:
    assert completion_text({"content": "direct"}) == "direct"


@pytest.mark.parametrize("key", ["text", "completion", "output"])
def test_completion_text_plain_dict(key: str) -> None:
    assert completion_text({key: "value of " + key}) == "value of " + key


def test_completion_text_string() -> None:
    assert completion_text("just text") == "just text"


@pytest.mark.parametrize("value", [None, 42, {"unrelated": "x"}, SimpleNamespace(foo="bar")])
def test_completion_text_unrecognised(value: Any) -> None:
    assert completion_text(value) is None


# -- Usage ------------------------------------------------------------------------------


def test_usage_as_langfuse_buckets_do_not_overlap() -> None:
    """Langfuse sums every input* key as input and every output* key as output: its `input`
    and `output` are what is left beside the cached and reasoning buckets; `total` stays.
    """
    usage = Usage(10, 4, False, (("input_cached_tokens", 6),))
    assert usage.as_langfuse() == {"input": 4, "output": 4, "total": 14, "input_cached_tokens": 6}
    # The example: 1,000 prompt tokens (800 cached), 500 completion (300 reasoning).
    openai = usage_from_mapping(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 500,
            "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 800},
            "completion_tokens_details": {"reasoning_tokens": 300},
        }
    )
    assert openai is not None
    langfuse = openai.as_langfuse()
    assert langfuse == {
        "input": 200,
        "output": 200,
        "total": 1500,
        "input_cached_tokens": 800,
        "output_reasoning_tokens": 300,
    }
    counted_in = sum(v for k, v in langfuse.items() if "input" in k)
    counted_out = sum(v for k, v in langfuse.items() if "output" in k)
    assert (counted_in, counted_out) == (openai.input, openai.output) == (1000, 500)
    assert counted_in + counted_out == langfuse["total"]
    # Anthropic: input_tokens already excludes cache reads and writes.
    anthropic = usage_from_mapping(
        {
            "input_tokens": 50,
            "output_tokens": 20,
            "cache_read_input_tokens": 900,
            "cache_creation_input_tokens": 100,
        }
    )
    assert anthropic is not None and anthropic.input == 1050
    assert anthropic.as_langfuse() == {
        "input": 50,
        "output": 20,
        "total": 1070,
        "input_cache_read": 900,
        "input_cache_creation": 100,
    }


def test_usage_in_langfuse_form_reads_back_inclusive() -> None:
    sent = {"input": 200, "output": 200, "total": 1500, "input_cached_tokens": 800}
    sent["output_reasoning_tokens"] = 300
    usage = usage_from_mapping(sent)
    assert usage is not None
    assert (usage.input, usage.output, usage.total) == (1000, 500, 1500)
    assert usage.as_langfuse() == sent


def test_usage_defaults() -> None:
    usage = Usage()
    assert usage.total == 0
    assert usage.as_langfuse() == {"input": 0, "output": 0, "total": 0}
    assert usage.estimated is False


def test_usage_from_argument() -> None:
    exact = Usage(1, 2)
    assert usage_from_argument(exact) is exact
    assert usage_from_argument(None) is None
    assert usage_from_argument({"prompt_tokens": 3, "completion_tokens": 4}) == Usage(3, 4)
    assert usage_from_argument({"input": 5, "output": 6}) == Usage(5, 6)


def test_estimate_tokens_counts_words_and_punctuation() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a b c") == 3
    assert estimate_tokens("hi!") == 2
    # long words count one token per 4 characters
    assert estimate_tokens("abcdefghijkl") == 3
