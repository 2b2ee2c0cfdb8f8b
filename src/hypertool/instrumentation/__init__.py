"""Persona-aware LLM observability for Hypertool: Langfuse, OpenTelemetry and Prometheus."""

from hypertool.instrumentation._config import ConfigError
from hypertool.instrumentation._records import GenerationRecord
from hypertool.instrumentation._usage import Usage
from hypertool.instrumentation.budget import BudgetLedger
from hypertool.instrumentation.contexts import GenerationContext, SpanContext, TraceContext
from hypertool.instrumentation.langfuse_integration import (
    LangfuseIntegration,
    get_langfuse_integration,
    reset_langfuse_integration,
    set_langfuse_integration,
)
from hypertool.instrumentation.observable import ObservableLLM, observe_llm
from hypertool.instrumentation.personas import (
    Persona,
    PersonaError,
    PersonaRegistry,
    builtin_personas,
    canonical_name,
    load_personas,
)

__all__ = [
    "BudgetLedger",
    "ConfigError",
    "GenerationContext",
    "GenerationRecord",
    "LangfuseIntegration",
    "ObservableLLM",
    "Persona",
    "PersonaError",
    "PersonaRegistry",
    "SpanContext",
    "TraceContext",
    "Usage",
    "builtin_personas",
    "canonical_name",
    "get_langfuse_integration",
    "load_personas",
    "observe_llm",
    "reset_langfuse_integration",
    "set_langfuse_integration",
]
