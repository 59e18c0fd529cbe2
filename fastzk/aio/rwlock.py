"""The read-write lock of the asyncio client: kazoo's ``ReadLock`` and
``WriteLock`` nodes (``<uuid hex>__rlock__<sequence>`` for a reader,
``<uuid hex>__lock__<sequence>`` for a writer), so kazoo, fastzk thread and
asyncio readers and writers on one path exclude each other.

The recipe is :class:`fastzk.aio.lock.Lock`'s, with the waiting rule of
:data:`fastzk.recipes.locknames.BLOCKED_BY`: a writer waits for every earlier
contender, a reader for the earlier writers only.
"""

from typing import Tuple

from fastzk.aio.lock import Lock
from fastzk.recipes.locknames import BLOCKED_BY, EXCLUSIVE, SHARED

__all__ = ["ReadLock", "WriteLock"]


def _blocked_by(marker: str) -> Tuple[str, ...]:
    return tuple(sorted(BLOCKED_BY[marker]))


class WriteLock(Lock):
    """The write side of a shared lock (kazoo's ``WriteLock``): held alone,
    blocked by any earlier reader or writer.

    Same arguments and methods as :class:`fastzk.aio.lock.Lock`.
    """

    _MARKER = EXCLUSIVE
    _BLOCKED_BY = _blocked_by(EXCLUSIVE)


class ReadLock(Lock):
    """The read side of a shared lock (kazoo's ``ReadLock``): blocked only
    by earlier writers, so many readers may hold it together.

    Same arguments and methods as :class:`fastzk.aio.lock.Lock`.
    """

    _MARKER = SHARED
    _BLOCKED_BY = _blocked_by(SHARED)
