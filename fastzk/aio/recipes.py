"""The recipe constructors of :class:`fastzk.aio.AsyncClient`
(``zk.Lock(path)``, ``zk.Semaphore(path)``...), each importing its module
on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    from fastzk.aio.cache import TreeCache
    from fastzk.aio.client import AsyncClient
    from fastzk.aio.lock import Lock
    from fastzk.aio.rwlock import ReadLock, WriteLock
    from fastzk.aio.semaphore import Semaphore
    from fastzk.aio.watch import WatchStream
    from fastzk.aio.watchers import ChildrenWatch, DataWatch

__all__ = ["Recipes"]


class Recipes(object):
    """The recipes made on an :class:`~fastzk.aio.AsyncClient`, with kazoo's
    constructor names."""

    def _self(self) -> "AsyncClient":
        return self  # type: ignore[return-value]

    def Lock(self, path: str, identifier: Optional[str] = "") -> "Lock":
        """A :class:`fastzk.aio.lock.Lock` on ``path``."""
        from fastzk.aio.lock import Lock

        return Lock(self._self(), path, identifier)

    def ReadLock(self, path: str,
                 identifier: Optional[str] = "") -> "ReadLock":
        """A :class:`fastzk.aio.rwlock.ReadLock` on ``path``."""
        from fastzk.aio.rwlock import ReadLock

        return ReadLock(self._self(), path, identifier)

    def WriteLock(self, path: str,
                  identifier: Optional[str] = "") -> "WriteLock":
        """A :class:`fastzk.aio.rwlock.WriteLock` on ``path``."""
        from fastzk.aio.rwlock import WriteLock

        return WriteLock(self._self(), path, identifier)

    def Semaphore(self, path: str, identifier: Optional[str] = "",
                  max_leases: int = 1) -> "Semaphore":
        """A :class:`fastzk.aio.semaphore.Semaphore` on ``path``."""
        from fastzk.aio.semaphore import Semaphore

        return Semaphore(self._self(), path, identifier, max_leases)

    def TreeCache(self, path: str,
                  use_persistent_watch: Optional[bool] = None
                  ) -> "TreeCache":
        """A :class:`fastzk.aio.cache.TreeCache` of the subtree at
        ``path`` (``await cache.start()``); ``use_persistent_watch=False``
        runs it on one-shot watches, as it falls back to on a server
        without ``addWatch``."""
        from fastzk.aio.cache import TreeCache

        return TreeCache(self._self(), path, use_persistent_watch)

    def DataWatch(self, path: str, func: Callable[..., Any]) -> "DataWatch":
        """A :class:`fastzk.aio.watchers.DataWatch` on ``path``."""
        from fastzk.aio.watchers import DataWatch

        return DataWatch(self._self(), path, func)

    def ChildrenWatch(self, path: str,
                      func: Callable[..., Any]) -> "ChildrenWatch":
        """A :class:`fastzk.aio.watchers.ChildrenWatch` on ``path``."""
        from fastzk.aio.watchers import ChildrenWatch

        return ChildrenWatch(self._self(), path, func)

    def watch(self, path: str, recursive: bool = False,
              maxsize: int = 1024) -> "WatchStream":
        """A :class:`fastzk.aio.watch.WatchStream` of the events under
        ``path`` (``async with zk.watch(path) as events``)."""
        from fastzk.aio.watch import WatchStream

        return WatchStream(self._self(), path, recursive, maxsize)
