"""TreeCache: a local mirror of a ZooKeeper subtree that converges.

kazoo's API (:class:`kazoo.recipe.cache.TreeCache`: ``start``, ``listen``,
``listen_fault``, ``get_data``, ``get_children``, ``close``, and its
:class:`~kazoo.recipe.cache.TreeEvent` / :class:`~kazoo.recipe.cache.NodeData`
types), built differently:

- One persistent recursive watch on the root (ZooKeeper 3.6+) tells the
  cache about every create, delete and data change below it.  On servers
  without ``addWatch``, or when asked with ``use_persistent_watch=False``,
  one-shot data and child watches on every node do the same job.
- Every notification is answered by a fresh read of the node, and what the
  read shows is what the cache applies: an event never installs data older
  than what the cache has (versions only move forward, a new incarnation of
  a path is told apart by its czxid), so once writes stop the cache equals
  the server and the last event delivered for each path agrees with its
  final state (no NODE_ADDED after the node is gone: kazoo #645).
- After a reconnect or a new session the whole subtree is read again and
  compared with the cache, emitting the events that bring listeners up to
  date: a persistent watch gets no catch-up events from the server.
- Reads are pipelined: a batch of notifications or a level of the tree goes
  out at once and the replies are applied in order.

All work and all listener calls happen on one background thread per cache,
in order.
"""

import logging
import queue
import threading

from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    KazooException,
    SessionExpiredError,
    NoNodeError,
    NoWatcherError,
    UnimplementedError,
)
from kazoo.protocol.states import EventType, KazooState
from kazoo.recipe.cache import NodeData, TreeEvent

from fastzk.watches import AddWatchMode, WatcherType

__all__ = ["TreeCache", "TreeEvent", "NodeData"]

log = logging.getLogger(__name__)

_CONNECTION_ERRORS = (ConnectionLoss, ConnectionClosedError,
                      SessionExpiredError)
_STOP = object()
_RESYNC = object()
# How many notifications one pipelined batch reads at most.
_BATCH = 512


def _join(parent, name):
    return parent + name if parent.endswith("/") else parent + "/" + name


def _parent(path):
    return path.rsplit("/", 1)[0] or "/"


class TreeCache(object):
    """The cache of a ZooKeeper subtree.

    :param client: a started :class:`fastzk.KazooClient` (a plain kazoo
                   client works too, in one-shot-watch mode).
    :param path: the root path of the subtree.
    :param use_persistent_watch: None (the default) uses a persistent
        recursive watch when the client and server support it and falls
        back to one-shot watches otherwise; False forces one-shot watches.
    """

    STATE_LATENT = 0
    STATE_STARTED = 1
    STATE_CLOSED = 2

    def __init__(self, client, path, use_persistent_watch=None):
        self._client = client
        self._root = path.rstrip("/") or "/"
        self._state = self.STATE_LATENT
        self._persistent = use_persistent_watch is not False and hasattr(
            client, "add_watch")
        self._nodes = {}  # path -> NodeData
        self._children = {}  # path -> set of child names
        self._event_listeners = []
        self._error_listeners = []
        self._queue = queue.Queue()
        self._thread = None
        self._is_initialized = False
        self._resync_queued = False
        self._exist_watched = set()  # one-shot mode: exists() on gone nodes

    # -- kazoo's API ---------------------------------------------------------

    @property
    def uses_persistent_watch(self):
        """Whether the cache runs on a persistent recursive watch."""
        return self._persistent

    def start(self):
        """Start the cache: load the subtree and follow its changes.

        Listeners receive NODE_ADDED for every node, then INITIALIZED.
        """
        if self._state == self.STATE_CLOSED:
            raise KazooException("already closed")
        if self._state == self.STATE_STARTED:
            raise KazooException("already started")
        self._state = self.STATE_STARTED
        self._client.ensure_path(self._root)
        self._client.add_listener(self._session_watcher)
        self._thread = threading.Thread(target=self._run,
                                        name="fastzk-treecache", daemon=True)
        self._thread.start()
        self._queue.put(_RESYNC)

    def close(self):
        """Close the cache: stop following changes and remove its watches
        from the server."""
        if self._state != self.STATE_STARTED:
            return
        self._state = self.STATE_CLOSED
        self._client.remove_listener(self._session_watcher)
        self._queue.put(_STOP)
        if self._thread is not threading.current_thread():
            self._thread.join(30)
        self._remove_watches()
        self._nodes.clear()
        self._children.clear()

    def listen(self, listener):
        """Register ``listener(event)`` for :class:`TreeEvent` s; usable as a
        decorator."""
        self._event_listeners.append(listener)
        return listener

    def listen_fault(self, listener):
        """Register ``listener(exception)`` for errors met in the
        background; usable as a decorator."""
        self._error_listeners.append(listener)
        return listener

    def get_data(self, path, default=None):
        """The cached :class:`NodeData` of ``path``, or ``default``.

        :raises ValueError: if the path is outside of this subtree.
        """
        self._check_inside(path)
        return self._nodes.get(path.rstrip("/") or "/", default)

    def get_children(self, path, default=None):
        """The cached child names of ``path`` as a frozenset, or
        ``default``.

        :raises ValueError: if the path is outside of this subtree.
        """
        self._check_inside(path)
        path = path.rstrip("/") or "/"
        if path not in self._nodes:
            return default
        return frozenset(self._children.get(path, ()))

    def _check_inside(self, path):
        root = self._root
        if not (path == root or root == "/" or path.startswith(root + "/")
                or path.rstrip("/") == root):
            raise ValueError("outside of tree")

    # -- notifications (client's event thread; never blocks) ------------------

    def _watcher(self, event):
        if self._state != self.STATE_STARTED:
            return
        if event.type == EventType.NONE:
            # Reconnected, or the session's watches were dropped: anything
            # may have changed.
            self._queue_resync()
        else:
            self._queue.put((event.type, event.path))

    def _session_watcher(self, state):
        if state == KazooState.SUSPENDED:
            self._queue.put((TreeEvent.CONNECTION_SUSPENDED,))
        elif state == KazooState.CONNECTED:
            self._queue.put((TreeEvent.CONNECTION_RECONNECTED,))
            self._queue_resync()
        elif state == KazooState.LOST:
            self._queue.put((TreeEvent.CONNECTION_LOST,))

    def _queue_resync(self):
        if not self._resync_queued:
            self._resync_queued = True
            self._queue.put(_RESYNC)

    # -- the background thread -------------------------------------------------

    def _run(self):
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            while len(batch) < _BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._safely(self._process, batch)
                    return
                batch.append(item)
            self._safely(self._process, batch)

    def _safely(self, func, *args):
        try:
            func(*args)
        except Exception as exc:
            if isinstance(exc, _CONNECTION_ERRORS):
                log.debug("TreeCache read interrupted: %r", exc)
            elif not self._error_listeners:
                log.exception("TreeCache error")
            for listener in self._error_listeners:
                try:
                    listener(exc)
                except Exception:  # pragma: no cover - user code
                    log.exception("Exception handling exception")
            if self._state == self.STATE_STARTED:
                # A failed read leaves the cache unsure: read everything
                # again once the client can.
                self._queue_resync()

    def _process(self, batch):
        reads = []
        for item in batch:
            if item is _RESYNC:
                self._apply_reads(reads)
                reads = []
                self._resync_queued = False
                self._resync()
            elif len(item) == 1:
                self._apply_reads(reads)
                reads = []
                self._publish(item[0], None)
            else:
                event_type, path = item
                reads.append((event_type, path, self._read_async(
                    path, event_type == EventType.CHILD)))
        self._apply_reads(reads)

    def _read_async(self, path, children):
        """Start reading ``path`` (its data, or its children list)."""
        client = self._client
        if children:
            watch = None if self._persistent else self._watcher
            return client.get_children_async(path, watch=watch)
        if self._persistent:
            return client.get_async(path)
        return client.get_async(path, watch=self._watcher)

    def _apply_reads(self, reads):
        for event_type, path, result in reads:
            if event_type == EventType.CHILD:
                try:
                    names = result.get()
                except NoNodeError:
                    self._remove(path)
                    continue
                self._apply_children(path, names)
                continue
            try:
                data, stat = result.get()
            except NoNodeError:
                self._remove(path)
                if not self._persistent:
                    # Leave an exist watch so a quick re-create is seen.
                    self._exist_watched.add(path)
                    self._client.exists_async(path, watch=self._watcher)
                continue
            if self._apply_node(path, data, stat) and not self._persistent:
                # A node new to the cache: follow its children too.
                self._walk([path], skip_data=True)

    def _apply_children(self, path, names):
        """One-shot mode: a child list read after NodeChildrenChanged."""
        if path not in self._nodes:
            return
        known = self._children.setdefault(path, set())
        names = set(names)
        for gone in known - names:
            self._remove(_join(path, gone))
        fresh = [_join(path, name) for name in names - known]
        if fresh:
            self._walk(fresh)

    def _apply_node(self, path, data, stat):
        """Bring one node up to what a read returned.  Returns True when the
        node is new to the cache."""
        current = self._nodes.get(path)
        if current is not None:
            if current.stat.czxid != stat.czxid:
                # Deleted and created again since the cache saw it.
                self._remove(path)
            elif stat.mzxid > current.stat.mzxid or (
                    stat.mzxid == current.stat.mzxid
                    and stat.pzxid > current.stat.pzxid):
                node = NodeData.make(path, data, stat)
                self._nodes[path] = node
                if stat.mzxid > current.stat.mzxid:
                    self._publish(TreeEvent.NODE_UPDATED, node)
                return False
            else:
                return False
        if path != self._root and not path.startswith(
                self._root.rstrip("/") + "/"):
            return False
        node = NodeData.make(path, data, stat)
        self._nodes[path] = node
        self._children.setdefault(path, set())
        if path != self._root:
            self._children.setdefault(_parent(path), set()).add(
                path.rsplit("/", 1)[1])
        self._publish(TreeEvent.NODE_ADDED, node)
        return True

    def _remove(self, path):
        """Drop ``path`` and everything below it, deepest first."""
        if path not in self._nodes:
            return
        for name in list(self._children.get(path, ())):
            self._remove(_join(path, name))
        node = self._nodes.pop(path)
        self._children.pop(path, None)
        if path != self._root:
            siblings = self._children.get(_parent(path))
            if siblings is not None:
                siblings.discard(path.rsplit("/", 1)[1])
        self._publish(TreeEvent.NODE_REMOVED, node)

    def _resync(self):
        """Read the whole subtree and converge the cache onto it."""
        client = self._client
        if not client.connected:
            return  # the CONNECTED state change queues another
        if self._persistent:
            try:
                client.add_watch(self._root, self._watcher,
                                 AddWatchMode.PERSISTENT_RECURSIVE)
            except UnimplementedError:
                log.info("Server has no addWatch: TreeCache falls back to "
                         "one-shot watches")
                self._persistent = False
        seen = self._walk([self._root])
        for path in [p for p in self._nodes if p not in seen]:
            self._remove(path)
        if not self._is_initialized:
            self._is_initialized = True
            self._publish(TreeEvent.INITIALIZED, None)

    def _walk(self, paths, skip_data=False):
        """Read ``paths`` and their subtrees level by level, pipelined, and
        apply what was read.  Returns the set of paths found."""
        watch = None if self._persistent else self._watcher
        client = self._client
        seen = set()
        level = list(paths)
        first = True
        while level:
            pending = []
            for path in level:
                data = None if skip_data and first else client.get_async(
                    path, watch=watch)
                pending.append((path, data, client.get_children_async(
                    path, watch=watch)))
            level = []
            for path, data_result, children_result in pending:
                try:
                    if data_result is not None:
                        data, stat = data_result.get()
                    names = children_result.get()
                except NoNodeError:
                    self._remove(path)
                    continue
                seen.add(path)
                if data_result is not None:
                    self._apply_node(path, data, stat)
                known = self._children.get(path)
                if known is not None:
                    for gone in known - set(names):
                        self._remove(_join(path, gone))
                level.extend(_join(path, name) for name in names)
            first = False
        return seen

    def _remove_watches(self):
        client = self._client
        if not client.connected or not hasattr(client, "remove_all_watches"):
            return
        if self._persistent:
            paths = [self._root]
        else:
            paths = set(self._nodes) | self._exist_watched
        results = [(path, client.remove_all_watches_async(path, WatcherType.ANY))
                   for path in paths]
        for path, result in results:
            try:
                result.get()
            except (NoWatcherError, NoNodeError):
                pass
            except KazooException:
                log.debug("Could not remove watches of %s", path,
                          exc_info=True)

    def _publish(self, event_type, data):
        if self._state == self.STATE_CLOSED:
            return
        event = TreeEvent.make(event_type, data)
        for listener in self._event_listeners:
            try:
                listener(event)
            except Exception as exc:
                for fault in self._error_listeners:
                    try:
                        fault(exc)
                    except Exception:  # pragma: no cover - user code
                        log.exception("Exception handling exception")
                if not self._error_listeners:
                    log.exception("TreeCache listener failed")
