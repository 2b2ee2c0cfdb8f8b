"""Work handed over by instrumented calls, done on a recorder thread instead of the caller's.

Reads that need it complete (budgets, flush, exit) call :meth:`DeferredWork.drain` first, so
nothing handed over is missed. When the queue is full the caller does its own item: back-pressure
instead of loss.

In a forked child the queue starts empty (what the parent handed over is the parent's to record),
with new locks, and the thread starts again on the child's first item.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from hypertool.instrumentation._fork import reset_in_child
from hypertool.instrumentation._log import logger

_WAKE_AT = 256
_INTERVAL_S = 0.05


class DeferredWork:
    """A bounded queue of ``fn(*args)`` calls and the daemon thread that runs them."""

    def __init__(self, max_pending: int) -> None:
        self.max_pending = max_pending
        self._items: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        reset_in_child(self, DeferredWork._after_fork)

    def _after_fork(self) -> None:
        self._items = deque()
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._worker = None
        self._start_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def defer(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` soon on the recorder thread (now, when the queue is full)."""
        items = self._items
        if len(items) >= self.max_pending:
            _run(fn, args)
            return
        items.append((fn, args))
        if self._worker is None:
            self._start()
        elif len(items) >= _WAKE_AT and not self._wake.is_set():
            self._wake.set()

    def drain(self, timeout: float | None = None) -> bool:
        """Run everything handed over so far, in this thread, for at most ``timeout`` seconds.

        One item at a time under the lock, so a bounded drain (``flush``, exit) never waits for
        the recorder thread's whole backlog, and a drain that returns True saw no item still
        running elsewhere.

        Returns:
            True when nothing handed over is left (False: the time ran out first).

        """
        # A timeout past what a lock wait accepts (float("inf")) means no limit.
        unbounded = timeout is None or timeout >= threading.TIMEOUT_MAX
        deadline = None if unbounded else time.monotonic() + max(timeout or 0.0, 0.0)
        items = self._items
        while True:
            if deadline is None:
                self._lock.acquire()
            elif not self._lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
                return False  # an item is still running on the recorder thread
            try:
                if not items:
                    return True
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                try:
                    fn, args = items.popleft()
                except IndexError:
                    return True
                _run(fn, args)
            finally:
                self._lock.release()

    def discard(self) -> int:
        """Forget what is still handed over (at exit, past the time allowed); returns how much.

        Without the lock: the recorder thread may hold it for long under GIL contention.
        """
        return self.discard_counting(lambda fn: False)[0]

    def discard_counting(self, matches: Callable[[Callable[..., None]], bool]) -> tuple[int, int]:
        """:meth:`discard`, also counting the items whose function ``matches`` (scores, among
        generations): (all discarded, those matching).
        """
        count = matched = 0
        while True:
            try:
                fn, _ = self._items.popleft()
            except IndexError:
                return count, matched
            count += 1
            if matches(fn):
                matched += 1

    def _start(self) -> None:
        with self._start_lock:
            if self._worker is not None:
                return
            self._worker = threading.Thread(
                target=_work_forever,
                args=(weakref.ref(self),),
                name="hypertool-recorder",
                daemon=True,
            )
        self._worker.start()


def _run(fn: Callable[..., None], args: tuple[Any, ...]) -> None:
    try:
        fn(*args)
    except Exception:
        logger.debug("recording a generation failed", exc_info=True)


def _work_forever(ref: weakref.ref[DeferredWork]) -> None:
    while True:
        work = ref()
        if work is None:
            return
        wake = work._wake
        del work  # hold no strong reference while waiting
        wake.wait(_INTERVAL_S)
        wake.clear()
        work = ref()
        if work is None:
            return
        work.drain()
        del work
