"""The background thread of a TreeCache: the notifications it is sent,
turned into pipelined reads, and their replies applied strictly in the
order the reads were sent."""

import logging
import queue
import threading
from typing import Any, Callable, ClassVar, Deque, Optional, Tuple, cast

from kazoo.client import KazooClient
from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    NoNodeError,
    SessionExpiredError,
    UnimplementedError,
)
from kazoo.protocol.states import EventType, KazooState, WatchedEvent
from kazoo.recipe.cache import TreeEvent

from fastzk.cachemirror import _CacheMirror, _join, _parent
from fastzk.watches import AddWatchMode

# The name of the module whose class this is part of (fastzk.cache).
log = logging.getLogger("fastzk.cache")

_CONNECTION_ERRORS = (ConnectionLoss, ConnectionClosedError,
                      SessionExpiredError)
_STOP = object()
_RESYNC = object()

# How many notifications are taken from the queue before the next reply is
# applied.
_BATCH = 256
# How often a thread waiting for a reply checks whether the cache closed.
_POLL = 0.25

# Operations in flight, applied in the order they were sent.
_OP_NODE = 1  # get: (data, stat)
_OP_CHILDREN = 2  # get_children(include_data=True): (names, stat)
_OP_WALK = 3  # get and get_children of one node during a (re)load
_OP_EXISTS = 4  # exists on the missing root (one-shot mode)
_OP_STATE = 5  # a connection TreeEvent to publish in order
_OP_ADD_WATCH = 6  # addWatch of the persistent recursive watch


class _Op(object):
    __slots__ = ("kind", "path", "results", "value")

    def __init__(self, kind: int, path: str,
                 results: Tuple[Any, ...] = (),
                 value: Optional[int] = None) -> None:
        self.kind = kind
        self.path = path
        self.results = results
        self.value = value


class _CacheReader(_CacheMirror):
    """The reads of a :class:`fastzk.cache.TreeCache`, made and applied on
    its own thread."""

    # Set by fastzk.cache.TreeCache (its class, then its __init__).
    STATE_STARTED: ClassVar[int]
    _client: KazooClient
    _persistent: bool
    _queue: "queue.Queue[Any]"
    _inflight: Deque[_Op]
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
            self._queue.put(_RESYNC)

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

    def _wait(self, op: _Op) -> bool:
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

    def _send(self, kind: int, path: str, *results: Any) -> None:
        self._inflight.append(_Op(kind, path, results))

    def _take(self, item: Any) -> None:
        """Turn one notification into operations."""
        client = self._client
        if item is _RESYNC:
            self._resync_queued = False
            if not client.connected:
                return  # the CONNECTED state change queues another
            if self._persistent:
                self._send(_OP_ADD_WATCH, self._root, client.add_watch_async(
                    self._root, self._watcher,
                    AddWatchMode.PERSISTENT_RECURSIVE))
            self._walk_failed = False
            self._send_walk(self._root)
            return
        if len(item) == 1:
            self._inflight.append(_Op(_OP_STATE, self._root, (), item[0]))
            return
        event_type, path = item
        if self._persistent:
            self._send(_OP_NODE, path, client.get_async(path))
            if event_type in (EventType.CREATED, EventType.DELETED) \
                    and path != self._root:
                # The parent's stat (cversion, numChildren, pzxid) changed
                # too; a recursive watch sends no child events for it.
                parent = _parent(path)
                self._send(_OP_NODE, parent, client.get_async(parent))
        elif event_type == EventType.CHILD:
            self._send(_OP_CHILDREN, path, client.get_children_async(
                path, watch=self._watcher, include_data=True))
        else:
            self._send(_OP_NODE, path, client.get_async(
                path, watch=self._watcher))

    def _send_walk(self, path: str, children_only: bool = False) -> None:
        client = self._client
        self._walks += 1
        if children_only:
            self._send(_OP_WALK, path, None, client.get_children_async(
                path, watch=None, include_data=True))
        elif self._persistent:
            # The children are read only if the node has some: the
            # recursive watch, added before any walk, reports a child
            # created after this read.
            self._send(_OP_WALK, path, client.get_async(path), None)
        else:
            watch = self._watcher
            self._send(_OP_WALK, path, client.get_async(path, watch=watch),
                       client.get_children_async(path, watch=watch,
                                                 include_data=True))

    # -- applying replies, in the order they were sent --------------------------

    def _apply(self, op: _Op) -> None:
        kind = op.kind
        if kind == _OP_WALK:
            try:
                self._apply_walk(op)
            except BaseException:
                self._walk_failed = True
                raise
            finally:
                self._walks -= 1
                self._maybe_initialized()
        elif kind == _OP_NODE:
            try:
                data, stat = op.results[0].get()
            except NoNodeError:
                self._gone(op.path)
                return
            if self._apply_node(op.path, data, stat) \
                    and not self._persistent:
                # One-shot mode: a node new to the cache needs its child
                # watch.
                self._send(_OP_CHILDREN, op.path,
                           self._client.get_children_async(
                               op.path, watch=self._watcher,
                               include_data=True))
        elif kind == _OP_CHILDREN:
            try:
                names, stat = op.results[0].get()
            except NoNodeError:
                self._gone(op.path)
                return
            if op.path not in self._nodes:
                return  # found again through its parent, if it exists
            self._refresh_stat(op.path, stat)
            for name in self._reconcile(op.path, names):
                self._send_walk(_join(op.path, name))
        elif kind == _OP_EXISTS:
            if op.results[0].get() is not None:
                self._walk_failed = False
                self._send_walk(op.path)
        elif kind == _OP_STATE:
            if op.value == TreeEvent.CONNECTION_LOST:
                self._is_initialized = False
            self._publish(cast(int, op.value), None)
        elif kind == _OP_ADD_WATCH:
            try:
                op.results[0].get()
            except UnimplementedError:
                log.info("The server has no addWatch: TreeCache falls back "
                         "to one-shot watches")
                self._persistent = False
                self._queue_resync()

    def _apply_walk(self, op: _Op) -> None:
        path = op.path
        data_result, children_result = op.results
        if data_result is not None:
            try:
                data, stat = data_result.get()
            except NoNodeError:
                self._gone(path)
                return
            self._apply_node(path, data, stat)
            if children_result is None:
                if stat.numChildren:
                    self._send_walk(path, children_only=True)
                else:
                    self._reconcile(path, ())
                return
        try:
            names, stat = children_result.get()
        except NoNodeError:
            self._gone(path)
            return
        self._refresh_stat(path, stat)
        self._reconcile(path, names)
        for name in names:
            self._send_walk(_join(path, name))

    def _maybe_initialized(self) -> None:
        if self._walks == 0 and not self._walk_failed \
                and not self._is_initialized:
            self._is_initialized = True
            self._publish(TreeEvent.INITIALIZED, None)

    def _gone(self, path: str) -> None:
        """A read found ``path`` missing."""
        self._remove(path)
        if path == self._root and not self._persistent:
            # Watch for the root to come back (a recursive watch sees it).
            self._send(_OP_EXISTS, path, self._client.exists_async(
                path, watch=self._watcher))
