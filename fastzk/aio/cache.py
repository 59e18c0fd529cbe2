"""The TreeCache of the asyncio client: a local mirror of a subtree, with
kazoo's API (``start``, ``close``, ``listen``, ``listen_fault``,
``get_data``, ``get_children``) and events
(:class:`~kazoo.recipe.cache.TreeEvent`,
:class:`~kazoo.recipe.cache.NodeData`).

It is the thread client's cache on one task instead of a thread: the same
reads and the same mirror (:mod:`fastzk.recipes.cacheops`,
:mod:`fastzk.recipes.cachemirror`, which do no waiting), with

- one persistent recursive watch on the root (ZooKeeper 3.6+) reporting
  every create, delete and data change below it, or one-shot data and
  child watches on every node when the server has no ``addWatch`` (or
  when asked with ``use_persistent_watch=False``);
- every notification answered by a fresh read, the reads pipelined and
  their replies applied strictly in the order they were sent;
- after a reconnect or a new session, the subtree read again and compared
  with the cache (the server sends no catch-up events for a persistent
  watch).
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
)

from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    KazooException,
    SessionExpiredError,
)
from kazoo.protocol.states import EventType, KazooState, WatchedEvent
from kazoo.recipe.cache import NodeData, TreeEvent

from fastzk.aio.lock import _consume
from fastzk.recipes.cacheops import RESYNC, Op, _CacheOps
from fastzk.protocol.watches import AddWatchMode
from fastzk.recipes.watchrelease import watched_paths

if TYPE_CHECKING:
    from fastzk.aio.client import AsyncClient

__all__ = ["TreeCache", "TreeEvent", "NodeData"]

_CONNECTION_ERRORS = (ConnectionLoss, ConnectionClosedError,
                      SessionExpiredError)


class TreeCache(_CacheOps):
    """The cache of the subtree at ``path`` on an
    :class:`~fastzk.aio.AsyncClient`.

    Listeners get NODE_ADDED for every node, then INITIALIZED, then an
    event for every change (and CONNECTION_SUSPENDED, _RECONNECTED, _LOST).
    A listener is a function called on the event loop in event order; a
    coroutine function's coroutine runs as a task.

    :param client: the started :class:`~fastzk.aio.AsyncClient`.
    :param path: the root path of the subtree.
    :param use_persistent_watch: None (the default) uses one persistent
        recursive watch, falling back to one-shot watches on a server
        without ``addWatch``; False forces one-shot watches.

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

    def __init__(self, client: "AsyncClient", path: str,
                 use_persistent_watch: Optional[bool] = None) -> None:
        self._client = client
        self._root = path.rstrip("/") or "/"
        self._state = self.STATE_LATENT
        self._persistent = use_persistent_watch is not False
        self._nodes: Dict[str, NodeData] = {}
        self._children: Dict[str, Set[str]] = {}
        self._event_listeners: List[Callable[[TreeEvent], object]] = []
        self._error_listeners: List[Callable[[Exception], object]] = []
        self._queue: "Optional[asyncio.Queue[Any]]" = None
        self._inflight: Deque[Op] = deque()
        # The replies of the addWatch requests not yet answered.
        self._adding: Set["asyncio.Future[Any]"] = set()
        self._task: "Optional[asyncio.Task[None]]" = None
        self._is_initialized = False
        self._resync_queued = False
        self._walks = 0
        self._walk_failed = False
        #: Set once the first load is complete (after INITIALIZED).
        self.initialized = asyncio.Event()

    @property
    def uses_persistent_watch(self) -> bool:
        """Whether the cache runs on a persistent recursive watch (False
        with one-shot watches)."""
        return self._persistent

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
        # The other reads in flight still set their watches when answered:
        # wait for them too, so the registry below knows every watch.
        pending = [result for op in self._inflight for result in op.results
                   if result is not None]
        if pending and self._client.connected:
            await asyncio.wait(pending, timeout=5.0)
        self._inflight.clear()
        if self._client.connected:
            client = self._client
            paths = {self._root}
            if not self._persistent:
                unchroot = client.unchroot
                paths.update(unchroot(full) for full in watched_paths(
                    client.machine.watches, self._watcher))
            for path in paths:
                try:
                    await client.release_watches(path, self._watcher)
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
            self._queue_resync()  # the watches re-established: re-read
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
            self._put(RESYNC)

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
                pending = [r for r in op.results
                           if r is not None and not r.done()]
                if pending:
                    await asyncio.wait(pending)
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

    # -- the driver's part of the operations ---------------------------------

    def _send(self, kind: int, path: str, *results: Any) -> None:
        for result in results:
            if result is not None:
                # Its error is read when the op is applied, or never if
                # the cache closes first.
                result.add_done_callback(_consume)
        self._inflight.append(Op(kind, path, results))

    def _add_recursive_watch(self) -> Any:
        adding = self._client.add_watch_async(
            self._root, self._watcher, AddWatchMode.PERSISTENT_RECURSIVE)
        self._adding.add(adding)
        adding.add_done_callback(self._adding.discard)
        return adding

    def _value(self, result: Any) -> Any:
        return result.result()

    def _initialized(self) -> None:
        self.initialized.set()
