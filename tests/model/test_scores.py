"""Score values against their data types, and the wire item (langfuse 5.0.4's field names)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

import pytest

from hypertool.instrumentation.model.scores import (
    Score,
    ScoreError,
    check_value,
    is_observation_id,
    is_trace_id,
    iso_timestamp,
)


@pytest.mark.parametrize(
    "value,data_type,expected",
    [
        (True, None, (1.0, "BOOLEAN")),
        (False, None, (0.0, "BOOLEAN")),
        (1, "BOOLEAN", (1.0, "BOOLEAN")),
        (0.0, "boolean", (0.0, "BOOLEAN")),
        (3, None, (3.0, "NUMERIC")),
        (0.25, None, (0.25, "NUMERIC")),
        (-2, "NUMERIC", (-2.0, "NUMERIC")),
        ("good", None, ("good", "CATEGORICAL")),
        ("a long explanation", "TEXT", ("a long explanation", "TEXT")),
        ("", "TEXT", ("", "TEXT")),
    ],
)
def test_values_that_fit_their_type(
    value: object, data_type: str | None, expected: tuple[object, str]
) -> None:
    checked = check_value("relevance", value, data_type)
    assert checked == expected
    assert type(checked[0]) is type(expected[0])  # numbers go out as floats, like the SDK's


@pytest.mark.parametrize(
    "name,value,data_type,says",
    [
        ("relevance", 2, "BOOLEAN", "BOOLEAN takes True/False or 1/0"),
        ("relevance", "yes", "BOOLEAN", "BOOLEAN takes"),
        ("relevance", math.nan, None, "not finite"),
        ("relevance", math.inf, "NUMERIC", "not finite"),
        ("relevance", "high", "NUMERIC", "NUMERIC takes a number"),
        ("relevance", True, "NUMERIC", "NUMERIC takes a number"),
        ("relevance", 3, "CATEGORICAL", "CATEGORICAL takes a string"),
        ("relevance", "", None, "cannot be empty"),
        ("relevance", [1], None, "is not a number, a bool or a string"),
        ("relevance", 1, "PERCENT", "is not one of"),
        ("", 1, None, "non-empty name"),
        (None, 1, None, "non-empty name"),
        ("x" * 201, 1, None, "longer than 200"),
    ],
)
def test_values_that_do_not_fit_are_a_clear_error(
    name: object, value: object, data_type: str | None, says: str
) -> None:
    with pytest.raises(ScoreError, match=re.escape(says)):
        check_value(name, value, data_type)


def test_ids() -> None:
    assert is_trace_id("0123456789abcdef0123456789abcdef")
    assert not is_trace_id("0123456789ABCDEF0123456789ABCDEF")  # as written on the wire: lower
    assert not is_trace_id("0" * 32)  # the invalid id
    assert not is_trace_id("abc")
    assert not is_trace_id("g" * 32)
    assert is_observation_id("0123456789abcdef")
    assert not is_observation_id("0123456789abcdef0")


def test_timestamp_is_iso_utc_with_microseconds_and_z() -> None:
    moment = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    ns = int(moment.timestamp()) * 10**9 + 678_901_234
    assert iso_timestamp(ns) == "2025-01-02T03:04:05.678901Z"
    assert iso_timestamp(int(moment.timestamp()) * 10**9) == "2025-01-02T03:04:05.000000Z"


def test_wire_item_leaves_out_what_is_none() -> None:
    bare = Score("a" * 16, "b" * 32, "relevance", 0.5, "NUMERIC", 1_700_000_000 * 10**9)
    assert bare.as_langfuse() == {
        "id": "a" * 16,
        "traceId": "b" * 32,
        "name": "relevance",
        "value": 0.5,
        "dataType": "NUMERIC",
        "timestamp": "2023-11-14T22:13:20.000000Z",
    }
    full = Score(
        "a" * 16,
        "b" * 32,
        "tone",
        "friendly",
        "CATEGORICAL",
        1_700_000_000 * 10**9,
        observation_id="c" * 16,
        comment="why",
        metadata={"k": 1},
        config_id="cfg",
        environment="production",
        persona="backend-engineer",
    )
    item = full.as_langfuse()
    assert item["observationId"] == "c" * 16
    assert item["comment"] == "why" and item["metadata"] == {"k": 1}
    assert item["configId"] == "cfg" and item["environment"] == "production"
    assert "persona" not in item  # ours, not Langfuse's: the store keeps it
    assert full.numeric is None and bare.numeric == 0.5
