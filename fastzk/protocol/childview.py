"""Children lists kept current by a child watch: free failed lock attempts.

A non-blocking lock attempt on a held lock needs only to know that a
contender exists.  When the children of the lock path were read with a
child watch, ZooKeeper promises that the client sees the watch's event
before any later state of that node ("a client will never see a change for
which it has set a watch until it first sees the watch event", the
programmer's guide), so until the event arrives the list read is still the
list the session would read again.  A repeated attempt on a held lock
therefore costs no round trip and no server work at all.

The view is the engine's, fed and cleared only on its read path:

- a reply to a watched ``getChildren`` made through :meth:`token` is
  stored (:meth:`store`);
- a ``NodeChildrenChanged`` or ``NodeDeleted`` event for the path drops it
  (:meth:`invalidate`), before any later reply of the session is handled;
- a lost connection drops everything (:meth:`reset`): the server forgets a
  connection's watches, and tokens taken before are refused.

Like any ZooKeeper read it may lag another session's write by the time the
event takes to arrive; a failed non-blocking attempt is always safe to
report, and a lock that looks free is still decided by a fresh read after
the create.
"""

from typing import Dict, List, Optional, Tuple

__all__ = ["ChildrenView"]

#: Paths kept at most; beyond it reads go out unwatched (each entry is a
#: watch on the server).
DEFAULT_LIMIT = 10000


class ChildrenView(object):
    """Watched children lists of one connection, keyed by server path.

    :param limit: the most paths kept.
    """

    __slots__ = ("_entries", "_epoch", "limit")

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._entries: Dict[str, Tuple[int, List[str]]] = {}
        self._epoch = 0
        self.limit = limit

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, path: str) -> Optional[List[str]]:
        """The children of ``path`` as last read under a live watch, or
        None when unknown."""
        entry = self._entries.get(path)
        if entry is not None and entry[0] == self._epoch:
            return entry[1]
        return None

    def token(self) -> Optional[int]:
        """A token for a watched read to :meth:`store` its reply under, or
        None when the view is full (read without a watch then)."""
        if len(self._entries) >= self.limit:
            return None
        return self._epoch

    def store(self, token: int, path: str, children: List[str]) -> None:
        """Keep ``children`` for ``path`` if ``token`` is still current."""
        if token == self._epoch:
            self._entries[path] = (token, children)

    def invalidate(self, path: str) -> None:
        """The watch on ``path`` fired: forget its children."""
        self._entries.pop(path, None)

    def reset(self) -> None:
        """The connection changed: forget everything, refuse older tokens."""
        self._epoch += 1
        self._entries.clear()
