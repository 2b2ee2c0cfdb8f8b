"""Persona-aware LLM observability for Hypertool: Langfuse, OpenTelemetry and Prometheus."""

from hypertool.instrumentation._config import ConfigError
from hypertool.instrumentation._records import GenerationRecord
from hypertool.instrumentation._usage import Usage
from hypertool.instrumentation.budget import BudgetExceededError, BudgetLedger, BudgetStatus
from hypertool.instrumentation.contexts import GenerationContext, SpanContext, TraceContext
from hypertool.instrumentation.langfuse_integration import (
    LangfuseIntegration,
    get_langfuse_integration,
    reset_langfuse_integration,
    set_langfuse_integration,
)
from hypertool.instrumentation.metrics import PersonaMetricsCollector, start_metrics_server
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
from hypertool.instrumentation.workflow_tracing import Stage, WorkflowTracer

__all__ = [
    "BudgetExceededError",
    "BudgetLedger",
    "BudgetStatus",
    "ConfigError",
    "Cost",
    "GenerationContext",
    "GenerationRecord",
    "LangfuseIntegration",
    "ModelPrice",
    "ObservableLLM",
    "Persona",
    "PersonaError",
    "PersonaMetricsCollector",
    "PersonaRegistry",
    "PriceTable",
    "SpanContext",
    "Stage",
    "TraceContext",
    "Usage",
    "WorkflowTracer",
    "builtin_personas",
    "canonical_name",
    "get_langfuse_integration",
    "load_personas",
    "observe_llm",
    "reset_langfuse_integration",
    "set_langfuse_integration",
    "start_metrics_server",
]
