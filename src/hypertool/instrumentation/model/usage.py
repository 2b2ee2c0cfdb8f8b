"""Token usage and completion text, extracted from what an LLM function returned.

Exact when the return value carries the provider's usage (OpenAI chat completions, Anthropic
messages, or the documented plain dict); otherwise estimated from the text and marked so.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_TOKEN_PIECES = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one generation.

    Attributes:
        input: Prompt tokens.
        output: Completion tokens.
        estimated: True when counted from text rather than reported by the provider.
        details: Extra provider counts (cached input, reasoning, …) in Langfuse's key names.

    """

    input: int = 0
    output: int = 0
    estimated: bool = False
    details: tuple[tuple[str, int], ...] = ()

    @property
    def total(self) -> int:
        """Input plus output tokens."""
        return self.input + self.output

    @property
    def is_empty(self) -> bool:
        """True when no token was counted at all (a call that failed before any answer)."""
        return not (self.input or self.output or self.details)

    def as_langfuse(self) -> dict[str, int]:
        """Usage in Langfuse's ``usage_details`` convention: buckets that do not overlap.

        Langfuse sums every key containing ``input`` as input tokens and every key containing
        ``output`` as output (``repositories/traces.ts``, ``getUserMetrics``), so ``input`` and
        ``output`` exclude the cache and reasoning buckets sent beside them; ``total`` is all
        tokens, as the provider counted them. ``Usage.input``/``output`` stay inclusive.
        """
        cached = sum(count for key, count in self.details if key.startswith("input"))
        reasoning = sum(count for key, count in self.details if key.startswith("output"))
        result = {
            "input": max(self.input - cached, 0),
            "output": max(self.output - reasoning, 0),
            "total": self.total,
        }
        result.update(self.details)
        return result


def estimate_tokens(text: str) -> int:
    """Rough token count for text with no provider usage: words and punctuation, long words
    split every 4 characters (close to BPE tokenisers for English and code).
    """
    count = 0
    for piece in _TOKEN_PIECES.findall(text):
        count += max(1, math.ceil(len(piece) / 4)) if len(piece) > 4 else 1
    return count


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    try:
        if type(obj) is dict or isinstance(obj, Mapping):  # the exact-type test is the fast path
            return obj.get(key)
        return getattr(obj, key, None)
    except Exception:  # a property or __getattr__ that raises: the field is absent
        return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # an int past float's range: not a count
        return None
    if math.isnan(number) or math.isinf(number) or number < 0:
        return None
    return int(number)


def usage_from_mapping(usage: Any) -> Usage | None:
    """Read usage in OpenAI (``prompt_tokens``), Anthropic (``input_tokens``) or Langfuse
    (``input``/``output``) form; None when none of them is present.
    """
    if usage is None:
        return None
    prompt = _int(_get(usage, "prompt_tokens"))
    completion = _int(_get(usage, "completion_tokens"))
    details: list[tuple[str, int]] = []
    if prompt is not None or completion is not None:
        cached = _int(_get(_get(usage, "prompt_tokens_details"), "cached_tokens"))
        reasoning = _int(_get(_get(usage, "completion_tokens_details"), "reasoning_tokens"))
        if cached:
            details.append(("input_cached_tokens", cached))
        if reasoning:
            details.append(("output_reasoning_tokens", reasoning))
        if prompt is None and completion is not None:
            total = _int(_get(usage, "total_tokens"))
            prompt = max(0, (total or completion) - completion)
        return Usage(prompt or 0, completion or 0, False, tuple(details))
    inp = _int(_get(usage, "input_tokens"))
    out = _int(_get(usage, "output_tokens"))
    if inp is not None or out is not None:
        # Anthropic counts cache reads and writes outside input_tokens; Usage.input is all
        # input tokens (as OpenAI's prompt_tokens is), the cached parts kept as details.
        inp = inp or 0
        for key, name in (
            ("cache_read_input_tokens", "input_cache_read"),
            ("cache_creation_input_tokens", "input_cache_creation"),
        ):
            value = _int(_get(usage, key))
            if value:
                details.append((name, value))
                inp += value
        return Usage(inp, out or 0, False, tuple(details))
    inp = _int(_get(usage, "input"))
    out = _int(_get(usage, "output"))
    if inp is not None or out is not None:
        return _from_langfuse_form(usage, inp or 0, out or 0)
    return None


def _from_langfuse_form(usage: Any, inp: int, out: int) -> Usage:
    """Langfuse's form: ``input``/``output`` exclude the ``input_*``/``output_*`` buckets beside
    them (cached, reasoning…), which are added back so :class:`Usage` stays inclusive.
    """
    if not isinstance(usage, Mapping):
        return Usage(inp, out, False)
    details: list[tuple[str, int]] = []
    for key, raw in usage.items():
        if not isinstance(key, str) or not key.startswith(("input_", "output_")):
            continue
        value = _int(raw)
        if value:
            details.append((key, value))
            if key.startswith("input_"):
                inp += value
            else:
                out += value
    return Usage(inp, out, False, tuple(details))


def completion_text(result: Any) -> str | None:
    """The text of a provider response or documented dict; None when not recognised."""
    if type(result) is str:
        return result
    choices = _get(result, "choices")
    if (type(choices) is list and choices) or (isinstance(choices, tuple) and choices):
        message = _get(choices[0], "message")
        content = _get(message, "content") if message is not None else _get(choices[0], "text")
        if isinstance(content, str):
            return content
    content = _get(result, "content")
    if isinstance(content, str):
        return content
    if isinstance(content, list | tuple):
        texts = [_get(block, "text") for block in content]
        joined = "".join(text for text in texts if isinstance(text, str))
        if joined or not content:
            return joined
    for key in ("text", "completion", "output"):
        value = _get(result, key) if isinstance(result, Mapping) else None
        if isinstance(value, str):
            return value
    return None


def text_of(value: Any) -> str:
    """A value as text for the trace: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value if value.__class__ is str else str(value)  # a compiled prompt: plain
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    try:
        return json.dumps(value, default=_str_or_type, ensure_ascii=False)
    except Exception:  # circular, nested too deep, or a __str__ that raises
        try:
            return repr(value)
        except Exception:
            return f"<unrepresentable {type(value).__name__}>"


def _str_or_type(value: Any) -> str:
    """``str(value)`` for JSON's ``default``; the type's name when that raises."""
    try:
        return str(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def snapshot(result: Any) -> tuple[str, Any]:
    """Text and raw provider usage of a return value, taken before the caller can change it.

    Cheap: a few lookups and a shallow copy of a usage dict. Parsing the usage and estimating
    tokens when the provider gave none are left for later (:func:`complete_usage`).
    """
    if type(result) is str:
        return result, None
    text = completion_text(result)
    if text is None:
        text = "" if result is None else text_of(result)
    usage = _get(result, "usage")
    return text, dict(usage) if type(usage) is dict else usage


def freeze(value: Any) -> Any:
    """A shallow copy of a prompt container, so appending to a message list after the call
    does not change what is recorded.
    """
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def complete_usage(raw_usage: Any, prompt_text: str, completion: str) -> Usage:
    """The provider's usage (any form :func:`usage_from_mapping` reads), or an estimate from
    the texts marked as such.
    """
    usage = raw_usage if isinstance(raw_usage, Usage) else usage_from_mapping(raw_usage)
    if usage is not None:
        return usage
    return Usage(estimate_tokens(prompt_text), estimate_tokens(completion), True)


def extract(result: Any, prompt_text: str) -> tuple[str, Usage]:
    """Completion text and usage of one LLM call's return value."""
    text, usage = snapshot(result)
    return text, complete_usage(usage, prompt_text, text)


def usage_from_argument(usage: Mapping[str, Any] | Usage | None) -> Usage | None:
    """Usage given explicitly to ``create_generation`` (OpenAI or Langfuse form)."""
    if usage is None or isinstance(usage, Usage):
        return usage
    return usage_from_mapping(usage)
