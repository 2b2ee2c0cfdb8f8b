"""The price table, cost arithmetic, price files and HYPERTOOL_PRICES end to end."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hypertool.instrumentation import (
    ConfigError,
    LangfuseIntegration,
    ModelPrice,
    ObservableLLM,
    PriceTable,
    Usage,
)
from hypertool.instrumentation import semconv as attr
from hypertool.instrumentation.model.usage import usage_from_mapping
from hypertool.instrumentation.pricing import BUILTIN_PRICES, load_prices

MTOK = 1_000_000
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def price_of(model: str) -> ModelPrice:
    price = PriceTable().price(model)
    assert price is not None, model
    return price


# -- lookups ---------------------------------------------------------------------------------
def test_exact_lookup_returns_the_builtin_entry() -> None:
    table = PriceTable()
    for model, price in BUILTIN_PRICES.items():
        assert table.price(model) == price
        assert model in table


def test_dated_suffix_finds_the_base_model() -> None:
    assert price_of("gpt-4o-2024-08-06") == BUILTIN_PRICES["gpt-4o"]
    assert price_of("claude-3-5-haiku-20241022") == BUILTIN_PRICES["claude-3-5-haiku"]


def test_provider_prefix_finds_the_longest_model_name() -> None:
    assert BUILTIN_PRICES["gpt-4o-mini"] != BUILTIN_PRICES["gpt-4o"]
    assert price_of("openai/gpt-4o-mini") == BUILTIN_PRICES["gpt-4o-mini"]
    assert price_of("gpt-4o-mini-2024-07-18") == BUILTIN_PRICES["gpt-4o-mini"]
    assert price_of("openai/gpt-4o") == BUILTIN_PRICES["gpt-4o"]


def test_lookup_ignores_case_and_spaces() -> None:
    assert price_of("  GPT-4o  ") == BUILTIN_PRICES["gpt-4o"]


def test_unknown_models_have_no_price() -> None:
    table = PriceTable()
    for model in ("acme-large", "gpt-4oxyz", "", "mistral"):
        assert table.price(model) is None, model
        assert model not in table
        assert table.cost(model, Usage(100, 100)) is None


# -- arithmetic ------------------------------------------------------------------------------
def test_cost_of_input_and_output() -> None:
    price = price_of("gpt-4.1")
    cost = PriceTable().cost("gpt-4.1", Usage(input=1_234, output=567))
    assert cost is not None
    assert cost.input == pytest.approx(1_234 * price.input / MTOK)
    assert cost.output == pytest.approx(567 * price.output / MTOK)
    assert cost.total == pytest.approx(cost.input + cost.output)
    assert cost.as_langfuse() == {"input": cost.input, "output": cost.output, "total": cost.total}


def test_zero_usage_of_a_known_model_costs_zero_not_unknown() -> None:
    cost = PriceTable().cost("gpt-4o", Usage(0, 0))
    assert cost is not None
    assert cost.total == 0


def test_cached_input_is_charged_at_the_cached_price() -> None:
    price = price_of("gpt-4o")
    assert price.cached_input is not None and price.cached_input < price.input
    usage = Usage(input=1_000, output=200, details=(("input_cached_tokens", 400),))
    cost = PriceTable().cost("gpt-4o", usage)
    assert cost is not None
    expected_input = (600 * price.input + 400 * price.cached_input) / MTOK
    assert cost.input == pytest.approx(expected_input)
    assert cost.output == pytest.approx(200 * price.output / MTOK)
    uncached = PriceTable().cost("gpt-4o", Usage(input=1_000, output=200))
    assert uncached is not None and cost.total < uncached.total


def test_cached_input_without_a_cached_price_is_charged_as_input() -> None:
    price = price_of("gpt-4")
    assert price.cached_input is None
    usage = Usage(input=1_000, output=0, details=(("input_cached_tokens", 400),))
    cost = PriceTable().cost("gpt-4", usage)
    assert cost is not None
    assert cost.input == pytest.approx(1_000 * price.input / MTOK)


def test_openai_response_with_cached_tokens() -> None:
    """OpenAI's prompt_tokens include the cached ones (prompt_tokens_details.cached_tokens)."""
    price = price_of("gpt-4o-mini")
    assert price.cached_input is not None
    usage = usage_from_mapping(
        {
            "prompt_tokens": 2_000,
            "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 1_500},
        }
    )
    assert usage is not None
    cost = PriceTable().cost("gpt-4o-mini", usage)
    assert cost is not None
    expected = (500 * price.input + 1_500 * price.cached_input + 300 * price.output) / MTOK
    assert cost.total == pytest.approx(expected)


def test_anthropic_cache_read_is_priced_on_top_of_input_tokens() -> None:
    """Anthropic's ``input_tokens`` do NOT include cache reads: the total input is
    input_tokens + cache_read_input_tokens + cache_creation_input_tokens (OpenAI's
    prompt_tokens, by contrast, include the cached ones). A response with 50 uncached input
    tokens and 2,000 tokens read from the cache costs 50 at the input price plus 2,000 at the
    cached price.
    """
    price = price_of("claude-sonnet-4")
    assert price.cached_input is not None
    usage = usage_from_mapping(
        {"input_tokens": 50, "cache_read_input_tokens": 2_000, "output_tokens": 100}
    )
    # Usage.input counts every input token; the cache read is a detail within it.
    assert usage == Usage(input=2_050, output=100, details=(("input_cache_read", 2_000),))
    cost = PriceTable().cost("claude-sonnet-4-20250514", usage)
    assert cost is not None
    expected_input = (50 * price.input + 2_000 * price.cached_input) / MTOK
    assert cost.input == pytest.approx(expected_input)
    assert cost.output == pytest.approx(100 * price.output / MTOK)


# -- the table's provenance ------------------------------------------------------------------
def test_every_builtin_entry_has_a_date_and_a_source() -> None:
    assert len(BUILTIN_PRICES) >= 10
    for model, price in BUILTIN_PRICES.items():
        assert ISO_DATE.match(price.date), model
        assert price.source.startswith("https://"), model
        assert price.input >= 0 and price.output >= 0, model
        assert price.cached_input is None or price.cached_input <= price.input, model


def test_builtin_table_covers_the_four_providers() -> None:
    table = PriceTable()
    for model in ("gpt-4o", "claude-sonnet-4", "gemini-2.5-pro", "mistral-large"):
        assert model in table


# -- price files -----------------------------------------------------------------------------
def write(tmp_path: Path, content: Any, name: str = "prices.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), "utf-8")
    return path


def test_valid_file_overrides_and_adds(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "gpt-4o": {"input": 1.0, "output": 4.0, "date": "2026-01-01", "source": "contract"},
            "Acme-Large": {"input": 7.0, "output": 9.0, "cached_input": 0.7},
        },
    )
    loaded = load_prices(path)
    assert loaded["gpt-4o"] == ModelPrice(1.0, 4.0, None, "2026-01-01", "contract")
    assert loaded["acme-large"] == ModelPrice(7.0, 9.0, 0.7, "", str(path))

    table = PriceTable().with_overrides(loaded)
    assert table.price("gpt-4o") == loaded["gpt-4o"]
    assert table.price("gpt-4o-2024-08-06") == loaded["gpt-4o"]
    assert table.price("acme-large") == loaded["acme-large"]
    assert table.price("gpt-4o-mini") == BUILTIN_PRICES["gpt-4o-mini"]
    assert table.price("claude-sonnet-4") == BUILTIN_PRICES["claude-sonnet-4"]
    cost = table.cost("acme-large", Usage(1_000_000, 2_000_000))
    assert cost is not None
    assert cost.total == pytest.approx(7.0 + 18.0)


def test_integer_prices_and_zero_are_accepted(tmp_path: Path) -> None:
    loaded = load_prices(write(tmp_path, {"free-model": {"input": 0, "output": 3}}))
    assert loaded["free-model"].input == 0.0
    assert loaded["free-model"].output == 3.0


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '{"gpt-4o": {"input": 1,')
    with pytest.raises(ConfigError) as raised:
        load_prices(path)
    assert str(path) in str(raised.value)
    assert "JSON" in str(raised.value)


def test_a_file_that_is_not_an_object_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, [{"input": 1, "output": 2}])
    with pytest.raises(ConfigError) as raised:
        load_prices(path)
    assert str(path) in str(raised.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.json"
    with pytest.raises(ConfigError) as raised:
        load_prices(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"input": -1.0, "output": 2.0}, "input"),
        ({"input": 1.0, "output": -0.5}, "output"),
        ({"input": float("nan"), "output": 2.0}, "input"),
        ({"input": "1.0", "output": 2.0}, "input"),
        ({"input": True, "output": 2.0}, "input"),
        ({"input": 1.0}, "output"),
        ({"output": 1.0}, "input"),
        ({"input": 1.0, "output": 2.0, "cached_input": -0.1}, "cached_input"),
        ({"input": 1.0, "output": 2.0, "cached_input": "cheap"}, "cached_input"),
    ],
)
def test_invalid_entry_names_file_model_and_field(
    tmp_path: Path, entry: dict[str, Any], field: str
) -> None:
    # json.dumps writes NaN as the bare token NaN, which json.loads reads back as a float
    path = write(tmp_path, {"gpt-4o": {"input": 1, "output": 1}, "broken-model": entry})
    with pytest.raises(ConfigError) as raised:
        load_prices(path)
    message = str(raised.value)
    assert str(path) in message
    assert "broken-model" in message
    assert repr(field) in message


def test_nan_in_file_text_is_rejected(tmp_path: Path) -> None:
    assert math.isnan(json.loads("NaN"))
    path = write(tmp_path, '{"m": {"input": NaN, "output": 1}}')
    with pytest.raises(ConfigError, match="'input'"):
        load_prices(path)


def test_entry_that_is_not_an_object_names_the_model(tmp_path: Path) -> None:
    path = write(tmp_path, {"just-a-number": 3.0})
    with pytest.raises(ConfigError) as raised:
        load_prices(path)
    assert str(path) in str(raised.value)
    assert "just-a-number" in str(raised.value)


# -- HYPERTOOL_PRICES through LangfuseIntegration --------------------------------------------
@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def priced_integration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exporter: InMemorySpanExporter
) -> Iterator[LangfuseIntegration]:
    path = write(
        tmp_path,
        {"house-model": {"input": 4.0, "output": 12.0, "cached_input": 1.0}},
        "house-prices.json",
    )
    monkeypatch.setenv("HYPERTOOL_PRICES", str(path))
    integration = LangfuseIntegration(exporters={"memory": exporter})
    yield integration
    integration.shutdown(0)


def response(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "choices": [{"message": {"content": "ok"}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
    }


def generation_attrs(
    integration: LangfuseIntegration, exporter: InMemorySpanExporter
) -> list[dict[str, Any]]:
    assert integration.flush(timeout=5.0)
    return [
        dict(span.attributes or {})
        for span in exporter.get_finished_spans()
        if (span.attributes or {}).get(attr.OBSERVATION_TYPE) == attr.TYPE_GENERATION
    ]


def test_env_price_file_prices_generations(
    priced_integration: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    llm = ObservableLLM(
        lambda prompt: response(3_000, 1_000), model="house-model", langfuse=priced_integration
    )
    llm("hello", persona="backend-engineer")
    (generation,) = generation_attrs(priced_integration, exporter)
    expected_input = 3_000 * 4.0 / MTOK
    expected_output = 1_000 * 12.0 / MTOK
    assert generation[attr.COST_KNOWN] is True
    details = json.loads(generation[attr.COST_DETAILS])
    assert details["input"] == pytest.approx(expected_input)
    assert details["output"] == pytest.approx(expected_output)
    assert details["total"] == pytest.approx(expected_input + expected_output)


def test_env_price_file_keeps_builtin_prices(
    priced_integration: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    price = price_of("gpt-4o-mini")
    priced_integration.create_generation(
        priced_integration.start_trace("t", "backend-engineer"),
        "gen",
        "gpt-4o-mini",
        "prompt",
        "completion",
        usage={"input": 100, "output": 50},
    )
    (generation,) = generation_attrs(priced_integration, exporter)
    details = json.loads(generation[attr.COST_DETAILS])
    assert details["total"] == pytest.approx((100 * price.input + 50 * price.output) / MTOK)


def test_invalid_env_price_file_fails_the_integration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, {"m": {"input": -1, "output": 1}})
    monkeypatch.setenv("HYPERTOOL_PRICES", str(path))
    with pytest.raises(ConfigError) as raised:
        LangfuseIntegration()
    assert str(path) in str(raised.value)


def test_unknown_model_cost_is_unknown_and_warned_once(
    priced_integration: LangfuseIntegration,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = "mystery-model-7b"
    llm = ObservableLLM(lambda prompt: response(10, 10), model=model, langfuse=priced_integration)
    with caplog.at_level(logging.WARNING, logger="hypertool.instrumentation"):
        for number in range(5):
            llm(f"call {number}", persona="backend-engineer")
        generations = generation_attrs(priced_integration, exporter)
    assert len(generations) == 5
    for generation in generations:
        assert generation[attr.COST_KNOWN] is False
        assert attr.COST_DETAILS not in generation
    warnings = [
        record
        for record in caplog.records
        if record.levelno == logging.WARNING and model in record.getMessage()
    ]
    assert len(warnings) == 1


def test_anthropic_cache_write_is_priced_at_one_and_a_quarter_input() -> None:
    price = price_of("claude-sonnet-4")
    usage = usage_from_mapping(
        {"input_tokens": 10, "cache_creation_input_tokens": 1_000, "output_tokens": 0}
    )
    assert usage is not None and usage.input == 1_010
    cost = PriceTable().cost("claude-sonnet-4", usage)
    assert cost is not None
    assert cost.input == pytest.approx((10 * price.input + 1_000 * price.input * 1.25) / MTOK)
