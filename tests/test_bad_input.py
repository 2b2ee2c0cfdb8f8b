"""Bad input never crashes the observed call; bad configuration fails at start-up, by name.

Every instrumented call here must return exactly what the function returned (the same object)
and must still be recorded, with what was given turned into something a trace can hold.
Configuration mistakes — a bad persona file, a bad price file, a negative budget, a malformed
``HYPERTOOL_*`` number — raise when the integration is built, naming the file, the field or
the variable. Property-based tests (hypothesis) cover usage extraction, persona names and
masking.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from hypertool.instrumentation import LangfuseIntegration, ObservableLLM
from hypertool.instrumentation import semconv as attr
from hypertool.instrumentation._config import ConfigError
from hypertool.instrumentation.masking import MASK, mask_secrets
from hypertool.instrumentation.model.usage import extract, snapshot, usage_from_mapping
from hypertool.instrumentation.personas import Persona, PersonaError, canonical_name
from hypertool.instrumentation.store import StoreExporter

# Export threads left by earlier tests (the official SDK's OTel batch processor in tests/e2e)
# draw retry jitter from the global `random` while Hypothesis generates examples here, which it
# reports as if a strategy used `random`. Nothing in these strategies does.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)

WORDS = re.compile(r"^[^-]+(?:-[^-]+)*$")  # single dashes between words


def is_canonical(name: str) -> bool:
    """Lower-case words of letters, marks and digits of any script, NFKC, one dash apart."""
    return (
        bool(WORDS.match(name))
        and name == name.lower()
        and unicodedata.normalize("NFKC", name) == name
        and all(char == "-" or unicodedata.category(char)[0] in "LMN" for char in name)
    )


MAX_FIELD_CHARS = 100_000  # HYPERTOOL_MAX_FIELD_CHARS default
STORE_FIELD_CHARS = 20_000  # HYPERTOOL_STORE_MAX_FIELD_CHARS default


class Recorded:
    """An integration with an in-memory sink (and optionally the store), and its spans."""

    def __init__(self, store: Path | None = None) -> None:
        self.memory = InMemorySpanExporter()
        exporters: dict[str, Any] = {"memory": self.memory}
        if store is not None:
            exporters["store"] = StoreExporter(store)
        self.registry = CollectorRegistry()
        self.integration = LangfuseIntegration(exporters=exporters, metrics_registry=self.registry)

    def llm(self, fn: Callable[..., Any], **kwargs: Any) -> ObservableLLM:
        return ObservableLLM(fn, model="gpt-4", langfuse=self.integration, **kwargs)

    def generations(self) -> list[ReadableSpan]:
        assert self.integration.flush(timeout=10)
        return [
            span
            for span in self.memory.get_finished_spans()
            if span.attributes and span.attributes.get(attr.OBSERVATION_TYPE) == "generation"
        ]

    def only_generation(self) -> ReadableSpan:
        (generation,) = self.generations()
        return generation


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    rec = Recorded()
    yield rec
    rec.integration.shutdown(timeout=1)


# -- persona names -------------------------------------------------------------------------
BAD_PERSONAS: list[Any] = [
    "",
    " ",
    "\t\n",
    "x" * 10_000,
    "Backend   Engineer",
    "  spaced out  ",
    "Ingénieur Backend",
    "工程师",
    "🤖 robot",
    "None",
    "null",
    "undefined",
    "NaN",
    None,
    "tta-",
    "tta-tta-backend",
    "---",
    "a/b\\c.d_e",
    "\x00\x01control",
    42,
]


@pytest.mark.parametrize("persona", BAD_PERSONAS, ids=lambda p: repr(p)[:20])
def test_bad_persona_names_never_break_the_call(recorded: Recorded, persona: Any) -> None:
    result = object()
    llm = recorded.llm(lambda prompt: result)
    assert llm("hello", persona=persona) is result
    trace = recorded.integration.start_trace("t", persona)
    assert llm("in a trace", trace=trace, persona=persona) is result
    recorded.integration.end_trace(trace)
    generations = recorded.generations()
    assert len(generations) == 2
    for generation in generations:
        user = generation.attributes[attr.USER_ID]  # type: ignore[index]
        assert isinstance(user, str) and is_canonical(user), repr(user)
        assert len(user) <= 64
        assert user == generation.attributes[attr.PERSONA]  # type: ignore[index]
    assert is_canonical(trace.persona)


# -- prompts and completions ---------------------------------------------------------------
def test_prompt_as_openai_message_list(recorded: Recorded) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Hello ünïcode"}]},
    ]
    llm = recorded.llm(lambda m: "hi")
    assert llm(messages, persona="backend-engineer") == "hi"
    messages.append({"role": "user", "content": "appended after the call"})
    recorded_input = recorded.only_generation().attributes[attr.INPUT]  # type: ignore[index]
    # The list as it was at call time, as JSON.
    assert json.loads(str(recorded_input)) == messages[:2]


class Reply:
    """A completion object with nothing the library knows about."""

    def __init__(self, text: str) -> None:
        self.text_value = text

    def __str__(self) -> str:
        return f"Reply({self.text_value})"


def numbers() -> Iterator[int]:
    yield from range(5)


@pytest.mark.parametrize(
    ("make", "expected_output"),
    [
        (lambda: Reply("x"), '"Reply(x)"'),  # JSON of its str()
        (lambda: None, ""),
        (lambda: b"raw \xff bytes", "raw \ufffd bytes"),
        (lambda: SimpleNamespace(choices=None, usage="lots"), None),
        (lambda: {"choices": [], "usage": {"prompt_tokens": "many"}}, None),
        (lambda: 3.5, "3.5"),
        (lambda: float("nan"), None),
    ],
    ids=["object", "None", "bytes", "odd-namespace", "odd-dict", "float", "nan"],
)
def test_odd_completions_are_returned_unchanged_and_recorded(
    recorded: Recorded, make: Callable[[], Any], expected_output: str | None
) -> None:
    value = make()
    llm = recorded.llm(lambda prompt: value)
    assert llm("prompt", persona="backend-engineer") is value
    generation = recorded.only_generation()
    output = generation.attributes[attr.OUTPUT]  # type: ignore[index]
    assert isinstance(output, str)
    if expected_output is not None:
        assert output == expected_output
    assert generation.attributes is not None
    assert all(n >= 0 for n in token_counts(generation.attributes))


def test_generator_completion_is_not_consumed(recorded: Recorded) -> None:
    llm = recorded.llm(lambda prompt: numbers())
    generator = llm("count", persona="backend-engineer")
    assert list(generator) == [0, 1, 2, 3, 4]  # all of it is still there for the caller
    assert len(recorded.generations()) == 1


class Hostile:
    """Every way of looking at it raises."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name}")

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_hostile_completion_object_does_not_break_the_call(recorded: Recorded) -> None:
    hostile = Hostile()
    llm = recorded.llm(lambda prompt: hostile)
    assert llm("prompt", persona="backend-engineer") is hostile
    # Still recorded, under a placeholder for what cannot be read.
    output = str(recorded.only_generation().attributes[attr.OUTPUT])  # type: ignore[index]
    assert "Hostile" in output


def test_ten_megabyte_prompt_is_truncated_with_a_visible_marker(tmp_path: Path) -> None:
    rec = Recorded(store=tmp_path / "store.db")
    try:
        prompt = "p" * (10 * 1024 * 1024)
        llm = rec.llm(lambda p: "short answer")
        started = time.perf_counter()
        assert llm(prompt, persona="backend-engineer") == "short answer"
        assert time.perf_counter() - started < 0.1  # the call does not pay for it
        exported = str(rec.only_generation().attributes[attr.INPUT])  # type: ignore[index]
        marker = f"…[truncated {len(prompt) - MAX_FIELD_CHARS} chars]"
        assert exported == "p" * MAX_FIELD_CHARS + marker
        messages = [{"role": "user", "content": prompt}]
        assert rec.llm(lambda m: "ok")(messages, persona="backend-engineer") == "ok"
        assert rec.integration.flush(timeout=10)
    finally:
        rec.integration.shutdown(timeout=5)
    with sqlite3.connect(f"file:{tmp_path / 'store.db'}?mode=ro", uri=True) as connection:
        stored = [row[0] for row in connection.execute("SELECT input FROM observations")]
    assert len(stored) == 2
    for text in stored:
        assert re.fullmatch(r"[^…]{20000}…\[truncated \d+ chars\]", text), text[-60:]


# -- metadata ------------------------------------------------------------------------------
class FailingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")

    __str__ = __repr__


def recursive_list() -> list[Any]:
    items: list[Any] = [1]
    items.append(items)
    return items


def recursive_dict() -> dict[str, Any]:
    mapping: dict[str, Any] = {"a": 1}
    mapping["self"] = mapping
    return mapping


def deeply_nested(depth: int = 100_000) -> list[Any]:
    outer: list[Any] = []
    current = outer
    for _ in range(depth):
        inner: list[Any] = []
        current.append(inner)
        current = inner
    return outer


BAD_METADATA: list[tuple[str, Callable[[], Any]]] = [
    ("set", lambda: {1, 2, 3}),
    ("frozenset-of-tuples", lambda: frozenset({(1, 2)})),
    ("object", lambda: object()),
    ("failing-repr", FailingRepr),
    ("recursive-list", recursive_list),
    ("recursive-dict", recursive_dict),
    ("deeply-nested", deeply_nested),
    ("bytes", lambda: b"\x00\xff"),
    ("nan-and-inf", lambda: {"x": float("nan"), "y": float("-inf")}),
    ("non-str-keys", lambda: {(1, 2): "tuple key", None: "none key"}),
    ("huge-int", lambda: 10**5000),
]


@pytest.mark.parametrize(("label", "make"), BAD_METADATA, ids=[m[0] for m in BAD_METADATA])
def test_metadata_json_cannot_encode(
    recorded: Recorded, label: str, make: Callable[[], Any]
) -> None:
    value = make()
    metadata = {"bad": value, "good": "kept"}
    llm = recorded.llm(lambda prompt: "answer")
    assert llm("prompt", persona="backend-engineer", metadata=metadata) == "answer"
    # The same metadata on a trace and a span, the synchronous path.
    integration = recorded.integration
    trace = integration.start_trace("t", "backend-engineer", metadata=metadata)
    assert trace.url is None and len(trace.trace_id) == 32
    with integration.start_span(trace, "s", metadata=metadata) as span:
        generation = integration.create_generation(
            trace, "g", "gpt-4", "p", "c", metadata=metadata, parent=span
        )
    integration.end_trace(trace)
    assert generation.generation_id, "create_generation recorded nothing"
    assert integration.flush(timeout=10)
    spans = recorded.memory.get_finished_spans()
    # The instrumented call, the explicit generation, the span and the trace: all recorded,
    # none replaced by a dead trace; the good entry survives beside the bad one.
    assert len(spans) == 4, [s.name for s in spans]
    for span in spans:
        assert span.attributes is not None
        keys = {k for k in span.attributes if k.endswith(".good")}
        assert keys, f"{span.name}: metadata lost: {dict(span.attributes)}"
        bad = [v for k, v in span.attributes.items() if k.endswith(".bad")]
        assert bad and all(isinstance(v, str) for v in bad)
    roots = {span.context.trace_id for span in spans if span.parent is None}
    assert len(roots) == 2  # the call's own trace, and the explicit one


# -- usage ---------------------------------------------------------------------------------
def token_counts(attributes: Mapping[str, Any]) -> tuple[int, int]:
    """Input and output tokens: the provider's (GenAI keys) or an estimate (ours)."""
    if attr.GEN_AI_INPUT_TOKENS in attributes:
        return attributes[attr.GEN_AI_INPUT_TOKENS], attributes[attr.GEN_AI_OUTPUT_TOKENS]
    return attributes[attr.USAGE_INPUT], attributes[attr.USAGE_OUTPUT]


BAD_USAGE: list[dict[str, Any]] = [
    {"prompt_tokens": -5, "completion_tokens": float("nan")},
    {"prompt_tokens": float("inf"), "completion_tokens": -1},
    {"input_tokens": -3, "output_tokens": "lots"},
    {"input": float("nan"), "output": -0.5},
    {"prompt_tokens": 10**400, "completion_tokens": 2},
    {"prompt_tokens": True, "completion_tokens": None},
    {"total_tokens": -9, "completion_tokens": 4},
]


@pytest.mark.parametrize("usage", BAD_USAGE, ids=lambda u: json.dumps(u, default=str)[:40])
def test_negative_or_nan_usage_never_crashes_and_never_records_negative(
    recorded: Recorded, usage: dict[str, Any]
) -> None:
    response = {"choices": [{"message": {"content": "answer"}}], "usage": usage}
    llm = recorded.llm(lambda prompt: response)
    assert llm("prompt", persona="backend-engineer") is response
    trace = recorded.integration.start_trace("t", "backend-engineer")
    recorded.integration.create_generation(trace, "explicit", "gpt-4", "p", "c", usage=usage)
    recorded.integration.end_trace(trace)
    generations = recorded.generations()
    assert len(generations) == 2
    for generation in generations:
        attributes = generation.attributes
        assert attributes is not None
        if attr.USAGE_DETAILS in attributes:  # the provider's usage (else an estimate)
            details = json.loads(str(attributes[attr.USAGE_DETAILS]))  # strict JSON: no NaN
            assert all(isinstance(v, int) and v >= 0 for v in details.values()), details
        assert all(n >= 0 for n in token_counts(attributes))
    assert recorded.integration.budgets.used("backend-engineer") >= 0


# -- configuration errors at start-up ------------------------------------------------------
def persona_file(directory: Path, name: str, content: str) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(content, encoding="utf-8")
    return path


PERSONA_FILES = [
    ("not-json.json", "{not json", ["not valid JSON"]),
    ("list.json", "[1, 2]", ["JSON object"]),
    ("negative-budget.json", '{"name": "x", "tokenBudget": -5}', ["'tokenBudget'"]),
    ("negative-cost.json", '{"name": "x", "costBudgetUsd": -1}', ["'costBudgetUsd'"]),
    ("budget-text.json", '{"name": "x", "tokenBudget": "lots"}', ["'tokenBudget'"]),
    ("no-name.json", '{"tokenBudget": 5}', ["'name'"]),
    ("bad-policy.json", '{"name": "x", "budgetPolicy": "deny"}', ["'budgetPolicy'"]),
    ("bad-period.json", '{"name": "x", "budgetPeriod": "weekly"}', ["'budgetPeriod'"]),
]


@pytest.mark.parametrize(("filename", "content", "names"), PERSONA_FILES, ids=lambda v: str(v))
def test_bad_persona_file_fails_at_start_up_naming_file_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, filename: str, content: str, names: list[str]
) -> None:
    directory = tmp_path / "personas"
    path = persona_file(directory, filename, content)
    persona_file(directory, "a-good-one.json", '{"name": "good", "tokenBudget": 10}')
    monkeypatch.setenv("HYPERTOOL_PERSONAS_DIR", str(directory))
    with pytest.raises(PersonaError) as raised:
        LangfuseIntegration()
    message = str(raised.value)
    assert str(path) in message
    for name in names:
        assert name in message


def test_missing_persona_directory_fails_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-such-dir"
    monkeypatch.setenv("HYPERTOOL_PERSONAS_DIR", str(missing))
    with pytest.raises(PersonaError, match=re.escape(str(missing))):
        LangfuseIntegration()


def test_negative_budget_in_code_fails_when_built() -> None:
    with pytest.raises(ValueError, match="tokenBudget"):
        Persona.model_validate({"name": "x", "tokenBudget": -1})


PRICE_FILES = [
    ("{not json", ["not valid JSON"]),
    ("[]", ["JSON object"]),
    ('{"my-model": {"input": -1, "output": 2}}', ["my-model", "input"]),
    ('{"my-model": {"input": 1, "output": "cheap"}}', ["my-model", "output"]),
    ('{"my-model": {"input": 1}}', ["my-model", "output"]),
    ('{"my-model": 3}', ["my-model"]),
    ('{"my-model": {"input": 1, "output": 2, "cached_input": -0.5}}', ["cached_input"]),
]


@pytest.mark.parametrize(("content", "names"), PRICE_FILES, ids=lambda v: str(v)[:30])
def test_bad_price_file_fails_at_start_up_naming_file_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, names: list[str]
) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content, encoding="utf-8")
    monkeypatch.setenv("HYPERTOOL_PRICES", str(path))
    with pytest.raises(ConfigError) as raised:
        LangfuseIntegration()
    assert str(path) in str(raised.value)
    for name in names:
        assert name in str(raised.value)


def test_missing_price_file_names_the_variable_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.json"
    monkeypatch.setenv("HYPERTOOL_PRICES", str(missing))
    with pytest.raises(ConfigError) as raised:
        LangfuseIntegration()
    assert "HYPERTOOL_PRICES" in str(raised.value) and str(missing) in str(raised.value)


BAD_VARIABLES = [
    ("HYPERTOOL_EXPORT_TIMEOUT", "abc"),
    ("HYPERTOOL_EXPORT_TIMEOUT", "-1"),
    ("HYPERTOOL_EXPORT_TIMEOUT", "0"),
    ("HYPERTOOL_EXPORT_TIMEOUT", "nan"),
    ("HYPERTOOL_EXIT_TIMEOUT", "two"),
    ("HYPERTOOL_EXIT_TIMEOUT", "-2"),
    ("HYPERTOOL_QUEUE_SIZE", "0"),
    ("HYPERTOOL_QUEUE_SIZE", "1.5"),
    ("HYPERTOOL_QUEUE_SIZE", "-10"),
    ("HYPERTOOL_QUEUE_SIZE", "ten"),
    ("HYPERTOOL_MAX_FIELD_CHARS", "0"),
    ("HYPERTOOL_MAX_FIELD_CHARS", "1e3.5"),
    ("HYPERTOOL_CONSOLE", "maybe"),
    ("HYPERTOOL_BUDGET_PERIOD", "weekly"),
    ("HYPERTOOL_BUDGET_POLICY", "deny"),
    ("LANGFUSE_DEBUG", "perhaps"),
    ("LANGFUSE_HOST", "ftp://example.invalid"),
    ("HYPERTOOL_STORE_RETENTION_DAYS", "-1"),
    ("HYPERTOOL_STORE_RETENTION_DAYS", "forever"),
    ("HYPERTOOL_STORE_MAX_FIELD_CHARS", "0"),
]


@pytest.mark.parametrize(("variable", "value"), BAD_VARIABLES, ids=lambda v: str(v))
def test_bad_variable_fails_at_start_up_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv("HYPERTOOL_STORE", str(tmp_path / "store.db"))  # the store reads its own
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        LangfuseIntegration()


# -- property-based ------------------------------------------------------------------------
USAGE_KEYS = [
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "input_tokens",
    "output_tokens",
    "input",
    "output",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "prompt_tokens_details",
    "completion_tokens_details",
    "cached_tokens",
    "reasoning_tokens",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["12", "-3", "nan", "inf", "1e999", "", " 7 "]),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.builds(Hostile),
)
usage_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.dictionaries(st.sampled_from(USAGE_KEYS), children, max_size=5),
        st.lists(children, max_size=3),
    ),
    max_leaves=12,
)
usage_mappings = st.dictionaries(
    st.one_of(st.sampled_from(USAGE_KEYS), st.text(max_size=6)), usage_values, max_size=8
)


def as_object(mapping: dict[str, Any]) -> Any:
    return SimpleNamespace(**{k: v for k, v in mapping.items() if k.isidentifier()})


@settings(max_examples=400, deadline=None)
@given(st.one_of(usage_mappings, usage_mappings.map(as_object), usage_values))
def test_usage_extraction_never_raises_nor_goes_negative(usage: Any) -> None:
    result = usage_from_mapping(usage)
    if result is not None:
        assert result.input >= 0 and result.output >= 0 and result.total >= 0
        assert all(value >= 0 for value in result.as_langfuse().values())
        assert all(isinstance(value, int) for value in result.as_langfuse().values())
    response = {"choices": [{"message": {"content": "x"}}], "usage": usage}
    for value in (response, as_object(response), usage):
        text, extracted = extract(value, "some prompt")
        assert isinstance(text, str)
        assert extracted.input >= 0 and extracted.output >= 0
        snapshot(value)  # the call-time half never raises either


persona_texts = st.one_of(
    st.text(max_size=80),
    st.text(alphabet="tTaA- _./", max_size=30),
    st.lists(st.sampled_from(["tta", "-", " ", "TTA", "x", "é", "_", "9"]), max_size=20).map(
        "".join
    ),
    st.text(min_size=60, max_size=200),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(persona_texts)
# Leaving ":" out put two marks side by side in an order NFKC changes (found by a run).
@example("\u00a8:\u0d3b")
def test_canonical_name_is_idempotent_lower_kebab_and_non_empty(name: str) -> None:
    canonical = canonical_name(name)
    assert canonical, repr(name)
    assert is_canonical(canonical), (name, canonical)
    assert len(canonical) <= 64
    assert canonical_name(canonical) == canonical, (name, canonical)


# Secrets of each family, generated: the body is random, the shape is the provider's.
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
UPPER_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
B64URL = ALNUM + "_-"


def body(alphabet: str, min_size: int, max_size: int = 60) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=min_size, max_size=max_size)


SECRETS: dict[str, st.SearchStrategy[str]] = {
    "openai": body(ALNUM + "_-", 20).map(lambda b: f"sk-{b}"),
    "openai-project": body(ALNUM + "_-", 20).map(lambda b: f"sk-proj-{b}"),
    "anthropic": body(ALNUM + "_-", 16).map(lambda b: f"sk-ant-api03-{b}"),
    "langfuse-secret": body(ALNUM + "-", 8).map(lambda b: f"sk-lf-{b}"),
    "langfuse-public": body(ALNUM + "-", 8).map(lambda b: f"pk-lf-{b}"),
    "aws": st.tuples(st.sampled_from(["AKIA", "ASIA"]), body(UPPER_DIGITS, 16, 16)).map("".join),
    "github-classic": st.tuples(st.sampled_from("pousr"), body(ALNUM, 36, 40)).map(
        lambda t: f"gh{t[0]}_{t[1]}"
    ),
    "github-fine-grained": body(ALNUM + "_", 22, 82).map(lambda b: f"github_pat_{b}"),
    "bearer": st.tuples(
        st.sampled_from(["Bearer", "bearer", "BEARER"]), body(B64URL + ".=+/", 16)
    ).map(lambda t: f"{t[0]} {t[1]}"),
    "jwt": st.tuples(body(B64URL, 8, 40), body(B64URL, 8, 40), body(B64URL, 8, 40)).map(
        lambda t: f"eyJ{t[0]}.{t[1]}.{t[2]}"
    ),
    "password": st.tuples(
        st.sampled_from(["password", "PASSWORD", "passwd", "pwd", "api_key", "client_secret"]),
        st.sampled_from(["=", ": ", " = ", ":"]),
        body(ALNUM + "!#$%()*+-./<>?@[]^_{|}~", 1, 30),
    ).map(lambda t: f"{t[0]}{t[1]}{t[2]}"),
}
# Text around a secret: words and punctuation, separated from it as in prose, code or JSON.
surroundings = st.text(alphabet=ALNUM + " .,:;!?()\n", max_size=40)
separators = st.sampled_from(
    [(" ", " "), ("\n", "\n"), (" (", ") "), ("\t", ". "), (" '", "' "), (' "', '", ')]
)


@pytest.mark.parametrize("family", sorted(SECRETS))
def test_mask_removes_each_secret_family(family: str) -> None:
    @settings(max_examples=150, deadline=None)
    @given(SECRETS[family], surroundings, separators, surroundings)
    def check(secret: str, before: str, around: tuple[str, str], after: str) -> None:
        text = f"{before}{around[0]}{secret}{around[1]}{after}"
        masked = mask_secrets(text)
        if family in ("bearer", "password"):
            # The name is kept ("Bearer ", "password="), the value is replaced.
            name_part = re.match(
                r"^\S+\s+" if family == "bearer" else r"^[A-Za-z_]+\s*[=:]\s*", secret
            )
            assert name_part is not None
            value = secret[name_part.end() :]
            kept = f"{name_part.group(0)}{MASK}"
            assert kept in masked, (text, masked)
            # The value is gone from after the name (a value such as "[" is also how the
            # mask itself starts: the mask is set aside before looking for the value).
            rest = masked.replace(kept, "\0")
            assert f"{name_part.group(0)}{value}" not in rest, (text, masked)
        else:
            assert secret not in masked, (text, masked)
            assert MASK in masked
            # Not even a part of it: the key's last 12 characters are gone too (unless the
            # surrounding text happens to hold them).
            tail = secret[-12:]
            if tail not in f"{before}{around[0]}{around[1]}{after}":
                assert tail not in masked, (text, masked)
        assert mask_secrets(masked) == masked  # idempotent on what it produced

    check()


def test_a_value_that_starts_like_the_mask_is_masked() -> None:
    # Found by the property above: the value "[" is how "[REDACTED]" starts.
    assert mask_secrets(" password=[ ") == f" password={MASK} "
    assert mask_secrets("api_key: [REDACT") == f"api_key: {MASK}"


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=30), surroundings, *SECRETS.values(), st.sampled_from([MASK, " "])
        ),
        max_size=8,
    ).map(" ".join)
)
def test_mask_is_idempotent(text: str) -> None:
    once = mask_secrets(text)
    assert mask_secrets(once) == once


def test_property_strategies_really_produce_secrets_the_mask_knows() -> None:
    """A guard for the tests above: a generated value of each family is masked when alone,
    and a plain word is not (so the family strategies are not vacuous)."""
    examples = {
        "openai": "sk-" + "a" * 24,
        "aws": "AKIA" + "B" * 16,
        "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLXZhbHVl",
    }
    for secret in examples.values():
        assert mask_secrets(secret) == MASK
    assert mask_secrets("plain words only") == "plain words only"


# -- unencodable text ----------------------------------------------------------------------
BAD = "\ud800"  # a lone surrogate: a Python str, but no sink can encode it as UTF-8


def test_lone_surrogates_cost_one_character_never_a_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lone surrogate anywhere — prompt, completion, metadata key or value, persona, model,
    chatmode, names, tags, session, error — is repaired (U+FFFD) before any sink: every span
    of the batch reaches Langfuse (protobuf) and the store (SQLite), none is dropped.
    """
    from support.loopback import LoopbackOTLP

    store = tmp_path / "traces.db"
    monkeypatch.setenv("HYPERTOOL_STORE", str(store))
    registry = CollectorRegistry()
    with LoopbackOTLP(200) as receiver:
        integration = LangfuseIntegration(
            "pk-lf-x", "sk-lf-x", host=receiver.url, metrics_registry=registry
        )
        try:
            llm = ObservableLLM(
                lambda prompt: f"answer {BAD}",
                name=f"call {BAD}",
                model=f"gpt-{BAD}",
                langfuse=integration,
                model_parameters={f"k{BAD}": BAD},
            )
            trace = integration.start_trace(
                f"trace {BAD}",
                f"persona {BAD}",
                chatmode=f"mode {BAD}",
                metadata={f"key {BAD}": f"value {BAD}"},
                session_id=f"session {BAD}",
                tags=[f"tag {BAD}"],
            )
            for number in range(39):
                bad = number == 7
                llm(
                    f"prompt {BAD}" if bad else "fine",
                    trace=trace,
                    persona=f"p {BAD}" if bad else "backend-engineer",
                    metadata={f"m {BAD}": BAD} if bad else {"m": "fine"},
                )

            def failing(prompt: str) -> str:
                raise ValueError(f"failed {BAD}")

            with pytest.raises(ValueError):
                ObservableLLM(failing, model="gpt-4", langfuse=integration)("x", trace=trace)
            integration.end_trace(trace, output=f"out {BAD}")
            assert integration.flush(timeout=10) is True
        finally:
            integration.shutdown(timeout=5)
        spans = receiver.spans()
    dropped = {
        sink: registry.get_sample_value("hypertool_export_dropped_spans_total", {"sink": sink})
        for sink in ("langfuse", "store")
    }
    assert dropped == {"langfuse": 0.0, "store": 0.0}
    assert len(spans) == 41  # 40 generations and the trace
    wire = json.dumps([span.attributes for span in spans], ensure_ascii=False)
    assert "\ufffd" in wire and "answer \ufffd" in wire and "trace \ufffd" in wire
    connection = sqlite3.connect(store)
    try:
        (count,) = connection.execute("SELECT count(*) FROM observations").fetchone()
        (text,) = connection.execute(
            "SELECT group_concat(coalesce(input, '') || coalesce(metadata, '')) FROM observations"
        ).fetchone()
    finally:
        connection.close()
    assert count == 41
    assert "prompt \ufffd" in text and "m \ufffd" in text


def test_lone_surrogates_in_scores_cost_one_character_never_a_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for scores: a lone surrogate in a score's name, id, config id, comment,
    metadata key or value, or in the workflow and stage it scores (and in the name of the
    stage's Langfuse trace), is repaired before Langfuse (JSON) and the store (SQLite); the
    other scores and spans of the batch are delivered with it.
    """
    from hypertool.instrumentation import WorkflowTracer
    from hypertool.instrumentation.store import TraceStore
    from support.loopback import LoopbackOTLP

    store = tmp_path / "traces.db"
    monkeypatch.setenv("HYPERTOOL_STORE", str(store))
    registry = CollectorRegistry()
    with LoopbackOTLP(200) as receiver:
        integration = LangfuseIntegration(
            "pk-lf-x", "sk-lf-x", host=receiver.url, metrics_registry=registry
        )
        try:
            workflow = WorkflowTracer(f"flow {BAD}", langfuse=integration)
            with workflow, workflow.stage(f"stage {BAD}", "backend-engineer") as stage:
                stage.score("fine", 1.0)
                stage.score(
                    f"name {BAD}",
                    f"value {BAD}",
                    comment=f"comment {BAD}",
                    metadata={f"key {BAD}": f"meta {BAD}"},
                    config_id=f"config {BAD}",
                    score_id=f"id {BAD}",
                )
            assert integration.flush(timeout=10) is True
        finally:
            integration.shutdown(timeout=5)
        sent = [item for body in receiver.json_requests("/api/public/scores") for item in body]
        spans = receiver.spans()
    for kind in ("spans", "scores"):
        dropped = {
            sink: registry.get_sample_value(
                f"hypertool_export_dropped_{kind}_total", {"sink": sink}
            )
            for sink in ("langfuse", "store")
        }
        assert dropped == {"langfuse": 0.0, "store": 0.0}
    # The stage's Langfuse trace is named after the workflow and the stage, both repaired.
    assert {s.attributes[attr.TRACE_NAME] for s in spans} == {
        "flow \ufffd",
        "flow \ufffd/stage \ufffd",
    }
    assert sorted(item["name"] for item in sent) == ["fine", "name \ufffd", "quality_gate"]
    bad = next(item for item in sent if item["name"] == "name \ufffd")
    assert (bad["id"], bad["configId"], bad["value"]) == (
        "id \ufffd",
        "config \ufffd",
        "value \ufffd",
    )
    assert bad["metadata"] == {"key \ufffd": "meta \ufffd"} and bad["comment"] == "comment \ufffd"
    with TraceStore(store, create=False) as opened:
        stored = {row["name"]: row for row in opened.scores()}
    assert sorted(stored) == ["fine", "name \ufffd", "quality_gate"]
    assert (stored["fine"]["workflow"], stored["fine"]["stage"]) == ("flow \ufffd", "stage \ufffd")
