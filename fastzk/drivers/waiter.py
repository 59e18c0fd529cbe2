"""How a thread waits for the reply to its own request.

:class:`Waiter` is the result object of one synchronous call: whichever
thread reads the reply completes it, and the calling thread sleeps on it.
:func:`bounded` puts a deadline on every synchronous call the current
thread makes inside it; :func:`current_deadline` reads that deadline.
"""

from __future__ import annotations

import threading
from _thread import allocate_lock
from contextlib import contextmanager
from typing import Any, Iterator, Optional

__all__ = ["Waiter", "bounded", "current_deadline"]


class Waiter(object):
    """The completion of one synchronous call.

    Set by whichever thread reads its reply; the caller's thread waits on a
    plain lock used as a binary semaphore.  Extra wake-ups are harmless: the
    caller re-checks ``done``.
    """

    __slots__ = ("done", "value", "error", "_lock")

    def __init__(self) -> None:
        self.done = False
        self.value: Any = None
        self.error: Optional[BaseException] = None
        self._lock = allocate_lock()
        self._lock.acquire()

    def set(self, value: Any = None) -> None:
        """Complete the call with ``value`` and wake its caller."""
        self.value = value
        self.done = True
        self.wake()

    def set_exception(self, error: BaseException) -> None:
        """Complete the call with ``error`` and wake its caller."""
        self.error = error
        self.done = True
        self.wake()

    def wake(self) -> None:
        """Wake the caller (to look again at ``done`` or the read role)."""
        try:
            self._lock.release()
        except RuntimeError:  # already awake
            pass

    def park(self, timeout: float) -> None:
        """Sleep until woken or ``timeout`` seconds have passed."""
        self._lock.acquire(True, timeout)

    def result(self) -> Any:
        """The reply's value, or raise its error."""
        if self.error is not None:
            raise self.error
        return self.value


class _Bounds(threading.local):
    """Per thread, the deadline :func:`bounded` set (None: none).

    A class default, not a missing attribute: looking up a missing
    attribute of a thread-local object raises (and formats) an
    AttributeError inside getattr, on every call."""

    deadline: Optional[float] = None


_bounds = _Bounds()


def current_deadline() -> Optional[float]:
    """The deadline of the innermost :func:`bounded` around the current
    thread, or None."""
    return _bounds.deadline


@contextmanager
def bounded(deadline: Optional[float]) -> Iterator[None]:
    """Bound this thread's synchronous calls by ``deadline``.

    A context manager: inside it every synchronous call made by the current
    thread waits for its reply no later than ``deadline`` (a
    :func:`time.monotonic` value, or None for no bound) and raises
    :class:`~kazoo.handlers.threading.KazooTimeoutError` after it.  Nested
    bounds keep the earlier deadline.
    """
    outer = _bounds.deadline
    if outer is not None and (deadline is None or outer < deadline):
        deadline = outer
    _bounds.deadline = deadline
    try:
        yield
    finally:
        _bounds.deadline = outer
