"""Span attribute keys: Langfuse's OTel ingestion contract, GenAI conventions, and ours.

Langfuse keys come from the installed ``langfuse`` package so a rename there cannot drift here.
"""

from __future__ import annotations

from langfuse._client.attributes import LangfuseOtelSpanAttributes as _LF

# Langfuse: trace level (set on every observation; ingestion v4 keeps them per observation)
TRACE_NAME: str = _LF.TRACE_NAME
USER_ID: str = _LF.TRACE_USER_ID
SESSION_ID: str = _LF.TRACE_SESSION_ID
TRACE_TAGS: str = _LF.TRACE_TAGS
TRACE_METADATA: str = _LF.TRACE_METADATA

# Langfuse: observation level
OBSERVATION_TYPE: str = _LF.OBSERVATION_TYPE
OBSERVATION_METADATA: str = _LF.OBSERVATION_METADATA
LEVEL: str = _LF.OBSERVATION_LEVEL
STATUS_MESSAGE: str = _LF.OBSERVATION_STATUS_MESSAGE
INPUT: str = _LF.OBSERVATION_INPUT
OUTPUT: str = _LF.OBSERVATION_OUTPUT
MODEL: str = _LF.OBSERVATION_MODEL
MODEL_PARAMETERS: str = _LF.OBSERVATION_MODEL_PARAMETERS
USAGE_DETAILS: str = _LF.OBSERVATION_USAGE_DETAILS
COST_DETAILS: str = _LF.OBSERVATION_COST_DETAILS
COMPLETION_START_TIME: str = _LF.OBSERVATION_COMPLETION_START_TIME

# OpenTelemetry GenAI semantic conventions
GEN_AI_OPERATION: str = "gen_ai.operation.name"
GEN_AI_REQUEST_MODEL: str = "gen_ai.request.model"
GEN_AI_INPUT_TOKENS: str = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS: str = "gen_ai.usage.output_tokens"

# Hypertool
PERSONA: str = "hypertool.persona"
CHATMODE: str = "hypertool.chatmode"
WORKFLOW: str = "hypertool.workflow"
STAGE: str = "hypertool.stage"
USAGE_ESTIMATED: str = "hypertool.usage.estimated"
TRACE_STATUS: str = "hypertool.trace.status"

# Values
TYPE_SPAN = "span"
TYPE_GENERATION = "generation"
LEVEL_ERROR = "ERROR"

# Cost: ``COST_DETAILS`` holds {"input", "output", "total"} in USD when the model's price is
# known; ``COST_KNOWN`` is False when it is not (never a silent 0).
COST_KNOWN: str = "hypertool.cost.known"
