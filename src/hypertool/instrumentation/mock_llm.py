"""A deterministic stand-in for an LLM API, returning OpenAI-shaped responses with usage."""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

from hypertool.instrumentation.model.usage import estimate_tokens

# Output length per persona: how verbose each role's answers are.
_COMPLETION_TOKENS = {
    "backend-engineer": 773,
    "testing-specialist": 640,
    "devops-engineer": 420,
}
_DEFAULT_COMPLETION_TOKENS = 500
SYSTEM_PROMPT_TOKENS = 60
"""Prompt tokens of the mock's system prompt, reported as cached (OpenAI's ``cached_tokens``)."""


class MockRateLimitError(RuntimeError):
    """What the mock raises when asked to fail: a provider's 429."""


async def mock_llm(
    prompt: str, *, persona: str = "", latency_s: float = 0.0, fail: bool = False
) -> dict[str, Any]:
    """Answer ``prompt`` like a chat completion API would, with exact usage.

    The answer and the token counts depend only on the prompt and persona, so runs repeat.
    """
    if latency_s:
        await asyncio.sleep(latency_s)
    if fail:
        raise MockRateLimitError("429 Too Many Requests: rate limit reached for gpt-4, retry")
    # A system prompt the provider also counts, and serves from its prompt cache.
    prompt_tokens = estimate_tokens(prompt) + SYSTEM_PROMPT_TOKENS
    completion_tokens = _COMPLETION_TOKENS.get(persona, _DEFAULT_COMPLETION_TOKENS)
    return {
        "id": f"mock-{zlib.crc32(f'{persona}:{prompt}'.encode()):08x}",
        "object": "chat.completion",
        "model": "gpt-4",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"Mock LLM response for: {prompt}"},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": SYSTEM_PROMPT_TOKENS},
        },
    }
