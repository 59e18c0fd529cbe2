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

import logging
import queue
import threading
from collections import deque
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Optional,
    Set,
    Tuple,
    TypeVar,
    Union,
    cast,
    overload,
)

from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    KazooException,
    NoNodeError,
    SessionExpiredError,
    UnimplementedError,
)
from kazoo.client import KazooClient
from kazoo.protocol.states import (
    EventType,
    KazooState,
    WatchedEvent,
    ZnodeStat,
)
from kazoo.recipe.cache import NodeData, TreeEvent

from fastzk.fastpath import fast_path_of
from fastzk.watchers import release_watches, wait_released
from fastzk.watches import AddWatchMode, WatcherType

__all__ = ["TreeCache", "TreeEvent", "NodeData"]

log = logging.getLogger(__name__)

_CONNECTION_ERRORS = (ConnectionLoss, ConnectionClosedError,
                      SessionExpiredError)
_STOP = object()
_RESYNC = object()

_T = TypeVar("_T")
#: A function called with each :class:`~kazoo.recipe.cache.TreeEvent`.
EventListener = TypeVar("EventListener", bound=Callable[[TreeEvent], object])
#: A function called with each exception met while the cache runs.
FaultListener = TypeVar("FaultListener", bound=Callable[[Exception], object])
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


def _join(parent: str, name: str) -> str:
    return parent + name if parent.endswith("/") else parent + "/" + name


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


class _Op(object):
    __slots__ = ("kind", "path", "results", "value")

    def __init__(self, kind: int, path: str,
                 results: Tuple[Any, ...] = (),
                 value: Optional[int] = None) -> None:
        self.kind = kind
        self.path = path
        self.results = results
        self.value = value


class TreeCache(object):
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
        self._inflight: Deque[_Op] = deque()
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

    def _fault(self, exc: Exception) -> None:
        if not self._error_listeners:
            log.error("TreeCache error", exc_info=exc)
        for listener in self._error_listeners:
            try:
                listener(exc)
            except Exception:  # pragma: no cover - user code
                log.exception("Exception handling exception")

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

    def _reconcile(self, path: str, names: Iterable[str]) -> Set[str]:
        """Drop the cached children of ``path`` that are not in ``names``;
        return the names new to the cache."""
        known = self._children.setdefault(path, set())
        names = set(names)
        for gone in known - names:
            self._remove(_join(path, gone))
        return names - known

    def _refresh_stat(self, path: str, stat: ZnodeStat) -> None:
        """Take the newer stat of a children read when the data did not
        change since the cached read."""
        current = self._nodes.get(path)
        if current is None:
            return
        old = current.stat
        if old.czxid == stat.czxid and old.mzxid == stat.mzxid \
                and stat.pzxid >= old.pzxid and stat != old:
            self._nodes[path] = NodeData.make(path, current.data, stat)

    def _apply_node(self, path: str, data: Optional[bytes],
                    stat: ZnodeStat) -> bool:
        """Bring one node up to what a read returned.  Returns True when the
        node is new to the cache (or a new incarnation of it)."""
        current = self._nodes.get(path)
        if current is not None:
            old = current.stat
            if old.czxid == stat.czxid:
                if stat.mzxid > old.mzxid:
                    node = NodeData.make(path, data, stat)
                    self._nodes[path] = node
                    self._publish(TreeEvent.NODE_UPDATED, node)
                elif stat.mzxid == old.mzxid and stat.pzxid > old.pzxid:
                    self._nodes[path] = NodeData.make(path, data, stat)
                return False
            # Deleted and created again since the cache saw it.
            self._remove(path)
        node = NodeData.make(path, data, stat)
        self._nodes[path] = node
        self._children.setdefault(path, set())
        if path != self._root:
            self._children.setdefault(_parent(path), set()).add(
                path.rsplit("/", 1)[1])
        self._publish(TreeEvent.NODE_ADDED, node)
        return True

    def _remove(self, path: str) -> None:
        """Drop ``path`` and everything below it, deepest first."""
        for name in list(self._children.get(path, ())):
            self._remove(_join(path, name))
        self._children.pop(path, None)
        node = self._nodes.pop(path, None)
        if path != self._root:
            siblings = self._children.get(_parent(path))
            if siblings is not None:
                siblings.discard(path.rsplit("/", 1)[1])
        if node is not None:
            self._publish(TreeEvent.NODE_REMOVED, node)

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
        found: Set[str] = set()
        if self._fast is None:
            return found
        registry = self._fast.watches
        func = self._watcher
        for kind in range(len(registry.paths())):
            for full, funcs in list(registry.by_path(kind).items()):
                if func in funcs:
                    found.add(self._client.unchroot(full))
        return found

    def _publish(self, event_type: int,
                 data: Optional[NodeData]) -> None:
        if self._state == self.STATE_CLOSED:
            return
        event = TreeEvent.make(event_type, data)
        for listener in self._event_listeners:
            try:
                listener(event)
            except Exception as exc:
                self._fault(exc)
