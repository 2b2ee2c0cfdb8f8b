"""What this library's state becomes in a forked child, and delivery when a child exits.

After ``fork`` only the forking thread lives on in the child: a lock another thread held stays
held for ever, a queue holds the parent's work (the parent still delivers it), a thread object
is dead, and a database or HTTP connection is shared with the parent. Every object with such
state registers a reset here, held weakly (registering keeps nothing alive); the child runs the
resets as ``fork`` returns, before anything else. A reset makes fresh locks, queues and events
(an inherited lock is never acquired) and forgets threads and connections, which are made again
on first use in the child: the at-fork work stays small and a child that records nothing starts
no thread.

Exit: ``atexit`` runs when the interpreter exits normally (``sys.exit``, the end of the main
module, a gunicorn worker). A ``multiprocessing`` child (``Pool`` workers, ``Process``) ends
with ``os._exit`` after running ``multiprocessing.util`` finalizers instead, so in such a
child the same exit hooks are also registered as a ``multiprocessing.util.Finalize``.
"""

from __future__ import annotations

import atexit
import os
import sys
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# Runs before multiprocessing's own finalizers of priority 0 (its queues' feeder threads).
EXIT_PRIORITY = 10

_resets: dict[int, tuple[weakref.ref[Any], Callable[[Any], None]]] = {}
# Objects whose operation in progress must finish before a fork (a SQLite write transaction
# cannot be carried into a child): acquire before the fork, release after it in the parent.
_holds: dict[int, tuple[weakref.ref[Any], Callable[[Any], bool], Callable[[Any], None]]] = {}
_held: list[tuple[Any, Callable[[Any], None]]] = []
_module_resets: list[Callable[[], None]] = []
_exit_hooks: list[Callable[[], None]] = []
_hook_installed = False
_finalizer_pid = 0
_after_forker_registered = False
_kept: list[Any] = []


def reset_in_child(obj: T, reset: Callable[[T], None]) -> None:
    """Call ``reset(obj)`` in every child forked while ``obj`` is alive (held weakly).

    ``reset`` must be a plain function (or an unbound method), never bound to ``obj``: a bound
    method would keep ``obj`` alive for ever.
    """
    key = id(obj)

    def forget(_ref: weakref.ref[Any], key: int = key) -> None:
        entry = _resets.get(key)
        if entry is not None and entry[0] is _ref:
            del _resets[key]

    _resets[key] = (weakref.ref(obj, forget), reset)
    _install()


def hold_during_fork(obj: T, acquire: Callable[[T], bool], release: Callable[[T], None]) -> None:
    """Call ``acquire(obj)`` in the forking thread just before every fork while ``obj`` is
    alive (held weakly), and ``release(obj)`` after it in the parent when it returned True.

    For an operation that must not be cut in half by a fork (a database write): the child
    then starts from a consistent state, and resets whatever the acquire took (its lock is
    made anew). ``acquire`` should wait a bounded time and return False when it gave up.
    """
    key = id(obj)

    def forget(_ref: weakref.ref[Any], key: int = key) -> None:
        entry = _holds.get(key)
        if entry is not None and entry[0] is _ref:
            del _holds[key]

    _holds[key] = (weakref.ref(obj, forget), acquire, release)
    _install()


def on_fork_in_child(reset: Callable[[], None]) -> None:
    """Call ``reset()`` in every child forked from now on (module-level state: locks)."""
    _module_resets.append(reset)
    _install()


def keep_forever(obj: object) -> None:
    """Never finalize ``obj`` in this process (an inherited SQLite connection).

    SQLite forbids closing in a child a connection the parent opened in the middle of a write
    transaction (it would be rolled back under the parent); the process's exit closes the file
    descriptor, which is safe.
    """
    try:
        import ctypes

        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
    except Exception:  # not CPython: a module-level list (cleared only at interpreter teardown)
        _kept.append(obj)


def at_exit(hook: Callable[[], None]) -> None:
    """Run ``hook`` when the process exits gracefully: ``atexit``, and in a
    ``multiprocessing`` child (which ends with ``os._exit``) its finalizers as well.

    ``hook`` must be idempotent: a child started by the ``spawn`` method runs both.
    """
    if hook in _exit_hooks:
        return
    _exit_hooks.append(hook)
    atexit.register(hook)
    _install()
    mp = sys.modules.get("multiprocessing")
    if mp is not None and mp.parent_process() is not None:
        _finalize_in_multiprocessing_child()


def _run_exit_hooks() -> None:
    for hook in list(_exit_hooks):
        hook()


def _finalize_in_multiprocessing_child(_anchor: object = None) -> None:
    global _finalizer_pid
    if _finalizer_pid == os.getpid() or not _exit_hooks:
        return
    _finalizer_pid = os.getpid()
    from multiprocessing import util

    util.Finalize(None, _run_exit_hooks, exitpriority=EXIT_PRIORITY)


class _Anchor:
    """multiprocessing's after-fork registry holds its objects weakly: this one lives for ever."""


_ANCHOR = _Anchor()


def _before_fork() -> None:
    _held.clear()
    seen: set[int] = set()
    # Again until nothing new: an object registered by another thread while we waited (a store
    # being opened) is taken too. Once this returns no other thread runs Python code until the
    # fork, and an object not registered yet has no operation in progress.
    while pending := [(key, entry) for key, entry in list(_holds.items()) if key not in seen]:
        for key, (ref, acquire, release) in pending:
            seen.add(key)
            obj = ref()
            if obj is not None and acquire(obj):
                _held.append((obj, release))


def _after_fork_in_parent() -> None:
    held = list(_held)
    _held.clear()
    for obj, release in reversed(held):
        release(obj)


def _after_fork_in_child() -> None:
    global _after_forker_registered
    _held.clear()  # what the parent holds; the resets below make it anew
    for module_reset in list(_module_resets):
        module_reset()
    for ref, reset in list(_resets.values()):
        obj = ref()
        if obj is not None:
            reset(obj)
    # A multiprocessing child runs its after-fork callbacks once this returns (it cleared its
    # finalizers just before): register its exit finalizer there. Registered once, inherited by
    # grandchildren.
    util = sys.modules.get("multiprocessing.util")
    if util is not None and not _after_forker_registered:
        _after_forker_registered = True
        util.register_after_fork(_ANCHOR, _finalize_in_multiprocessing_child)


def _install() -> None:
    global _hook_installed
    if _hook_installed:
        return
    _hook_installed = True
    if hasattr(os, "register_at_fork"):  # POSIX only; elsewhere there is no fork
        os.register_at_fork(
            before=_before_fork,
            after_in_parent=_after_fork_in_parent,
            after_in_child=_after_fork_in_child,
        )
