"""The public API of hypertool.instrumentation: locked, so a change to it is deliberate."""

from __future__ import annotations

import importlib

import pytest

import hypertool.instrumentation as package

PUBLIC_API = [
    "BudgetExceededError",
    "BudgetLedger",
    "BudgetStatus",
    "ConfigError",
    "Cost",
    "GenerationContext",
    "GenerationRecord",
    "LangfuseIntegration",
    "ManagedPrompt",
    "ModelPrice",
    "ObservableLLM",
    "Persona",
    "PersonaError",
    "PersonaMetricsCollector",
    "PersonaRegistry",
    "PriceTable",
    "PromptError",
    "Score",
    "SpanContext",
    "Stage",
    "TraceContext",
    "Usage",
    "WorkflowTracer",
    "bind_context",
    "builtin_personas",
    "canonical_name",
    "get_langfuse_integration",
    "last_generation",
    "load_personas",
    "observe_llm",
    "reset_langfuse_integration",
    "set_langfuse_integration",
    "start_metrics_server",
]


def test_all_is_locked() -> None:
    assert package.__all__ == PUBLIC_API


def test_all_is_sorted_and_unique() -> None:
    assert package.__all__ == sorted(package.__all__)
    assert len(set(package.__all__)) == len(package.__all__)


@pytest.mark.parametrize("name", PUBLIC_API)
def test_every_name_is_importable(name: str) -> None:
    module = importlib.import_module("hypertool.instrumentation")
    assert getattr(module, name) is not None
    namespace: dict[str, object] = {}
    exec(f"from hypertool.instrumentation import {name}", namespace)
    assert namespace[name] is getattr(module, name)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from hypertool.instrumentation import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == PUBLIC_API


def test_public_names_are_defined_in_the_package() -> None:
    for name in PUBLIC_API:
        obj = getattr(package, name)
        module = getattr(obj, "__module__", "")
        assert module.startswith("hypertool.instrumentation"), (name, module)
