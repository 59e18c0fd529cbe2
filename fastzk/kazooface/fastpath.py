"""The internal interface between fastzk's recipes and fastzk's client.

The recipes (locks, guaranteed deletes, watchers, the tree cache) work on
any :class:`kazoo.client.KazooClient`.  On fastzk's own client a few
operations make them cheaper (a deadline on synchronous calls, a create and
a read in one round trip, watched children lists, the client-side watch
registry).  :func:`fast_path_of` gives a recipe those operations as one
:class:`FastPath` object, or None for another client, in which case the
recipe takes kazoo's path.  A recipe resolves it once, when it is made.

Internal: not part of fastzk's public API.
"""

import threading
from typing import TYPE_CHECKING, Optional

from kazoo.client import KazooClient
from kazoo.interfaces import IAsyncResult

if TYPE_CHECKING:
    from fastzk.recipes.cleanup import GuaranteedDeleter
    from fastzk.client import KazooClient as FastClient
    from fastzk.protocol.watches import WatchRegistry, WatcherType

__all__ = ["FastPath", "fast_path_of"]


class FastPath(object):
    """fastzk-only operations of one fastzk client, for the recipes.

    Internal.  Made once by :class:`fastzk.client.KazooClient` and kept
    for the client's lifetime.

    :param client: the fastzk client these operations act on.
    """

    __slots__ = ("_client", "_deleter", "_deleter_lock", "bounded",
                 "create_and_list", "watched_children")

    def __init__(self, client: "FastClient") -> None:
        self._client = client
        self._deleter: Optional["GuaranteedDeleter"] = None
        self._deleter_lock = threading.Lock()
        #: ``bounded(deadline)``: a context manager bounding the calling
        #: thread's synchronous calls by ``deadline`` (a
        #: :func:`time.monotonic` value); see
        #: :func:`fastzk.drivers.waiter.bounded`.
        self.bounded = client._bounded
        #: ``create_and_list(path, value, ephemeral)``: create a sequential
        #: node and read its parent's children in one round trip; returns
        #: ``(created_path, stat, children or None)``.
        self.create_and_list = client._create_and_list
        #: ``watched_children(path)``: the children of ``path``, answered
        #: from a child-watched list when one is current.
        self.watched_children = client._watched_children

    @property
    def cached_lock_checks(self) -> bool:
        """Whether non-blocking lock checks may use :attr:`watched_children`
        (the client's ``cached_lock_checks`` argument)."""
        return self._client.cached_lock_checks

    @property
    def watches(self) -> "WatchRegistry":
        """The client's registry of the watch functions it holds."""
        registry: "WatchRegistry" = self._client._connection.watches
        return registry

    def remove_watches(self, path: str, watcher_type: "WatcherType") -> IAsyncResult:
        """Send removeWatches for every watch of ``watcher_type`` on
        ``path`` (a path relative to the client's chroot)."""
        return self._client.remove_all_watches_async(path, watcher_type)

    @property
    def deleter(self) -> "GuaranteedDeleter":
        """The client's :class:`~fastzk.recipes.cleanup.GuaranteedDeleter`, made
        when first needed."""
        deleter = self._deleter
        if deleter is None:
            from fastzk.recipes.cleanup import GuaranteedDeleter
            with self._deleter_lock:
                deleter = self._deleter
                if deleter is None:
                    deleter = self._deleter = GuaranteedDeleter(self._client)
        return deleter


def fast_path_of(client: KazooClient) -> Optional[FastPath]:
    """The :class:`FastPath` of fastzk's ``client``; None for any other
    client (kazoo's own), whose recipes take kazoo's path."""
    # Imported here: fastzk.client imports the recipes, which import this.
    from fastzk.client import KazooClient as FastClient
    if isinstance(client, FastClient):
        return client._fast_path
    return None
