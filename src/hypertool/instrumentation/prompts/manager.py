"""Managed prompts: :meth:`PromptManager.get` answers from Langfuse, the local prompts folder, or
a fallback given in code, in that order, and never waits longer than its time bound.

With Langfuse keys, a prompt is fetched from Langfuse and cached per name and version or label
for ``ttl`` seconds (60, as langfuse's SDK); an expired entry is served while it is refreshed in
the background. When Langfuse has no such prompt (404), cannot be reached within the time
bound (``HYPERTOOL_PROMPT_TIMEOUT``), or answers something that is not a prompt, the local
folder answers, else the fallback; that answer is cached briefly and Langfuse is asked again in
the background. Without keys, the local folder, else the fallback.

A local prompt's version is its number in the store's history of that name (1, 2, 3…, a new
one whenever its text changes); ``version=N`` serves an older text from that history; labels
do not apply to local prompts. The fallback is never linked to generations.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hypertool.instrumentation._fork import reset_in_child
from hypertool.instrumentation._log import logger, warn_once
from hypertool.instrumentation.model.prompts import (
    SOURCE_FALLBACK,
    SOURCE_LOCAL,
    ManagedPrompt,
    PromptError,
)
from hypertool.instrumentation.prompts import files
from hypertool.instrumentation.prompts.cache import CacheKey, Fetcher, PromptCache, cache_key
from hypertool.instrumentation.prompts.langfuse_api import Fetched, PromptApi

DEFAULT_TTL_S = 60.0
RETRY_AFTER_FAILURE_S = 10.0
"""How long an answer given because Langfuse failed is served before Langfuse is asked again
(in the background)."""


class PromptVersions(Protocol):
    """Where local prompt versions are numbered and kept (the store, or memory)."""

    def record(self, name: str, kind: str, prompt: str, config: str) -> int:
        """The version of this content of ``name`` (a new one when it differs)."""

    def get(self, name: str, version: int) -> Mapping[str, Any] | None:
        """A recorded version (``type``, ``prompt``, ``config``), or None."""


@dataclass
class MemoryVersions:
    """Versions kept in this process only (the store is off): numbered from 1 per name."""

    _versions: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        reset_in_child(self, MemoryVersions._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def record(self, name: str, kind: str, prompt: str, config: str) -> int:
        """The version of this content of ``name``."""
        with self._lock:
            history = self._versions.setdefault(name, [])
            if not history or history[-1] != (kind, prompt, config):
                history.append((kind, prompt, config))
            return len(history)

    def get(self, name: str, version: int) -> Mapping[str, Any] | None:
        """A version kept in this process."""
        with self._lock:
            history = self._versions.get(name, [])
            if not 1 <= version <= len(history):
                return None
            kind, prompt, config = history[version - 1]
        return {
            "type": kind,
            "prompt": prompt if kind == "text" else json.loads(prompt),
            "config": json.loads(config),
        }


def _same(remote: ManagedPrompt, local: files.LocalPrompt) -> bool:
    """True when Langfuse's version has the local file's type, template and config."""
    return (
        remote.type == local.type
        and remote.prompt == local.prompt
        and dict(remote.config) == local.config
    )


def _fallback(name: str, fallback: str | Sequence[Mapping[str, Any]]) -> ManagedPrompt:
    if isinstance(fallback, str):
        return ManagedPrompt(name, 0, "text", fallback, source=SOURCE_FALLBACK)
    local = files.parse({"type": "chat", "prompt": list(fallback)}, name, f"fallback of {name!r}")
    return ManagedPrompt(name, 0, "chat", local.prompt, source=SOURCE_FALLBACK)


class PromptManager:
    """Gets managed prompts (see the module docstring).

    Args:
        api: Langfuse's prompt API; None without keys.
        directories: Local prompt folders, the first one's file winning.
        versions: Where local versions are numbered.
        timeout: Longest a :meth:`get` waits for Langfuse.
        ttl: Seconds an entry is fresh.

    """

    def __init__(
        self,
        api: PromptApi | None,
        directories: Sequence[Path],
        versions: PromptVersions,
        *,
        timeout: float,
        ttl: float = DEFAULT_TTL_S,
    ) -> None:
        self.api = api
        self.directories = list(directories)
        self.versions = versions
        self.timeout = timeout
        self.ttl = ttl
        self.cache = PromptCache()
        self._fetcher = Fetcher()
        # What the last background fetch of a key answered (or its last failed attempt so far),
        # for the get waiting on it.
        self._answers: dict[CacheKey, Fetched] = {}
        self._attempts: dict[CacheKey, str] = {}

    def get(
        self,
        name: str,
        *,
        version: int | None = None,
        label: str | None = None,
        fallback: str | Sequence[Mapping[str, Any]] | None = None,
        cache_ttl_seconds: float | None = None,
    ) -> ManagedPrompt:
        """The prompt ``name`` at ``version`` or ``label`` (default: ``production``).

        Raises:
            PromptError: the request is malformed, or no source has the prompt and there is no
                fallback; the message says what each source answered.

        """
        files.check_name(name)
        if version is not None and label is not None:
            raise PromptError(f"prompt {name!r}: give a version or a label, not both")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise PromptError(f"prompt {name!r}: version {version!r} is not a whole number")
        if version is not None and version < 1:
            raise PromptError(f"prompt {name!r}: version {version} must be at least 1")
        if fallback is not None and not isinstance(fallback, str | list | tuple):
            raise PromptError(f"prompt {name!r}: a fallback is a string or a list of messages")
        ttl = self.ttl if cache_ttl_seconds is None else max(float(cache_ttl_seconds), 0.0)
        key = cache_key(name, version, label)
        entry = self.cache.get(key) if ttl > 0 else None
        if entry is not None and not entry.expired:
            return entry.prompt
        if self.api is None:
            try:
                return self._resolve(name, version, fallback, None, key, ttl)
            except PromptError:
                if entry is None:
                    raise
                logger.debug("prompt %r: serving the last good local version", name)
                return entry.prompt
        if entry is not None:  # stale: served while one background fetch refreshes it
            self._fetcher.submit(key, lambda: self._refresh(key, name, version, label, ttl))
            return entry.prompt
        job = self._fetcher.submit(key, lambda: self._refresh(key, name, version, label, ttl))
        job.done.wait(self.timeout)
        if job.done.is_set():
            answer = self._answers.pop(key, None)
        else:  # still retrying: say what it got so far
            answer = Fetched(None, None, self._attempts.get(key))
        if answer is not None and answer.prompt is not None:
            return answer.prompt
        return self._resolve(name, version, fallback, answer, key, ttl)

    def _refresh(
        self, key: CacheKey, name: str, version: int | None, label: str | None, ttl: float
    ) -> None:
        """Ask Langfuse (on the fetch thread); cache what it gave, or keep serving what is."""
        assert self.api is not None
        self._attempts.pop(key, None)
        fetched = self.api.fetch(
            name,
            version=version,
            label=label,
            timeout=self.timeout,
            progress=lambda problem: self._attempts.__setitem__(key, problem),
        )
        self._answers[key] = fetched
        if fetched.prompt is not None:
            if ttl > 0:
                self.cache.set(key, fetched.prompt, ttl)
            return
        logger.debug("fetching prompt %r: %s", name, fetched.problem)
        entry = self.cache.get(key)
        if entry is not None:  # keep serving it; ask again a little later
            delay = ttl if fetched.not_found else min(ttl, RETRY_AFTER_FAILURE_S)
            self.cache.set(key, entry.prompt, delay)

    # -- local folder and fallback ---------------------------------------------------------
    def local(self, name: str, version: int | None = None) -> ManagedPrompt | None:
        """The local prompt ``name`` (its current file, or ``version`` from the history).

        Raises:
            PromptError: its file is malformed.

        """
        found = files.find(self.directories, name)
        if found is not None:
            prompt, config = found.content()
            current = self.versions.record(name, found.type, prompt, config)
            if version is None or version == current:
                return ManagedPrompt(
                    name,
                    current,
                    found.type,
                    found.prompt,
                    found.config,
                    tags=found.tags,
                    source=SOURCE_LOCAL,
                )
        if version is None:
            return None
        stored = self.versions.get(name, version)
        if stored is None:
            return None
        template = stored["prompt"]
        return ManagedPrompt(
            name,
            version,
            stored["type"],
            template if isinstance(template, str) else tuple(template),
            dict(stored.get("config") or {}),
            source=SOURCE_LOCAL,
        )

    def _resolve(
        self,
        name: str,
        version: int | None,
        fallback: str | Sequence[Mapping[str, Any]] | None,
        langfuse: Fetched | None,
        key: CacheKey,
        ttl: float,
    ) -> ManagedPrompt:
        """The local prompt, else the fallback; cached (briefly when Langfuse failed).

        ``langfuse`` is what Langfuse answered (None: not asked, or no answer in time).
        """
        tried = []
        if self.api is not None:
            problem = langfuse.problem if langfuse is not None else None
            tried.append(f"Langfuse: {problem or f'no answer within {self.timeout:g} s'}")
        failed = self.api is not None and not (langfuse is not None and langfuse.not_found)
        try:
            found = self.local(name, version)
        except PromptError as exc:
            if fallback is None:
                raise
            warn_once(f"prompt-file-{name}", "%s; the fallback is used", exc)
            found = None
        if found is None:
            folders = ", ".join(str(d) for d in self.directories) or "none"
            what = f"version {version}" if version is not None else "it"
            tried.append(f"local prompts ({folders}): no {what}")
            if fallback is None:
                raise PromptError(f"prompt {name!r} not found: {'; '.join(tried)}; no fallback")
            found = _fallback(name, fallback)
        if failed:
            warn_once(
                f"prompt-degraded-{name}",
                "prompt %r: %s; using the %s (version %d%s) until Langfuse answers",
                name,
                tried[0],
                found.source,
                found.version,
                ", not linked" if found.is_fallback else "",
            )
        if ttl > 0:
            self.cache.set(key, found, min(ttl, RETRY_AFTER_FAILURE_S) if failed else ttl)
        return found

    def push(self, label: str | None) -> list[dict[str, Any]]:
        """Prompts as code: a new Langfuse version of each local prompt whose content differs
        from Langfuse's latest version (or that Langfuse does not have), labelled ``label``.

        Returns:
            One row per prompt file: ``name``, ``local_version``, ``action`` (``created``,
            ``unchanged`` or ``failed``), ``langfuse_version``, ``error``.

        Raises:
            PromptError: Langfuse keys are not set.

        """
        if self.api is None:
            raise PromptError(
                "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are not set: nowhere to push to"
            )
        prompts, problems = files.scan(self.directories)
        rows: list[dict[str, Any]] = [
            {
                "name": None,
                "local_version": None,
                "action": "failed",
                "langfuse_version": None,
                "error": problem,
            }
            for problem in problems
        ]
        for local in prompts:
            prompt, config = local.content()
            row: dict[str, Any] = {
                "name": local.name,
                "local_version": self.versions.record(local.name, local.type, prompt, config),
                "action": "unchanged",
                "langfuse_version": None,
                "error": None,
            }
            latest = self.api.fetch(local.name, label="latest")
            if latest.prompt is not None and _same(latest.prompt, local):
                row["langfuse_version"] = latest.prompt.version
            elif latest.prompt is None and not latest.not_found:
                row.update(action="failed", error=latest.problem)
            else:
                try:
                    created = self.api.create(local, [label] if label else [])
                    row.update(action="created", langfuse_version=created.version)
                except PromptError as exc:
                    row.update(action="failed", error=str(exc))
            rows.append(row)
        return rows

    def close(self) -> None:
        """Stop the background fetches and release connections."""
        self._fetcher.stop()
        if self.api is not None:
            self.api.close()
