"""The reads a TreeCache makes and how their replies are applied, for
either driver: a notification becomes pipelined reads, and each reply,
taken strictly in the order the reads were sent, brings the mirror
(:mod:`fastzk.recipes.cachemirror`) up to date and may send further reads.

ZooKeeper answers a session's requests in order, so every reply applied is
at least as recent as those applied before it and the cache never goes
back.  Waiting for the replies is the driver's part: a thread for
:class:`fastzk.cache.TreeCache` (:mod:`fastzk.recipes.cachereader`), a task for
:class:`fastzk.aio.TreeCache`.
"""

import logging
from typing import Any, Deque, Optional, Tuple, cast

from kazoo.exceptions import NoNodeError, UnimplementedError
from kazoo.protocol.states import EventType, WatchedEvent
from kazoo.recipe.cache import TreeEvent

from fastzk.recipes.cachemirror import _CacheMirror, _join, _parent

# The name of the module whose class this is part of (fastzk.cache).
log = logging.getLogger("fastzk.cache")

#: The queued item asking for the whole subtree to be read again.
RESYNC = object()

# Operations in flight, applied in the order they were sent.
OP_NODE = 1  # get: (data, stat)
OP_CHILDREN = 2  # get_children(include_data=True): (names, stat)
OP_WALK = 3  # get and get_children of one node during a (re)load
OP_EXISTS = 4  # exists on the missing root (one-shot mode)
OP_STATE = 5  # a connection TreeEvent to publish in order
OP_ADD_WATCH = 6  # addWatch of the persistent recursive watch


class Op(object):
    """One operation in flight: its kind, its path, and the pending
    results of its reads (None where a read was not made)."""

    __slots__ = ("kind", "path", "results", "value")

    def __init__(self, kind: int, path: str,
                 results: Tuple[Any, ...] = (),
                 value: Optional[int] = None) -> None:
        self.kind = kind
        self.path = path
        self.results = results
        self.value = value


class _CacheOps(_CacheMirror):
    """Notifications in, reads out, replies applied in order.

    The driver provides the client (whose ``get_async``,
    ``get_children_async`` and ``exists_async`` put a read in flight at
    once and return its pending result), :meth:`_add_recursive_watch`,
    :meth:`_value` (a completed result's value or exception) and
    :meth:`_queue_resync`; it takes each :class:`Op` from
    :attr:`_inflight` in order, waits for its results and calls
    :meth:`_apply`.
    """

    _client: Any
    _persistent: bool
    _inflight: Deque[Op]
    _is_initialized: bool
    _resync_queued: bool
    _walks: int
    _walk_failed: bool

    # -- the driver's part -------------------------------------------------

    def _add_recursive_watch(self) -> Any:
        """Put the addWatch of the persistent recursive watch on the root
        in flight; its pending result."""
        raise NotImplementedError

    def _value(self, result: Any) -> Any:
        """The value of a completed read (raising its exception)."""
        raise NotImplementedError

    def _queue_resync(self) -> None:
        """Queue :data:`RESYNC` unless it is queued already."""
        raise NotImplementedError

    def _watcher(self, event: WatchedEvent) -> None:
        """The watch function of the cache's reads."""
        raise NotImplementedError

    def _initialized(self) -> None:
        """Called once the first load is complete, after INITIALIZED."""

    # -- notifications turned into reads -------------------------------------

    def _send(self, kind: int, path: str, *results: Any) -> None:
        self._inflight.append(Op(kind, path, results))

    def _take(self, item: Any) -> None:
        """Turn one notification into operations."""
        client = self._client
        if item is RESYNC:
            self._resync_queued = False
            if not client.connected:
                return  # the CONNECTED state change queues another
            if self._persistent:
                self._send(OP_ADD_WATCH, self._root,
                           self._add_recursive_watch())
            self._walk_failed = False
            self._send_walk(self._root)
            return
        if len(item) == 1:
            self._inflight.append(Op(OP_STATE, self._root, (), item[0]))
            return
        event_type, path = item
        if self._persistent:
            self._send(OP_NODE, path, client.get_async(path))
            if event_type in (EventType.CREATED, EventType.DELETED) \
                    and path != self._root:
                # The parent's stat (cversion, numChildren, pzxid) changed
                # too; a recursive watch sends no child events for it.
                parent = _parent(path)
                self._send(OP_NODE, parent, client.get_async(parent))
        elif event_type == EventType.CHILD:
            self._send(OP_CHILDREN, path, client.get_children_async(
                path, watch=self._watcher, include_data=True))
        else:
            self._send(OP_NODE, path, client.get_async(
                path, watch=self._watcher))

    def _send_walk(self, path: str, children_only: bool = False) -> None:
        client = self._client
        self._walks += 1
        if children_only:
            self._send(OP_WALK, path, None, client.get_children_async(
                path, watch=None, include_data=True))
        elif self._persistent:
            # The children are read only if the node has some: the
            # recursive watch, added before any walk, reports a child
            # created after this read.
            self._send(OP_WALK, path, client.get_async(path), None)
        else:
            watch = self._watcher
            self._send(OP_WALK, path, client.get_async(path, watch=watch),
                       client.get_children_async(path, watch=watch,
                                                 include_data=True))

    # -- replies, applied in the order they were sent ------------------------

    def _apply(self, op: Op) -> None:
        kind = op.kind
        if kind == OP_WALK:
            try:
                self._apply_walk(op)
            except BaseException:
                self._walk_failed = True
                raise
            finally:
                self._walks -= 1
                self._maybe_initialized()
        elif kind == OP_NODE:
            try:
                data, stat = self._value(op.results[0])
            except NoNodeError:
                self._gone(op.path)
                return
            if self._apply_node(op.path, data, stat) \
                    and not self._persistent:
                # One-shot mode: a node new to the cache needs its child
                # watch.
                self._send(OP_CHILDREN, op.path,
                           self._client.get_children_async(
                               op.path, watch=self._watcher,
                               include_data=True))
        elif kind == OP_CHILDREN:
            try:
                names, stat = self._value(op.results[0])
            except NoNodeError:
                self._gone(op.path)
                return
            if op.path not in self._nodes:
                return  # found again through its parent, if it exists
            self._refresh_stat(op.path, stat)
            for name in self._reconcile(op.path, names):
                self._send_walk(_join(op.path, name))
        elif kind == OP_EXISTS:
            if self._value(op.results[0]) is not None:
                self._walk_failed = False
                self._send_walk(op.path)
        elif kind == OP_STATE:
            if op.value == TreeEvent.CONNECTION_LOST:
                self._is_initialized = False
            self._publish(cast(int, op.value), None)
        elif kind == OP_ADD_WATCH:
            try:
                self._value(op.results[0])
            except UnimplementedError:
                # ZooKeeper before 3.6 has no addWatch.
                log.info("The server has no addWatch: TreeCache falls back "
                         "to one-shot watches")
                self._persistent = False
                self._queue_resync()

    def _apply_walk(self, op: Op) -> None:
        path = op.path
        data_result, children_result = op.results
        if data_result is not None:
            try:
                data, stat = self._value(data_result)
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
            names, stat = self._value(children_result)
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
            self._initialized()

    def _gone(self, path: str) -> None:
        """A read found ``path`` missing."""
        self._remove(path)
        if path == self._root and not self._persistent:
            # Watch for the root to come back (a recursive watch sees it).
            self._send(OP_EXISTS, path, self._client.exists_async(
                path, watch=self._watcher))
