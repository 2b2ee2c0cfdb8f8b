"""The prompt cache and the thread that fetches prompts off the caller's path.

Entries live ``ttl`` seconds (60 by default, as langfuse's SDK). An expired entry is still
served while one background fetch per key refreshes it; a fetch the caller stops waiting for
goes on in the background and fills the cache when it ends.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from hypertool.instrumentation._fork import reset_in_child
from hypertool.instrumentation._log import logger
from hypertool.instrumentation.model.prompts import ManagedPrompt

CacheKey = tuple[str, str]
"""(name, ``version:N`` or ``label:L``), as langfuse's SDK keys its cache."""


def cache_key(name: str, version: int | None, label: str | None) -> CacheKey:
    """The cache key of a request (no version and no label: the ``production`` label)."""
    if version is not None:
        return name, f"version:{version}"
    return name, f"label:{label or 'production'}"


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached prompt; ``expires`` on the monotonic clock."""

    prompt: ManagedPrompt
    expires: float

    @property
    def expired(self) -> bool:
        """True once its time is up (it is still served while refreshed)."""
        return time.monotonic() >= self.expires


class PromptCache:
    """Prompts by cache key, safe to share between threads."""

    def __init__(self) -> None:
        self._entries: dict[CacheKey, Entry] = {}
        self._lock = threading.Lock()
        reset_in_child(self, PromptCache._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # the entries stay: a child serves what its parent had

    def get(self, key: CacheKey) -> Entry | None:
        """The entry for ``key``, expired or not."""
        with self._lock:
            return self._entries.get(key)

    def set(self, key: CacheKey, prompt: ManagedPrompt, ttl: float) -> None:
        """Keep ``prompt`` for ``ttl`` seconds."""
        with self._lock:
            self._entries[key] = Entry(prompt, time.monotonic() + ttl)

    def delete(self, key: CacheKey) -> None:
        """Forget ``key``."""
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()


class Job:
    """One background fetch; ``done`` is set when it ended."""

    __slots__ = ("done", "key", "work")

    def __init__(self, key: CacheKey, work: Callable[[], None]) -> None:
        self.key = key
        self.work = work
        self.done = threading.Event()


class Fetcher:
    """One daemon thread running fetches, one at a time, at most one per key at once.

    Started on first use (and again in a forked child, whose parent's thread does not exist).
    """

    def __init__(self) -> None:
        self._stopped = False
        self._fresh_state()
        reset_in_child(self, Fetcher._fresh_state)

    def _fresh_state(self) -> None:
        """The queue, lock and thread of a new fetcher, or of a forked child's."""
        self._jobs: deque[Job] = deque()
        self._running: dict[CacheKey, Job] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, key: CacheKey, work: Callable[[], None]) -> Job:
        """Run ``work`` in the background, unless a fetch of ``key`` is already queued or
        running (then that one is returned).
        """
        with self._lock:
            job = self._running.get(key)
            if job is not None and not job.done.is_set():
                return job
            job = self._running[key] = Job(key, work)
            if self._stopped:
                job.done.set()
                return job
            self._jobs.append(job)
            if self._thread is None or not self._thread.is_alive():
                self._start()
        self._wake.set()
        return job

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hypertool-prompts", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(1.0)
            self._wake.clear()
            while self._jobs and not self._stopped:
                try:
                    job = self._jobs.popleft()
                except IndexError:
                    break
                try:
                    job.work()
                except Exception:  # a fetch never raises; this is a bug, not a user's error
                    logger.debug("background prompt fetch failed", exc_info=True)
                finally:
                    job.done.set()

    def stop(self) -> None:
        """Run no more fetches; the one running ends within its own time bound."""
        with self._lock:
            self._stopped = True
            jobs, self._jobs = list(self._jobs), deque()
        for job in jobs:
            job.done.set()
        self._wake.set()
