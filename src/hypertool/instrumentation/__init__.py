"""Persona-aware LLM observability for Hypertool: Langfuse, OpenTelemetry and Prometheus.

Names are imported on first use (PEP 562), so ``import hypertool.instrumentation`` and the
``hypertool`` CLI start fast and nothing happens at import time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hypertool.instrumentation._config import ConfigError
    from hypertool.instrumentation.budget import BudgetExceededError, BudgetLedger, BudgetStatus
    from hypertool.instrumentation.integration import (
        LangfuseIntegration,
        get_langfuse_integration,
        reset_langfuse_integration,
        set_langfuse_integration,
    )
    from hypertool.instrumentation.metrics import PersonaMetricsCollector, start_metrics_server
    from hypertool.instrumentation.model.handles import (
        GenerationContext,
        SpanContext,
        TraceContext,
        bind_context,
        last_generation,
    )
    from hypertool.instrumentation.model.prompts import ManagedPrompt, PromptError
    from hypertool.instrumentation.model.records import GenerationRecord
    from hypertool.instrumentation.model.scores import Score
    from hypertool.instrumentation.model.usage import Usage
    from hypertool.instrumentation.observable import ObservableLLM, observe_llm
    from hypertool.instrumentation.personas import (
        Persona,
        PersonaError,
        PersonaRegistry,
        builtin_personas,
        canonical_name,
        load_personas,
    )
    from hypertool.instrumentation.pricing import Cost, ModelPrice, PriceTable
    from hypertool.instrumentation.workflow import Stage, WorkflowTracer

_MODULES: dict[str, str] = {
    "BudgetExceededError": "hypertool.instrumentation.budget",
    "BudgetLedger": "hypertool.instrumentation.budget",
    "BudgetStatus": "hypertool.instrumentation.budget",
    "ConfigError": "hypertool.instrumentation._config",
    "Cost": "hypertool.instrumentation.pricing",
    "GenerationContext": "hypertool.instrumentation.model.handles",
    "GenerationRecord": "hypertool.instrumentation.model.records",
    "LangfuseIntegration": "hypertool.instrumentation.integration",
    "ManagedPrompt": "hypertool.instrumentation.model.prompts",
    "ModelPrice": "hypertool.instrumentation.pricing",
    "ObservableLLM": "hypertool.instrumentation.observable",
    "Persona": "hypertool.instrumentation.persona_file",
    "PersonaError": "hypertool.instrumentation.personas",
    "PersonaMetricsCollector": "hypertool.instrumentation.metrics",
    "PersonaRegistry": "hypertool.instrumentation.personas",
    "PriceTable": "hypertool.instrumentation.pricing",
    "PromptError": "hypertool.instrumentation.model.prompts",
    "Score": "hypertool.instrumentation.model.scores",
    "SpanContext": "hypertool.instrumentation.model.handles",
    "Stage": "hypertool.instrumentation.workflow",
    "TraceContext": "hypertool.instrumentation.model.handles",
    "Usage": "hypertool.instrumentation.model.usage",
    "WorkflowTracer": "hypertool.instrumentation.workflow",
    "bind_context": "hypertool.instrumentation.model.handles",
    "builtin_personas": "hypertool.instrumentation.personas",
    "canonical_name": "hypertool.instrumentation.personas",
    "get_langfuse_integration": "hypertool.instrumentation.integration",
    "last_generation": "hypertool.instrumentation.model.handles",
    "load_personas": "hypertool.instrumentation.personas",
    "observe_llm": "hypertool.instrumentation.observable",
    "reset_langfuse_integration": "hypertool.instrumentation.integration",
    "set_langfuse_integration": "hypertool.instrumentation.integration",
    "start_metrics_server": "hypertool.instrumentation.metrics",
}

__all__ = [
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


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
