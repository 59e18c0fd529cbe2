"""The copy of the subtree a TreeCache holds: its nodes and their
children, brought up to what each read returned, and the events that tell
listeners so."""

import logging
from typing import Callable, ClassVar, Dict, Iterable, List, Optional, Set

from kazoo.protocol.states import ZnodeStat
from kazoo.recipe.cache import NodeData, TreeEvent

# The name of the module whose class this is part of (fastzk.cache).
log = logging.getLogger("fastzk.cache")


def _join(parent: str, name: str) -> str:
    return parent + name if parent.endswith("/") else parent + "/" + name


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


class _CacheMirror(object):
    """The cached nodes of a :class:`fastzk.cache.TreeCache` and the
    delivery of its events."""

    # Set by fastzk.cache.TreeCache (its class, then its __init__).
    STATE_CLOSED: ClassVar[int]
    _state: int
    _root: str
    _nodes: Dict[str, NodeData]
    _children: Dict[str, Set[str]]
    _event_listeners: List[Callable[[TreeEvent], object]]
    _error_listeners: List[Callable[[Exception], object]]

    def _fault(self, exc: Exception) -> None:
        if not self._error_listeners:
            log.error("TreeCache error", exc_info=exc)
        for listener in self._error_listeners:
            try:
                listener(exc)
            except Exception:  # pragma: no cover - user code
                log.exception("Exception handling exception")

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
