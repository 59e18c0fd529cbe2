"""Watches of fastzk's client, delivered as kazoo delivers them.

:class:`WatchRouting` turns the engine's watch events into kazoo's
:class:`~kazoo.protocol.states.WatchedEvent` objects for the client's
event thread, fires the one-shot watches when the session is lost, shows
the engine's watch registry where kazoo's client keeps its watchers, and
sends the persistent watch requests (addWatch, removeWatches).

Internal: a part of :class:`fastzk.client.KazooClient`.
"""

from typing import Any, Dict, Sequence, Set, Tuple

from kazoo.interfaces import IAsyncResult
from kazoo.protocol.states import EventType, WatchedEvent

from fastzk.kazooface.base import ClientBase
from fastzk.drivers.engine import Engine
from fastzk.protocol import builders as _rq
from fastzk.protocol import watches as _watches
from fastzk.protocol.watches import (
    EVENT_TYPES, AddWatchMode, WatcherType, WatchFunc,
)

__all__ = ["WatchRouting"]


class WatchRouting(ClientBase):
    """Watch events to kazoo's watchers, and persistent watches.

    Internal: a part of :class:`fastzk.client.KazooClient`.
    """

    # -- kazoo internals that kazoo's own recipes and tests look at ----------

    @property
    def _data_watchers(self) -> Dict[str, Set[WatchFunc]]:
        connection = getattr(self, "_connection", None)
        if isinstance(connection, Engine):
            watchers: Dict[str, Set[WatchFunc]] = connection.watches.by_path(
                _watches.DATA)
            return watchers
        return {}

    @_data_watchers.setter
    def _data_watchers(self, value: Any) -> None:
        pass  # kazoo's constructor; the engine's registry is the truth

    @property
    def _child_watchers(self) -> Dict[str, Set[WatchFunc]]:
        connection = getattr(self, "_connection", None)
        if isinstance(connection, Engine):
            watchers: Dict[str, Set[WatchFunc]] = connection.watches.by_path(
                _watches.CHILD)
            return watchers
        return {}

    @_child_watchers.setter
    def _child_watchers(self, value: Any) -> None:
        pass

    def _reset_watchers(self) -> None:
        connection = getattr(self, "_connection", None)
        if not isinstance(connection, Engine):
            return  # called by kazoo's constructor, before the engine exists
        event = WatchedEvent(EventType.NONE, self._state, None)
        for func in connection.watches.clear_one_shot():
            self._dispatch(func, event)

    def _dispatch_watch(self, event_type: int, path: str,
                        funcs: Sequence[WatchFunc]) -> None:
        if self._stopped.is_set():
            return
        event = WatchedEvent(EVENT_TYPES[event_type], self._state,
                             self.unchroot(path))
        put = self._events.put
        for func in funcs:
            put(func, event)

    def _dispatch_reconnected(
            self, persistent: Sequence[Tuple[int, str, Sequence[WatchFunc]]]
    ) -> None:
        # One NONE event per persistent watcher, carrying the new state and
        # the watched path: changes may have been missed while disconnected.
        for _kind, path, funcs in persistent:
            event = WatchedEvent(EventType.NONE, self._state,
                                 self.unchroot(path))
            for func in funcs:
                self._dispatch(func, event)

    # -- persistent watches --------------------------------------------------------

    def add_watch(self, path: str, watch: WatchFunc,
                  mode: AddWatchMode) -> bool:
        """Add a persistent watch (ZooKeeper 3.6+).

        The watch stays until removed with :meth:`remove_all_watches`, and is
        restored after every reconnect and re-added on a new session after
        an expiry; each time, the watcher receives an event of type
        ``EventType.NONE`` with the new state, as changes may have been
        missed in between.

        :param path: path of the node to watch.
        :param watch: a callable taking a
                      :class:`~kazoo.protocol.states.WatchedEvent`.
        :param mode: :attr:`AddWatchMode.PERSISTENT` (the node's data, its
                     children list and its existence) or
                     :attr:`AddWatchMode.PERSISTENT_RECURSIVE` (the node and
                     every descendant; no child events).
        :raises: :exc:`~kazoo.exceptions.ZookeeperError` if the server
                 returns a non-zero error code (an older server refuses
                 the request with UnimplementedError).
        """
        added: bool = self.add_watch_async(path, watch, mode).get()
        return added

    def add_watch_async(self, path: str, watch: WatchFunc,
                        mode: AddWatchMode) -> IAsyncResult:
        """Asynchronously add a persistent watch. Takes the same arguments
        as :meth:`add_watch`."""
        if not isinstance(path, str):
            raise TypeError("Invalid type for 'path' (string expected)")
        if not callable(watch):
            raise TypeError("Invalid type for 'watch' (must be a callable)")
        mode = AddWatchMode(mode)
        full = self._full_path(path)
        result = self._new_result()
        self._connection.submit(_rq.add_watch(
            full, watch, mode == AddWatchMode.PERSISTENT_RECURSIVE, result))
        return result

    def remove_all_watches(self, path: str,
                           watcher_type: WatcherType) -> bool:
        """Remove every watch of ``watcher_type`` on ``path`` this session
        holds, on the server and in the client.

        :param watcher_type: :attr:`WatcherType.CHILDREN`,
                             :attr:`WatcherType.DATA` or
                             :attr:`WatcherType.ANY`.  As on the server
                             (ZooKeeper 3.6-3.8), DATA and ANY also remove
                             a persistent or recursive watch on the path,
                             and CHILDREN a persistent one.
        :raises: :exc:`~kazoo.exceptions.NoWatcherError` when the session
                 has no such watch on the path.
        """
        removed: bool = self.remove_all_watches_async(path,
                                                      watcher_type).get()
        return removed

    def remove_all_watches_async(self, path: str, watcher_type: WatcherType
                                 ) -> IAsyncResult:
        """Asynchronously remove watches. Takes the same arguments as
        :meth:`remove_all_watches`."""
        if not isinstance(path, str):
            raise TypeError("Invalid type for 'path' (string expected)")
        watcher_type = WatcherType(watcher_type)
        full = self._full_path(path)
        result = self._new_result()
        self._connection.submit(_rq.remove_watches(full, watcher_type, result))
        return result
