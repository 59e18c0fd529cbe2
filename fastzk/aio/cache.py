"""The TreeCache of the asyncio client: a local mirror of a subtree, with
kazoo's API (``start``, ``close``, ``listen``, ``listen_fault``,
``get_data``, ``get_children``) and events
(:class:`~kazoo.recipe.cache.TreeEvent`,
:class:`~kazoo.recipe.cache.NodeData`).

It runs as the thread client's cache does, on one task instead of a
thread, and shares its mirror (:mod:`fastzk.cachemirror`, which applies
reads and emits events, and does no I/O):

- one persistent recursive watch on the root (ZooKeeper 3.6+) reports
  every create, delete and data change below it;
- every notification is answered by a fresh read; reads are pipelined and
  their replies applied strictly in the order they were sent.  ZooKeeper
  answers a session's requests in order, so each applied read is at least
  as recent as those applied before it and the cache never goes back;
- after a reconnect or a new session the subtree is read again and
  compared with the cache (the server sends no catch-up events for a
  persistent watch).
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Deque,
    Dict,
    FrozenSet,
    List,
    Optional,
    Set,
    Tuple,
)

from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    KazooException,
    NoNodeError,
    SessionExpiredError,
)
from kazoo.protocol.states import EventType, KazooState, WatchedEvent
from kazoo.recipe.cache import NodeData, TreeEvent

from fastzk.aio.lock import _consume
from fastzk.cachemirror import _CacheMirror, _join, _parent
from fastzk.watches import AddWatchMode

if TYPE_CHECKING:
    from fastzk.aio.client import AsyncClient

__all__ = ["TreeCache", "TreeEvent", "NodeData"]

_CONNECTION_ERRORS = (ConnectionLoss, ConnectionClosedError,
                      SessionExpiredError)
_RESYNC = object()

# The reads in flight: (kind, path, replies), applied in the order sent.
_WALK = 1  # get of a node during a (re)load: its children read if any
_CHILDREN = 2  # get_children(include_data=True) during a (re)load
_NODE = 3  # get after a notification
_STATE = 4  # a connection TreeEvent, published in order
_WATCH = 5  # the addWatch of the recursive watch

_Op = Tuple[int, str, Any]


class TreeCache(_CacheMirror):
    """The cache of the subtree at ``path`` on an
    :class:`~fastzk.aio.AsyncClient`.

    Listeners get NODE_ADDED for every node, then INITIALIZED, then an
    event for every change (and CONNECTION_SUSPENDED, _RECONNECTED, _LOST).
    A listener is a function called on the event loop in event order; a
    coroutine function's coroutine runs as a task.

    .. code-block:: python

        cache = zk.TreeCache("/services")
        cache.listen(print)
        await cache.start()
        data = cache.get_data("/services/web")  # a NodeData or None
        await cache.close()
    """

    STATE_LATENT = 0
    STATE_STARTED = 1
    STATE_CLOSED = 2

    def __init__(self, client: "AsyncClient", path: str) -> None:
        self._client = client
        self._root = path.rstrip("/") or "/"
        self._state = self.STATE_LATENT
        self._nodes: Dict[str, NodeData] = {}
        self._children: Dict[str, Set[str]] = {}
        self._event_listeners: List[Callable[[TreeEvent], object]] = []
        self._error_listeners: List[Callable[[Exception], object]] = []
        self._queue: "Optional[asyncio.Queue[Any]]" = None
        self._inflight: Deque[_Op] = deque()
        # The replies of the addWatch requests not yet answered.
        self._adding: Set["asyncio.Future[Any]"] = set()
        self._task: "Optional[asyncio.Task[None]]" = None
        self._is_initialized = False
        self._resync_queued = False
        self._walks = 0
        self._walk_failed = False
        #: Set once the first load is complete (after INITIALIZED).
        self.initialized = asyncio.Event()

    # -- kazoo's API -------------------------------------------------------

    async def start(self) -> None:
        """Start following the subtree (creating its root if missing).

        :raises: :exc:`~kazoo.exceptions.KazooException` if the cache was
                 already started or closed.
        """
        if self._state == self.STATE_CLOSED:
            raise KazooException("already closed")
        if self._state == self.STATE_STARTED:
            raise KazooException("already started")
        self._state = self.STATE_STARTED
        self._queue = asyncio.Queue()
        self._client.add_listener(self._on_state)
        try:
            await self._client.ensure_path(self._root)
        except BaseException:
            self._state = self.STATE_LATENT
            self._client.remove_listener(self._on_state)
            raise
        self._task = asyncio.ensure_future(self._run())
        self._queue_resync()

    async def close(self) -> None:
        """Stop following the subtree, remove the cache's watch from the
        server (unless another function of this client shares it) and
        forget the cached nodes.  A closed cache cannot be started
        again."""
        if self._state != self.STATE_STARTED:
            return
        self._state = self.STATE_CLOSED
        self._client.remove_listener(self._on_state)
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        # An addWatch in flight registers the watch when its reply comes:
        # let it land first, or the release below would miss it and the
        # watch would outlive the cache.
        await asyncio.gather(*self._adding, return_exceptions=True)
        for _kind, _path, replies in self._inflight:
            for reply in replies:
                if reply is not None:
                    reply.cancel()
        self._inflight.clear()
        if self._client.connected:
            try:
                await self._client.release_watches(self._root, self._watcher)
            except (KazooException, ConnectionError):
                pass  # gone with the session already
        self._nodes.clear()
        self._children.clear()

    def listen(self, listener: Callable[[TreeEvent], Any]
               ) -> Callable[[TreeEvent], Any]:
        """Register ``listener(event)``; usable as a decorator."""
        call = listener
        if inspect.iscoroutinefunction(listener):
            def call(event: TreeEvent) -> None:
                asyncio.ensure_future(listener(event))
        self._event_listeners.append(call)
        return listener

    def listen_fault(self, listener: Callable[[Exception], Any]
                     ) -> Callable[[Exception], Any]:
        """Register ``listener(exception)`` for the errors met while the
        cache runs (a listener's own included); usable as a decorator."""
        self._error_listeners.append(listener)
        return listener

    def get_data(self, path: str, default: Any = None) -> Any:
        """The cached :class:`~kazoo.recipe.cache.NodeData` of ``path``, or
        ``default``.

        :raises ValueError: if the path is outside of this subtree.
        """
        return self._nodes.get(self._inside(path), default)

    def get_children(self, path: str, default: Any = None) -> Any:
        """The cached child names of ``path`` as a frozenset, or
        ``default`` when ``path`` is not cached.

        :raises ValueError: if the path is outside of this subtree.
        """
        path = self._inside(path)
        if path not in self._nodes:
            return default
        names: FrozenSet[str] = frozenset(self._children.get(path, ()))
        return names

    def _inside(self, path: str) -> str:
        path = path.rstrip("/") or "/"
        root = self._root
        if path == root or root == "/" or path.startswith(root + "/"):
            return path
        raise ValueError("outside of tree")

    # -- notifications -----------------------------------------------------

    def _put(self, item: Any) -> None:
        if self._queue is not None and self._state == self.STATE_STARTED:
            self._queue.put_nowait(item)

    def _watcher(self, event: WatchedEvent) -> None:
        if event.type == EventType.NONE:
            self._queue_resync()  # the watch re-established: re-read
        else:
            self._put((event.type, event.path))

    def _on_state(self, state: str) -> None:
        if state == KazooState.SUSPENDED:
            self._put((TreeEvent.CONNECTION_SUSPENDED,))
        elif state == KazooState.CONNECTED:
            self._put((TreeEvent.CONNECTION_RECONNECTED,))
            self._queue_resync()
        elif state == KazooState.LOST:
            self._put((TreeEvent.CONNECTION_LOST,))

    def _queue_resync(self) -> None:
        if not self._resync_queued:
            self._resync_queued = True
            self._put(_RESYNC)

    # -- the task ------------------------------------------------------------

    async def _run(self) -> None:
        queue = self._queue
        assert queue is not None
        inflight = self._inflight
        while True:
            if not inflight:
                self._safely(self._take, await queue.get())
            while not queue.empty():
                self._safely(self._take, queue.get_nowait())
            if inflight:
                op = inflight.popleft()
                replies = [r for r in op[2] if isinstance(r, asyncio.Future)]
                if replies:
                    await asyncio.wait(replies)
                self._safely(self._apply, op)

    def _safely(self, func: Callable[..., None], *args: Any) -> None:
        try:
            func(*args)
        except _CONNECTION_ERRORS:
            # Unsure of what it missed: read everything again once
            # connected (the CONNECTED state change does it otherwise).
            if self._client.connected:
                self._queue_resync()
        except Exception as exc:
            self._fault(exc)

    def _send(self, kind: int, path: str, *calls: Any) -> List[Any]:
        replies = []
        for call in calls:
            # Tasks start in the order made, so the requests go out (and
            # are answered) in this order.
            reply = None if call is None else asyncio.ensure_future(call)
            if reply is not None:
                reply.add_done_callback(_consume)
            replies.append(reply)
        self._inflight.append((kind, path, replies))
        return replies

    def _take(self, item: Any) -> None:
        client = self._client
        if item is _RESYNC:
            self._resync_queued = False
            if not client.connected:
                return  # the CONNECTED state change queues another
            (adding,) = self._send(_WATCH, self._root, client.add_watch(
                self._root, self._watcher,
                AddWatchMode.PERSISTENT_RECURSIVE))
            self._adding.add(adding)
            adding.add_done_callback(self._adding.discard)
            self._walk_failed = False
            self._send_walk(self._root)
        elif len(item) == 1:
            self._inflight.append((_STATE, self._root, [item[0]]))
        else:
            event_type, path = item
            self._send(_NODE, path, client.get(path))
            if event_type in (EventType.CREATED, EventType.DELETED) \
                    and path != self._root:
                # The parent's stat changed too; a recursive watch sends
                # no child event for it.
                parent = _parent(path)
                self._send(_NODE, parent, client.get(parent))

    def _send_walk(self, path: str, children: bool = False) -> None:
        self._walks += 1
        if children:
            self._send(_CHILDREN, path, self._client.get_children(
                path, include_data=True))
        else:
            self._send(_WALK, path, self._client.get(path))

    # -- replies, applied in the order sent --------------------------------

    def _apply(self, op: _Op) -> None:
        kind, path, replies = op
        if kind == _STATE:
            if replies[0] == TreeEvent.CONNECTION_LOST:
                self._is_initialized = False
            self._publish(replies[0], None)
        elif kind == _WATCH:
            replies[0].result()
        elif kind == _NODE:
            try:
                data, stat = replies[0].result()
            except NoNodeError:
                self._remove(path)
                return
            self._apply_node(path, data, stat)
        else:
            try:
                self._apply_walk(kind, path, replies[0])
            except BaseException:
                self._walk_failed = True
                raise
            finally:
                self._walks -= 1
                self._maybe_initialized()

    def _apply_walk(self, kind: int, path: str,
                    reply: "asyncio.Future[Any]") -> None:
        try:
            result = reply.result()
        except NoNodeError:
            self._remove(path)
            return
        if kind == _WALK:
            data, stat = result
            self._apply_node(path, data, stat)
            if stat.numChildren:
                # The recursive watch, added before any walk, reports a
                # child created after this read.
                self._send_walk(path, children=True)
            else:
                self._reconcile(path, ())
            return
        names, stat = result
        self._refresh_stat(path, stat)
        self._reconcile(path, names)
        for name in names:
            self._send_walk(_join(path, name))

    def _maybe_initialized(self) -> None:
        if self._walks == 0 and not self._walk_failed \
                and not self._is_initialized:
            self._is_initialized = True
            self._publish(TreeEvent.INITIALIZED, None)
            self.initialized.set()
