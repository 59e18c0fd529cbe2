"""TreeCache: a local mirror of a ZooKeeper subtree that converges.

kazoo's API (:class:`kazoo.recipe.cache.TreeCache`: ``start``, ``listen``,
``listen_fault``, ``get_data``, ``get_children``, ``close``, and its
:class:`~kazoo.recipe.cache.TreeEvent` / :class:`~kazoo.recipe.cache.NodeData`
types), built differently:

- One persistent recursive watch on the root (ZooKeeper 3.6+) tells the
  cache about every create, delete and data change below it.  On servers
  without ``addWatch``, or when asked with ``use_persistent_watch=False``,
  one-shot data and child watches on every node do the same job.
- Every notification is answered by a fresh read, and what the read shows is
  what the cache applies.  Reads are pipelined and their replies applied
  strictly in the order they were sent: ZooKeeper answers a session's
  requests in order, so each applied read is at least as recent as every
  read applied before it, and the cache never goes back to older data.
  Once writes stop, the last read of every path was made after its last
  change: the cache equals the server, and the last event delivered for
  each path agrees with its final state (no NODE_ADDED after the node is
  gone, no stale data: kazoo #645).
- A node's incarnations are told apart by ``czxid``: a node deleted and
  created again between two reads is reported as NODE_REMOVED then
  NODE_ADDED.
- After a reconnect or a new session the whole subtree is read again and
  compared with the cache, emitting the events that bring listeners up to
  date: a persistent watch gets no catch-up events from the server.

All work and all listener calls happen on one background thread per cache,
in order: a slow listener delays this cache only, never the client's
connection or its other watchers.
"""

import queue
import threading
from collections import deque
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    FrozenSet,
    List,
    Optional,
    Set,
    TypeVar,
    Union,
    overload,
)

from kazoo.exceptions import KazooException
from kazoo.client import KazooClient
from kazoo.recipe.cache import NodeData, TreeEvent

from fastzk.recipes.cacheops import Op
from fastzk.recipes.cachereader import _STOP, _CacheReader
from fastzk.kazooface.fastpath import fast_path_of
from fastzk.watchers import release_watches, wait_released
from fastzk.recipes.watchrelease import watched_paths
from fastzk.protocol.watches import WatcherType

__all__ = ["TreeCache", "TreeEvent", "NodeData"]

_T = TypeVar("_T")
#: A function called with each :class:`~kazoo.recipe.cache.TreeEvent`.
EventListener = TypeVar("EventListener", bound=Callable[[TreeEvent], object])
#: A function called with each exception met while the cache runs.
FaultListener = TypeVar("FaultListener", bound=Callable[[Exception], object])


class TreeCache(_CacheReader):
    """The cache of a ZooKeeper subtree.

    :param client: A started :class:`~fastzk.KazooClient` instance (a plain
                   kazoo client works too, with one-shot watches).
    :param path: The root path of the subtree.
    :param use_persistent_watch: None (the default) uses one persistent
        recursive watch when the client and server support it and falls
        back to one-shot watches otherwise; False forces one-shot watches.

    Example:

    .. code-block:: python

        cache = TreeCache(client, "/services")

        @cache.listen
        def on_event(event):
            if event.event_type == TreeEvent.NODE_ADDED:
                print("added", event.event_data.path)

        cache.start()
        data = cache.get_data("/services/web")  # a NodeData or None
        cache.close()
    """

    STATE_LATENT = 0
    STATE_STARTED = 1
    STATE_CLOSED = 2

    def __init__(self, client: KazooClient, path: str,
                 use_persistent_watch: Optional[bool] = None) -> None:
        self._client = client
        # fastzk's client only: its watch registry and removeWatches.
        self._fast = fast_path_of(client)
        self._root = path.rstrip("/") or "/"
        self._state = self.STATE_LATENT
        self._persistent = use_persistent_watch is not False and hasattr(
            client, "add_watch_async")
        self._nodes: Dict[str, NodeData] = {}
        self._children: Dict[str, Set[str]] = {}  # child names
        self._event_listeners: List[Callable[[TreeEvent], object]] = []
        self._error_listeners: List[Callable[[Exception], object]] = []
        self._queue: "queue.Queue[Any]" = queue.Queue()
        self._inflight: Deque[Op] = deque()
        self._thread: Optional[threading.Thread] = None
        self._is_initialized = False
        self._resync_queued = False
        self._walks = 0  # walk operations in flight
        self._walk_failed = False

    # -- kazoo's API ---------------------------------------------------------

    @property
    def uses_persistent_watch(self) -> bool:
        """Whether the cache runs on a persistent recursive watch (False
        with one-shot watches)."""
        return self._persistent

    def start(self) -> None:
        """Starts the cache.

        The cache is not started automatically; call this method.  Listeners
        receive NODE_ADDED for every node of the subtree, then INITIALIZED,
        then events for every change.  Call :meth:`close` when done.

        :raises: :exc:`~kazoo.exceptions.KazooException` if the cache was
                 already started or closed.
        """
        if self._state == self.STATE_CLOSED:
            raise KazooException("already closed")
        if self._state == self.STATE_STARTED:
            raise KazooException("already started")
        self._state = self.STATE_STARTED
        self._client.add_listener(self._session_watcher)
        self._client.ensure_path(self._root)
        self._thread = threading.Thread(target=self._run,
                                        name="fastzk-treecache", daemon=True)
        self._thread.start()
        self._queue_resync()

    def close(self) -> None:
        """Closes the cache.

        It stops following the subtree, removes its watches from the server
        (watches that another function of the same client also uses stay)
        and forgets the cached nodes.  A closed cache cannot be started
        again.
        """
        if self._state != self.STATE_STARTED:
            return
        self._state = self.STATE_CLOSED
        self._client.remove_listener(self._session_watcher)
        self._queue.put(_STOP)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(30)
        self._remove_watches()
        self._nodes.clear()
        self._children.clear()

    def listen(self, listener: EventListener) -> EventListener:
        """Registers a function to listen to the cache events.

        :param listener: A callable accepting a
                         :class:`~kazoo.recipe.cache.TreeEvent` instance.
                         Usable as a decorator.  Listeners run on the
                         cache's own thread, in event order.
        """
        self._event_listeners.append(listener)
        return listener

    def listen_fault(self, listener: FaultListener) -> FaultListener:
        """Registers a function to listen to the exceptions met while the
        cache runs (including a listener's own exceptions).

        :param listener: A callable accepting an exception.  Usable as a
                         decorator.
        """
        self._error_listeners.append(listener)
        return listener

    @overload
    def get_data(self, path: str) -> Optional[NodeData]: ...

    @overload
    def get_data(self, path: str, default: _T) -> Union[NodeData, _T]: ...

    def get_data(self, path: str, default: Any = None) -> Any:
        """Gets data of a node from the cache.

        :param path: The absolute path string.
        :param default: The value returned if the node is not cached.
        :raises ValueError: If the path is outside of this subtree.
        :returns: A :class:`~kazoo.recipe.cache.NodeData` instance.
        """
        path = self._inside(path)
        return self._nodes.get(path, default)

    @overload
    def get_children(self, path: str) -> Optional[FrozenSet[str]]: ...

    @overload
    def get_children(self, path: str,
                     default: _T) -> Union[FrozenSet[str], _T]: ...

    def get_children(self, path: str, default: Any = None) -> Any:
        """Gets the names of a node's children from the cache.

        :param path: The absolute path string.
        :param default: The value returned if the node is not cached.
        :raises ValueError: If the path is outside of this subtree.
        :returns: A :class:`frozenset` of child names.
        """
        path = self._inside(path)
        if path not in self._nodes:
            return default
        return frozenset(self._children.get(path, ()))

    def _inside(self, path: str) -> str:
        path = path.rstrip("/") or "/"
        root = self._root
        if path == root or root == "/" or path.startswith(root + "/"):
            return path
        raise ValueError("outside of tree")

    def _remove_watches(self) -> None:
        client = self._client
        if not client.connected:
            return
        paths = {self._root}
        if not self._persistent:
            paths.update(self._nodes)
            paths.update(self._watched_paths())
        fast = self._fast
        wait_released([release_watches(client, fast, path, self._watcher,
                                       WatcherType.ANY) for path in paths])

    def _watched_paths(self) -> Set[str]:
        """The paths where the client's registry holds this cache's watch
        function (a read may have set a watch on a node the cache no
        longer holds)."""
        if self._fast is None:
            return set()
        unchroot = self._client.unchroot
        return {unchroot(full)
                for full in watched_paths(self._fast.watches, self._watcher)}
