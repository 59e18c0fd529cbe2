"""The result of one asynchronous request of the thread client.

kazoo's threading handler gives each request an
:class:`~kazoo.handlers.threading.AsyncResult` built around a
:class:`threading.Condition`: a Python object whose making, entering and
leaving run Python code, once or twice per request (about 0.8 us of the
1.5 us a result costs to make, set and read).  :class:`RequestResult` is
the same class (a subclass: same methods, same callbacks on the handler's
completion thread) over :class:`_Condition`, the three operations of a
condition it uses on a re-entrant lock implemented in C.
"""

from __future__ import annotations

from _thread import RLock, allocate_lock
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, List, Optional

from kazoo.handlers.threading import AsyncResult, SequentialThreadingHandler
from kazoo.handlers.utils import AsyncResult as _BaseResult
from kazoo.interfaces import IAsyncResult

__all__ = ["RequestResult", "result_factory"]


class _Condition(RLock):  # type: ignore[misc]
    """What :class:`~kazoo.handlers.utils.AsyncResult` uses of
    :class:`threading.Condition`: ``with``, :meth:`wait` and
    :meth:`notify_all`, the way :class:`threading.Condition` does them.

    The lock itself is ``_thread.RLock`` (re-entrant, as kazoo's: a
    callback run while the result is set may read it), so ``with`` runs
    no Python code; a waiter's own lock is made only when someone waits.
    """

    #: The locks of the threads in :meth:`wait`; the class's None until
    #: one waits (no instance dictionary is made before).
    _waiters: Optional[List[Any]] = None

    if TYPE_CHECKING:
        # _thread.RLock's, for threading.Condition, untyped.
        def _release_save(self) -> Any: ...

        def _acquire_restore(self, state: Any) -> None: ...

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Release the lock, sleep until :meth:`notify_all` or
        ``timeout`` seconds, take the lock back; True when notified.
        The lock must be held."""
        waiter = allocate_lock()
        waiter.acquire()
        if self._waiters is None:
            self._waiters = [waiter]
        else:
            self._waiters.append(waiter)
        saved = self._release_save()
        notified = False
        try:
            if timeout is None:
                notified = waiter.acquire()
            elif timeout > 0:
                notified = waiter.acquire(True, timeout)
            else:
                notified = waiter.acquire(False)
            return notified
        finally:
            self._acquire_restore(saved)
            waiters = self._waiters
            if not notified and waiters is not None and waiter in waiters:
                waiters.remove(waiter)

    def notify_all(self) -> None:
        """Wake every thread in :meth:`wait`.  The lock must be held."""
        waiters = self._waiters
        if waiters:
            self._waiters = None
            for waiter in waiters:
                waiter.release()


class RequestResult(AsyncResult):  # type: ignore[misc]
    """kazoo's threading :class:`~kazoo.handlers.threading.AsyncResult`,
    cheaper to make and to complete (see :class:`_Condition`).

    :param handler: the client's
                    :class:`~kazoo.handlers.threading.SequentialThreadingHandler`.
    """

    def __init__(self, handler: SequentialThreadingHandler) -> None:
        # kazoo's handler-independent constructor, given this condition.
        _BaseResult.__init__(self, handler, _Condition,
                             handler.timeout_exception)


def result_factory(handler: SequentialThreadingHandler
                   ) -> Callable[[], IAsyncResult]:
    """How the client makes the result of an asynchronous request:
    :class:`RequestResult`, unless ``handler``'s class makes its own
    (overrides ``async_result``)."""
    if type(handler).async_result is SequentialThreadingHandler.async_result:
        return partial(RequestResult, handler)
    make: Callable[[], IAsyncResult] = handler.async_result
    return make
