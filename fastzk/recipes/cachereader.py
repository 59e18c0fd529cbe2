"""The background thread of a TreeCache: it takes the notifications it is
sent, waits for the replies of the reads they became
(:mod:`fastzk.recipes.cacheops`) and applies them, strictly in the order
the reads were sent."""

import logging
import queue
import threading
from typing import Any, Callable, ClassVar, Deque, Optional

from kazoo.client import KazooClient
from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    SessionExpiredError,
)
from kazoo.protocol.states import EventType, KazooState, WatchedEvent
from kazoo.recipe.cache import TreeEvent

from fastzk.recipes.cacheops import RESYNC, Op, _CacheOps
from fastzk.protocol.watches import AddWatchMode

# The name of the module whose class this is part of (fastzk.cache).
log = logging.getLogger("fastzk.cache")

_CONNECTION_ERRORS = (ConnectionLoss, ConnectionClosedError,
                      SessionExpiredError)
_STOP = object()

# How many notifications are taken from the queue before the next reply is
# applied.
_BATCH = 256
# How often a thread waiting for a reply checks whether the cache closed.
_POLL = 0.25

class _CacheReader(_CacheOps):
    """The reads of a :class:`fastzk.cache.TreeCache`, made and applied on
    its own thread."""

    # Set by fastzk.cache.TreeCache (its class, then its __init__).
    STATE_STARTED: ClassVar[int]
    _client: KazooClient
    _persistent: bool
    _queue: "queue.Queue[Any]"
    _inflight: Deque[Op]
    _thread: Optional[threading.Thread]
    _is_initialized: bool
    _resync_queued: bool
    _walks: int
    _walk_failed: bool

    # -- notifications (client's event thread; never blocks) ------------------

    def _watcher(self, event: WatchedEvent) -> None:
        if self._state != self.STATE_STARTED:
            return
        if event.type == EventType.NONE:
            # Reconnected (persistent watch), or the session's one-shot
            # watches were dropped: anything may have changed.
            self._queue_resync()
        else:
            self._queue.put((event.type, event.path))

    def _session_watcher(self, state: str) -> None:
        if state == KazooState.SUSPENDED:
            self._queue.put((TreeEvent.CONNECTION_SUSPENDED,))
        elif state == KazooState.CONNECTED:
            self._queue.put((TreeEvent.CONNECTION_RECONNECTED,))
            self._queue_resync()
        elif state == KazooState.LOST:
            self._queue.put((TreeEvent.CONNECTION_LOST,))

    def _queue_resync(self) -> None:
        if not self._resync_queued:
            self._resync_queued = True
            self._queue.put(RESYNC)

    # -- the background thread -------------------------------------------------

    def _run(self) -> None:
        inflight = self._inflight
        notifications = self._queue
        try:
            while True:
                try:
                    if inflight:
                        item = notifications.get_nowait()
                    else:
                        item = notifications.get()
                except queue.Empty:
                    item = None
                taken = 0
                while item is not None:
                    if item is _STOP:
                        return
                    self._safely(self._take, item)
                    taken += 1
                    if taken >= _BATCH:
                        break
                    try:
                        item = notifications.get_nowait()
                    except queue.Empty:
                        item = None
                if inflight:
                    op = inflight.popleft()
                    if not self._wait(op):
                        return
                    self._safely(self._apply, op)
        finally:
            self._drain()

    def _wait(self, op: Op) -> bool:
        """Wait for an operation's replies; False if the cache closed."""
        for result in op.results:
            while result is not None and not result.wait(_POLL):
                if self._state == self.STATE_CLOSED:
                    return False
        return True

    def _drain(self) -> None:
        """On close: let the replies in flight arrive, so that the watches
        they set are known before :meth:`close` removes them."""
        if not self._client.connected:
            return
        for op in self._inflight:
            for result in op.results:
                if result is not None:
                    result.wait(5.0)
        self._inflight.clear()

    def _safely(self, func: Callable[..., None], *args: Any) -> None:
        try:
            func(*args)
        except Exception as exc:
            if isinstance(exc, _CONNECTION_ERRORS):
                log.debug("TreeCache read interrupted: %r", exc)
                self._read_lost()
                return
            self._fault(exc)

    def _read_lost(self) -> None:
        """A read failed with the connection: the cache is unsure of what
        it missed.  Read everything again once connected (the CONNECTED
        state change does it when the client is not connected now)."""
        if self._state == self.STATE_STARTED and self._client.connected:
            self._queue_resync()

    # -- the driver's part of the operations -------------------------------------

    def _add_recursive_watch(self) -> Any:
        return self._client.add_watch_async(
            self._root, self._watcher, AddWatchMode.PERSISTENT_RECURSIVE)

    def _value(self, result: Any) -> Any:
        return result.get()
