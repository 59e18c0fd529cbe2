"""The client-side watch registry.

ZooKeeper keeps at most one watch of each kind per path and session; the
client keeps the functions to call when it fires.  The kinds follow the
server's own bookkeeping (``WatchManager``), because that is what SetWatches
must restore after a reconnect:

- *data* watches, left by ``getData`` and by ``exists`` on a node that
  exists; fired by NodeDataChanged and NodeDeleted;
- *exist* watches, left by ``exists`` on a node that does not exist; fired
  by NodeCreated;
- *child* watches, left by ``getChildren``; fired by NodeChildrenChanged and
  NodeDeleted of the node itself;
- *persistent* and *persistent recursive* watches (``addWatch``, ZooKeeper
  3.6+), which stay until removed.  A recursive watch sees every
  descendant's creates, deletes and data changes, never child events.

The registry holds paths as the server sees them (chroot included).  It does
no locking of its own: the connection engine calls it from the thread that
holds the read role, and from the caller's thread only under the engine's
lock.
"""

from collections import defaultdict
from enum import IntEnum
from typing import (
    Any, Callable, DefaultDict, Dict, Iterator, List, Optional, Set, Tuple,
)

from kazoo.protocol.states import EventType, WatchedEvent

__all__ = [
    "AddWatchMode",
    "WatcherType",
    "WatchRegistry",
    "DATA",
    "EXIST",
    "CHILD",
    "PERSISTENT",
    "RECURSIVE",
    "WatchFunc",
]

#: A watch function: called with one
#: :class:`~kazoo.protocol.states.WatchedEvent`.
WatchFunc = Callable[[WatchedEvent], Any]

#: The registry of one kind: watch functions by server path.
_ByPath = DefaultDict[str, Set[WatchFunc]]


class AddWatchMode(IntEnum):
    """Modes of :meth:`fastzk.KazooClient.add_watch` (ZooKeeper's
    ``AddWatchMode``; the names of kazoo pull request #715)."""

    PERSISTENT = 0
    PERSISTENT_RECURSIVE = 1


class WatcherType(IntEnum):
    """Watch types for :meth:`fastzk.KazooClient.remove_all_watches`
    (ZooKeeper's ``Watcher.WatcherType``)."""

    CHILDREN = 1
    DATA = 2
    ANY = 3

DATA = 0
EXIST = 1
CHILD = 2
PERSISTENT = 3
RECURSIVE = 4

_CREATED = 1
_DELETED = 2
_CHANGED = 3
_CHILD = 4

# Which one-shot kinds each event type fires (ZooKeeper's
# WatchManager.triggerWatch with the EventType -> WatcherType mapping).
_ONE_SHOT_FIRED: Dict[int, Tuple[int, ...]] = {
    _CREATED: (DATA, EXIST),
    _CHANGED: (DATA, EXIST),
    _DELETED: (DATA, EXIST, CHILD),
    _CHILD: (CHILD,),
}


def _ancestors(path: str) -> Iterator[str]:
    """Yield ``path`` and each of its ancestors up to ``/``."""
    yield path
    while path != "/":
        path = path.rsplit("/", 1)[0] or "/"
        yield path


class WatchRegistry(object):
    """Watch functions by kind and server path."""

    def __init__(self) -> None:
        self._kinds: Tuple[_ByPath, ...] = tuple(
            defaultdict(set) for _ in range(5))

    def add(self, kind: int, path: str, func: WatchFunc) -> None:
        """Remember ``func`` as a watch of ``kind`` on ``path``."""
        self._kinds[kind][path].add(func)

    def discard(self, kind: int, path: str,
                func: Optional[WatchFunc] = None) -> bool:
        """Forget one function (or every function) of ``kind`` on ``path``.

        :returns: True when no function of that kind is left on the path.
        """
        watchers = self._kinds[kind]
        funcs = watchers.get(path)
        if funcs is None:
            return True
        if func is None:
            funcs.clear()
        else:
            funcs.discard(func)
        if not funcs:
            del watchers[path]
            return True
        return False

    def by_path(self, kind: int) -> _ByPath:
        """The live ``{path: set(funcs)}`` mapping of one kind (kazoo's
        ``_data_watchers``/``_child_watchers`` shape)."""
        return self._kinds[kind]

    def has(self, kind: int, path: str) -> bool:
        """Whether any function of ``kind`` watches ``path``."""
        return path in self._kinds[kind]

    def fire(self, event_type: int, path: str) -> List[WatchFunc]:
        """Return the functions an event of ``event_type`` on ``path`` calls.

        One-shot functions are removed as ZooKeeper removes the server-side
        watch; persistent ones stay.  A function registered under several
        kinds is returned once, as the server triggers a watcher once per
        notification.
        """
        kinds = self._kinds
        found: List[WatchFunc] = []
        seen: Set[WatchFunc] = set()
        for kind in _ONE_SHOT_FIRED.get(event_type, ()):
            funcs = kinds[kind].pop(path, None)
            if funcs:
                for func in funcs:
                    if func not in seen:
                        seen.add(func)
                        found.append(func)
        funcs = kinds[PERSISTENT].get(path)
        if funcs:
            for func in funcs:
                if func not in seen:
                    seen.add(func)
                    found.append(func)
        recursive = kinds[RECURSIVE]
        if recursive and event_type != _CHILD:
            for ancestor in _ancestors(path):
                funcs = recursive.get(ancestor)
                if funcs:
                    for func in funcs:
                        if func not in seen:
                            seen.add(func)
                            found.append(func)
        return found

    def covered(self, kind: int, path: str) -> bool:
        """Whether a persistent watch on ``path`` already delivers what a
        one-shot watch of ``kind`` there would.

        ZooKeeper before 3.9 keeps a single watch mode per path and session
        (ZOOKEEPER-4466): setting a one-shot watch where a persistent one
        is would turn it into a one-shot watch.  A covered one-shot watch
        is therefore kept on the client only.  A recursive watch sends no
        child events, so it covers data and exist watches only.
        """
        kinds = self._kinds
        if path in kinds[PERSISTENT]:
            return True
        return kind != CHILD and path in kinds[RECURSIVE]

    def paths(self) -> Tuple[List[str], ...]:
        """The paths to restore with SetWatches, one list per kind.

        Covered one-shot watches are included: SetWatches2 handles the
        one-shot lists before the persistent ones, so the server sends their
        catch-up events and then leaves the persistent mode in place.

        :returns: (data, exist, child, persistent, recursive) lists of paths.
        """
        return tuple(list(watchers) for watchers in self._kinds)

    def clear_one_shot(self) -> List[WatchFunc]:
        """Drop every one-shot watch (the session that held them is gone).

        :returns: the distinct functions dropped, to be told about it.
        """
        dropped: List[WatchFunc] = []
        seen: Set[WatchFunc] = set()
        for kind in (DATA, EXIST, CHILD):
            for funcs in self._kinds[kind].values():
                for func in funcs:
                    if func not in seen:
                        seen.add(func)
                        dropped.append(func)
            self._kinds[kind].clear()
        return dropped

    def persistent_items(self) -> List[Tuple[int, str, Set[WatchFunc]]]:
        """The persistent watches as ``(kind, path, funcs)`` triples."""
        items: List[Tuple[int, str, Set[WatchFunc]]] = []
        for kind in (PERSISTENT, RECURSIVE):
            for path, funcs in self._kinds[kind].items():
                items.append((kind, path, set(funcs)))
        return items

    def __len__(self) -> int:
        return sum(len(watchers) for watchers in self._kinds)


#: Event types as kazoo names them, by ZooKeeper's numeric type.
EVENT_TYPES: Dict[int, str] = {
    _CREATED: EventType.CREATED,
    _DELETED: EventType.DELETED,
    _CHANGED: EventType.CHANGED,
    _CHILD: EventType.CHILD,
}


#: Registry kinds a removeWatches of each WatcherType drops.  ZooKeeper
#: 3.6-3.8 keeps one watch per path and session whatever its mode, and
#: removes a persistent (recursive) watch with DATA, and a persistent one
#: with CHILDREN too; the Java client forgets them the same way.
KINDS_REMOVED_BY: Dict[WatcherType, Tuple[int, ...]] = {
    WatcherType.CHILDREN: (CHILD, PERSISTENT),
    WatcherType.DATA: (DATA, EXIST, PERSISTENT, RECURSIVE),
    WatcherType.ANY: (DATA, EXIST, CHILD, PERSISTENT, RECURSIVE),
}
