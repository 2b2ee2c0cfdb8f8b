"""Langfuse prompt management over its public API, as langfuse 5.0.4 speaks it.

- Get: ``GET {host}/api/public/v2/prompts/{url-quoted name}`` with ``?version=N`` or
  ``?label=L`` (neither: the ``production`` label). The answer is a prompt: ``type``
  (``text``/``chat``), ``prompt`` (a string, or messages), ``name``, ``version``, ``config``,
  ``labels``, ``tags``.
- Create: ``POST {host}/api/public/v2/prompts`` with ``name``, ``prompt``, ``type``,
  ``config``, ``labels``, ``tags``, ``commitMessage``: a new version of the prompt.

Every request has a time bound; 429, 5xx and no answer are retried within it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from hypertool.instrumentation._log import logger
from hypertool.instrumentation.export.otlp_http import post_with_retries
from hypertool.instrumentation.export.public_api import PublicApi
from hypertool.instrumentation.export.scores import SCORE_RETRYABLE
from hypertool.instrumentation.model.prompts import (
    PROMPT_TYPES,
    SOURCE_LANGFUSE,
    ManagedPrompt,
    PromptError,
)
from hypertool.instrumentation.prompts.files import LocalPrompt, parse

if TYPE_CHECKING:
    import requests

PROMPTS_PATH = "/api/public/v2/prompts"
COMMIT_MESSAGE = "hypertool prompts push"


@dataclass(frozen=True)
class Fetched:
    """What asking Langfuse for a prompt gave.

    Attributes:
        prompt: The prompt, or None.
        status: The HTTP status (None: no answer within the time allowed).
        problem: Why there is no prompt ("HTTP 500", "timed out after 2 s", "not a prompt:
            …"); None when there is one.

    """

    prompt: ManagedPrompt | None
    status: int | None
    problem: str | None = None

    @property
    def not_found(self) -> bool:
        """Langfuse answered that there is no such prompt (or version, or label)."""
        return self.status == 404


def parse_prompt(body: Any, name: str) -> ManagedPrompt:
    """The prompt in a Langfuse answer.

    Raises:
        PromptError: the answer is not a prompt (``{}``, a missing or ill-typed field, another
            prompt's name); the message names the field.

    """
    where = f"the answer for prompt {name!r}"
    if not isinstance(body, dict):
        raise PromptError(f"{where} is not a prompt (a JSON {type(body).__name__})")
    missing = [key for key in ("name", "version", "type", "prompt") if key not in body]
    if missing:
        raise PromptError(f"{where} is not a prompt: no {', '.join(missing)}")
    kind, version = body["type"], body["version"]
    if kind not in PROMPT_TYPES:
        raise PromptError(f"{where} is not a prompt: type {kind!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise PromptError(f"{where} is not a prompt: version {version!r}")
    if body["name"] != name:
        raise PromptError(f"{where} is prompt {body['name']!r}")
    template = body["prompt"]
    if kind == "chat" and isinstance(template, list):
        # Langfuse marks each message ("type": "chatmessage"); the local form has no mark.
        template = [
            {k: v for k, v in message.items() if not (k == "type" and v == "chatmessage")}
            if isinstance(message, dict)
            else message
            for message in template
        ]
    config = body.get("config")
    local = parse(
        {"type": kind, "prompt": template, "config": config if isinstance(config, dict) else {}},
        name,
        where,
    )
    labels = body.get("labels") or []
    tags = body.get("tags") or []
    return ManagedPrompt(
        name=name,
        version=version,
        type=local.type,
        prompt=local.prompt,
        config=local.config,
        labels=tuple(str(label) for label in labels) if isinstance(labels, list) else (),
        tags=tuple(str(tag) for tag in tags) if isinstance(tags, list) else (),
        source=SOURCE_LANGFUSE,
    )


class PromptApi(PublicApi):
    """Langfuse's prompt endpoints for one host and key pair.

    Args:
        host: The Langfuse URL.
        public_key: Langfuse public key.
        secret_key: Langfuse secret key (never logged).
        timeout: Seconds a request may take, retries included, unless told otherwise.
        session: A ``requests.Session``; one is made when None.

    """

    def __init__(
        self,
        host: str,
        public_key: str,
        secret_key: str,
        *,
        timeout: float,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__(
            host, PROMPTS_PATH, public_key, secret_key, timeout=timeout, session=session
        )

    def fetch(
        self,
        name: str,
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: float | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Fetched:
        """Ask for ``name`` at ``version`` or ``label`` (default: ``production``); never
        raises, never takes longer than ``timeout`` (retries included) plus a connect.

        ``progress`` is told of each failed attempt ("Langfuse answered HTTP 500"), for a
        caller who stopped waiting before the retries ended.
        """
        params = {"version": str(version)} if version is not None else {}
        if label is not None and version is None:
            params["label"] = label
        url = f"{self.url}/{quote(name, safe='')}"
        answer: list[Any] = [None]

        def get(left: float) -> int | None:
            try:
                response: Any = self.session.get(
                    url, params=params, headers=self.headers, timeout=left
                )
            except Exception as exc:
                answer[0] = f"no answer ({type(exc).__name__})"
                logger.debug("fetching prompt %r failed: %s", name, exc)
                if progress is not None:
                    progress(answer[0])
                return None
            answer[0] = response
            status = int(response.status_code)
            if progress is not None and not 200 <= status < 300:
                progress(f"Langfuse answered HTTP {status}")
            return status

        limit = self.timeout if timeout is None else timeout
        status = post_with_retries(get, limit, self.stopped, SCORE_RETRYABLE)
        if status is None:
            reason = answer[0] if isinstance(answer[0], str) else f"no answer within {limit:g} s"
            return Fetched(None, None, reason)
        if status == 404:
            return Fetched(None, 404, "not found in Langfuse (HTTP 404)")
        if not 200 <= status < 300:
            return Fetched(None, status, f"Langfuse answered HTTP {status}")
        try:
            return Fetched(parse_prompt(answer[0].json(), name), status)
        except ValueError as exc:  # PromptError, or a body that is not JSON
            return Fetched(None, status, str(exc) if isinstance(exc, PromptError) else "not JSON")

    def create(self, prompt: LocalPrompt, labels: list[str]) -> ManagedPrompt:
        """Create a new version of ``prompt`` in Langfuse; the version Langfuse made.

        Raises:
            PromptError: Langfuse did not create it (its status and message).

        """
        body = {
            "name": prompt.name,
            "prompt": prompt.prompt if isinstance(prompt.prompt, str) else list(prompt.prompt),
            "type": prompt.type,
            "config": prompt.config,
            "labels": labels,
            "tags": list(prompt.tags),
            "commitMessage": COMMIT_MESSAGE,
        }
        try:
            response: Any = self.session.post(
                self.url,
                data=json.dumps(body, ensure_ascii=False).encode(),
                headers={**self.headers, "Content-Type": "application/json"},
                timeout=self.timeout,
            )
        except Exception as exc:
            raise PromptError(f"{prompt.name!r}: {self.url} did not answer ({exc})") from None
        status = int(response.status_code)
        if not 200 <= status < 300:
            detail = response.text[:200].strip()
            raise PromptError(f"{prompt.name!r}: Langfuse answered HTTP {status} {detail}".strip())
        try:
            return parse_prompt(response.json(), prompt.name)
        except ValueError as exc:
            raise PromptError(f"{prompt.name!r}: created, but the answer is odd: {exc}") from None
