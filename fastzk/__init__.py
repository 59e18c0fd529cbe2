"""fastzk: a fast, kazoo-compatible ZooKeeper client.

Change one import and keep your kazoo code::

    from fastzk import KazooClient

``EXTENSIONS`` tells whether the compiled core is running (False when the
extension was not built or ``FASTZK_NO_EXTENSIONS=1`` is set).
"""

from typing import TYPE_CHECKING

from kazoo.protocol.states import EventType, KazooState, KeeperState

from fastzk._core import EXTENSIONS
from fastzk._version import version as _package_version
from fastzk.client import KazooClient
from fastzk.protocol.watches import AddWatchMode, WatcherType
from fastzk.lock import Lock, ReadLock, Semaphore, WriteLock
from fastzk.watchers import ChildrenWatch, DataWatch
from fastzk.cache import NodeData, TreeCache, TreeEvent

if TYPE_CHECKING:
    from fastzk.aio import AsyncClient

#: fastzk's client is kazoo's client class; ``Client`` is a shorter name.
Client = KazooClient

#: The release, as in the package metadata.
__version__ = _package_version()

__all__ = [
    "AddWatchMode",
    "WatcherType",
    "ChildrenWatch",
    "DataWatch",
    "NodeData",
    "TreeCache",
    "TreeEvent",
    "Client",
    "EXTENSIONS",
    "EventType",
    "KazooClient",
    "KazooState",
    "KeeperState",
    "Lock",
    "ReadLock",
    "Semaphore",
    "WriteLock",
    "__version__",
]


def __getattr__(name: str) -> object:
    # fastzk.AsyncClient, imported on first use (asyncio is not needed by
    # the thread client).
    if name == "AsyncClient":
        from fastzk.aio import AsyncClient

        return AsyncClient
    raise AttributeError("module 'fastzk' has no attribute %r" % (name,))
