"""Model prices and the cost of a generation from its usage.

Prices are USD per million tokens, each entry with the date it was read and its source. A
model without a price has an unknown cost — never a silent 0. ``HYPERTOOL_PRICES`` names a JSON
file that adds or overrides entries::

    {"my-model": {"input": 1.0, "output": 2.0, "cached_input": 0.5,
                  "date": "2026-01-01", "source": "contract"}}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypertool.instrumentation._config import HYPERTOOL_PRICES, ConfigError
from hypertool.instrumentation.model.usage import Usage

_MTOK = 1_000_000

_OPENAI = "https://openai.com/api/pricing/"
_ANTHROPIC = "https://www.anthropic.com/pricing#api"
_GOOGLE = "https://ai.google.dev/gemini-api/docs/pricing"
_MISTRAL = "https://mistral.ai/pricing#api-pricing"


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens for one model.

    Attributes:
        input: Price of input (prompt) tokens.
        output: Price of output (completion) tokens.
        cached_input: Price of cached input tokens read, where the provider has one.
        date: When the price was read (ISO date).
        source: Where it was read.
    """

    input: float
    output: float
    cached_input: float | None = None
    date: str = ""
    source: str = ""


@dataclass(frozen=True)
class Cost:
    """Cost of one generation in USD.

    Attributes:
        input: Cost of every input token (cached reads and cache writes included).
        output: Cost of every output token (reasoning included).
        details: The parts of ``input``/``output`` priced apart, by the usage key they price
            (``input_cached_tokens``, ``input_cache_read``, ``input_cache_creation``,
            ``output_reasoning_tokens``).
    """

    input: float
    output: float
    details: tuple[tuple[str, float], ...] = ()

    @property
    def total(self) -> float:
        """Input plus output cost."""
        return self.input + self.output

    def as_langfuse(self) -> dict[str, float]:
        """Cost in Langfuse's ``cost_details`` form: the same buckets as
        :meth:`Usage.as_langfuse`, so each usage key has its price and ``total`` is the sum.
        """
        cached = sum(cost for key, cost in self.details if key.startswith("input"))
        reasoning = sum(cost for key, cost in self.details if key.startswith("output"))
        result = {
            "input": max(self.input - cached, 0.0),
            "output": max(self.output - reasoning, 0.0),
        }
        result.update(self.details)
        result["total"] = self.total
        return result


def _p(inp: float, out: float, cached: float | None, source: str, date: str) -> ModelPrice:
    return ModelPrice(inp, out, cached, date, source)


# Public list prices (standard tier, shortest context band) on the date given.
BUILTIN_PRICES: dict[str, ModelPrice] = {
    "gpt-4": _p(30.0, 60.0, None, _OPENAI, "2025-06-01"),
    "gpt-4-turbo": _p(10.0, 30.0, None, _OPENAI, "2025-06-01"),
    "gpt-4o": _p(2.50, 10.0, 1.25, _OPENAI, "2025-06-01"),
    "gpt-4o-mini": _p(0.15, 0.60, 0.075, _OPENAI, "2025-06-01"),
    "gpt-4.1": _p(2.00, 8.00, 0.50, _OPENAI, "2025-06-01"),
    "gpt-4.1-mini": _p(0.40, 1.60, 0.10, _OPENAI, "2025-06-01"),
    "gpt-4.1-nano": _p(0.10, 0.40, 0.025, _OPENAI, "2025-06-01"),
    "gpt-3.5-turbo": _p(0.50, 1.50, None, _OPENAI, "2025-06-01"),
    "o1": _p(15.0, 60.0, 7.50, _OPENAI, "2025-06-01"),
    "o3": _p(2.00, 8.00, 0.50, _OPENAI, "2025-06-15"),
    "o3-mini": _p(1.10, 4.40, 0.55, _OPENAI, "2025-06-01"),
    "o4-mini": _p(1.10, 4.40, 0.275, _OPENAI, "2025-06-01"),
    "claude-opus-4": _p(15.0, 75.0, 1.50, _ANTHROPIC, "2025-06-01"),
    "claude-sonnet-4": _p(3.0, 15.0, 0.30, _ANTHROPIC, "2025-06-01"),
    "claude-3-7-sonnet": _p(3.0, 15.0, 0.30, _ANTHROPIC, "2025-06-01"),
    "claude-3-5-sonnet": _p(3.0, 15.0, 0.30, _ANTHROPIC, "2025-06-01"),
    "claude-3-5-haiku": _p(0.80, 4.0, 0.08, _ANTHROPIC, "2025-06-01"),
    "claude-3-opus": _p(15.0, 75.0, 1.50, _ANTHROPIC, "2025-06-01"),
    "claude-3-haiku": _p(0.25, 1.25, 0.03, _ANTHROPIC, "2025-06-01"),
    "gemini-2.5-pro": _p(1.25, 10.0, 0.31, _GOOGLE, "2025-06-20"),
    "gemini-2.5-flash": _p(0.30, 2.50, 0.075, _GOOGLE, "2025-06-20"),
    "gemini-2.0-flash": _p(0.10, 0.40, 0.025, _GOOGLE, "2025-06-01"),
    "gemini-1.5-pro": _p(1.25, 5.0, None, _GOOGLE, "2025-06-01"),
    "gemini-1.5-flash": _p(0.075, 0.30, None, _GOOGLE, "2025-06-01"),
    "mistral-large": _p(2.0, 6.0, None, _MISTRAL, "2025-06-01"),
    "mistral-medium": _p(0.40, 2.0, None, _MISTRAL, "2025-06-01"),
    "mistral-small": _p(0.10, 0.30, None, _MISTRAL, "2025-06-01"),
    "codestral": _p(0.30, 0.90, None, _MISTRAL, "2025-06-01"),
}

_CACHED_INPUT_KEYS = ("input_cached_tokens", "input_cache_read")
# Anthropic charges cache writes (5-minute cache) at 1.25x the input price.
_CACHE_WRITE_FACTOR = 1.25


class PriceTable:
    """Prices by model name; dated or provider-prefixed names find their base model.

    ``gpt-4o-2024-08-06`` and ``openai/gpt-4o`` cost what ``gpt-4o`` costs; the longest known
    prefix wins, so ``gpt-4o-mini`` is never priced as ``gpt-4o``.
    """

    def __init__(self, prices: Mapping[str, ModelPrice] | None = None) -> None:
        self._prices = dict(BUILTIN_PRICES if prices is None else prices)
        self._by_length = sorted(self._prices, key=len, reverse=True)
        self._cache: dict[str, ModelPrice | None] = {}

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.price(model) is not None

    @property
    def models(self) -> list[str]:
        """Known model names."""
        return sorted(self._prices)

    def price(self, model: str) -> ModelPrice | None:
        """The price of ``model``, or None when unknown."""
        if model in self._cache:
            return self._cache[model]
        name = model.strip().lower().rsplit("/", 1)[-1]
        found = self._prices.get(name)
        if found is None:
            for known in self._by_length:
                if name.startswith(known) and name[len(known) : len(known) + 1] in ("-", "@", ""):
                    found = self._prices[known]
                    break
        if len(self._cache) < 10_000:
            self._cache[model] = found
        return found

    def cost(self, model: str, usage: Usage) -> Cost | None:
        """The cost of ``usage`` on ``model``; None when the model has no known price."""
        price = self.price(model)
        if price is None:
            return None
        # Usage.input holds every input token; cached reads and cache writes are parts of it.
        details = dict(usage.details)
        cached_key = next((k for k in _CACHED_INPUT_KEYS if k in details), None)
        cached = min(details[cached_key], usage.input) if cached_key else 0
        written = min(details.get("input_cache_creation", 0), usage.input - cached)
        reasoning = min(details.get("output_reasoning_tokens", 0), usage.output)
        cached_rate = price.cached_input if price.cached_input is not None else price.input
        cached_cost = cached * cached_rate / _MTOK
        written_cost = written * price.input * _CACHE_WRITE_FACTOR / _MTOK
        input_cost = (usage.input - cached - written) * price.input / _MTOK
        parts: list[tuple[str, float]] = []
        if cached_key and cached:
            parts.append((cached_key, cached_cost))
        if written:
            parts.append(("input_cache_creation", written_cost))
        if reasoning:
            parts.append(("output_reasoning_tokens", reasoning * price.output / _MTOK))
        return Cost(
            input_cost + cached_cost + written_cost,
            usage.output * price.output / _MTOK,
            tuple(parts),
        )

    def with_overrides(self, overrides: Mapping[str, ModelPrice]) -> PriceTable:
        """A table with ``overrides`` added or replacing entries."""
        return PriceTable({**self._prices, **{k.lower(): v for k, v in overrides.items()}})


def _number(path: Path, model: str, field: str, raw: Any, *, required: bool) -> float | None:
    if raw is None and not required:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or math.isnan(raw) or raw < 0:
        raise ConfigError(
            f"{path}: model {model!r} field {field!r} must be a non-negative number, got {raw!r}"
        )
    return float(raw)


def load_prices(path: str | Path) -> dict[str, ModelPrice]:
    """Read a price file (see the module docstring).

    Raises:
        ConfigError: the file is unreadable or an entry is invalid; the message names the file,
            the model and the field.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{HYPERTOOL_PRICES}: cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}): {exc.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a price file must hold a JSON object of models")
    prices = {}
    for model, entry in data.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: model {model!r} must be an object with input and output")
        inp = _number(path, model, "input", entry.get("input"), required=True)
        out = _number(path, model, "output", entry.get("output"), required=True)
        cached = _number(path, model, "cached_input", entry.get("cached_input"), required=False)
        assert inp is not None and out is not None
        prices[model.lower()] = ModelPrice(
            inp, out, cached, str(entry.get("date", "")), str(entry.get("source", str(path)))
        )
    return prices
