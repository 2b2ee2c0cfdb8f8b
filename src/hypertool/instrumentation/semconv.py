"""Span attribute keys: Langfuse's OTel ingestion contract, GenAI conventions, and ours.

The Langfuse keys are written out here rather than read from the ``langfuse`` package:
importing it costs ~0.3 s and ~740 modules and changes ``httpx``'s logging. A test compares
every key below with the installed langfuse's ``LangfuseOtelSpanAttributes``, so a rename there
cannot drift here unnoticed.
"""

from __future__ import annotations

from typing import Final

# Langfuse: trace level (ingestion v4 keeps them per observation as well)
TRACE_NAME: Final = "langfuse.trace.name"
USER_ID: Final = "user.id"
SESSION_ID: Final = "session.id"
TRACE_TAGS: Final = "langfuse.trace.tags"
TRACE_METADATA: Final = "langfuse.trace.metadata"

# Langfuse: observation level
OBSERVATION_TYPE: Final = "langfuse.observation.type"
OBSERVATION_METADATA: Final = "langfuse.observation.metadata"
LEVEL: Final = "langfuse.observation.level"
STATUS_MESSAGE: Final = "langfuse.observation.status_message"
INPUT: Final = "langfuse.observation.input"
OUTPUT: Final = "langfuse.observation.output"
MODEL: Final = "langfuse.observation.model.name"
MODEL_PARAMETERS: Final = "langfuse.observation.model.parameters"
USAGE_DETAILS: Final = "langfuse.observation.usage_details"
COST_DETAILS: Final = "langfuse.observation.cost_details"
COMPLETION_START_TIME: Final = "langfuse.observation.completion_start_time"
PROMPT_NAME: Final = "langfuse.observation.prompt.name"
PROMPT_VERSION: Final = "langfuse.observation.prompt.version"

# Langfuse: general
ENVIRONMENT: Final = "langfuse.environment"
RELEASE: Final = "langfuse.release"
VERSION: Final = "langfuse.version"

LANGFUSE_KEYS: Final = {
    "TRACE_NAME": TRACE_NAME,
    "TRACE_USER_ID": USER_ID,
    "TRACE_SESSION_ID": SESSION_ID,
    "TRACE_TAGS": TRACE_TAGS,
    "TRACE_METADATA": TRACE_METADATA,
    "OBSERVATION_TYPE": OBSERVATION_TYPE,
    "OBSERVATION_METADATA": OBSERVATION_METADATA,
    "OBSERVATION_LEVEL": LEVEL,
    "OBSERVATION_STATUS_MESSAGE": STATUS_MESSAGE,
    "OBSERVATION_INPUT": INPUT,
    "OBSERVATION_OUTPUT": OUTPUT,
    "OBSERVATION_MODEL": MODEL,
    "OBSERVATION_MODEL_PARAMETERS": MODEL_PARAMETERS,
    "OBSERVATION_USAGE_DETAILS": USAGE_DETAILS,
    "OBSERVATION_COST_DETAILS": COST_DETAILS,
    "OBSERVATION_COMPLETION_START_TIME": COMPLETION_START_TIME,
    "OBSERVATION_PROMPT_NAME": PROMPT_NAME,
    "OBSERVATION_PROMPT_VERSION": PROMPT_VERSION,
    "ENVIRONMENT": ENVIRONMENT,
    "RELEASE": RELEASE,
    "VERSION": VERSION,
}
"""Our Langfuse keys by the name of the same constant in ``LangfuseOtelSpanAttributes``."""

# OpenTelemetry GenAI semantic conventions
GEN_AI_OPERATION: Final = "gen_ai.operation.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_SYSTEM: Final = "gen_ai.system"
GEN_AI_PROVIDER: Final = "gen_ai.provider.name"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
HTTP_STATUS_CODE: Final = "http.response.status_code"
ERROR_TYPE: Final = "error.type"

# Hypertool
PERSONA: Final = "hypertool.persona"
CHATMODE: Final = "hypertool.chatmode"
WORKFLOW: Final = "hypertool.workflow"
STAGE: Final = "hypertool.stage"
USAGE_ESTIMATED: Final = "hypertool.usage.estimated"
# Usage and cost that are not the provider's (an estimate, or a failed call that reported none):
# kept for the local store, never sent as ``USAGE_DETAILS``/``COST_DETAILS`` or ``gen_ai.usage.*``,
# so Langfuse counts and prices such a call itself instead of showing a guess as fact.
USAGE_INPUT: Final = "hypertool.usage.input_tokens"
USAGE_OUTPUT: Final = "hypertool.usage.output_tokens"
COST_USD: Final = "hypertool.cost.usd"
# On every span of a stage's Langfuse trace: the id that trace has in Langfuse (the OpenTelemetry
# trace keeps the workflow's id; see ``model.handles.stage_trace_id``).
LANGFUSE_TRACE_ID: Final = "hypertool.langfuse.trace_id"
TRACE_STATUS: Final = "hypertool.trace.status"
STREAM: Final = "hypertool.stream"
STREAM_ABANDONED: Final = "hypertool.stream.abandoned"
STREAM_CHUNKS: Final = "hypertool.stream.chunks"
# Cost: ``COST_DETAILS`` holds {"input", "output", "total"} in USD when the model's price is
# known; ``COST_KNOWN`` is False when it is not (never a silent 0).
COST_KNOWN: Final = "hypertool.cost.known"
# Metadata past the first MAX_METADATA_KEYS of a span, folded into one JSON object: the key
# under ``langfuse.trace.metadata.`` / ``langfuse.observation.metadata.`` (a metadata entry in
# Langfuse), and, for raw ``attributes=``, an attribute of its own.
METADATA_OVERFLOW: Final = "hypertool_overflow"
ATTRIBUTES_OVERFLOW: Final = "hypertool.attributes_overflow"
OVERFLOW_OMITTED: Final = "hypertool_omitted_keys"

# Values
TYPE_SPAN: Final = "span"
TYPE_GENERATION: Final = "generation"
LEVEL_ERROR: Final = "ERROR"
LEVEL_WARNING: Final = "WARNING"
