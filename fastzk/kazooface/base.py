"""What the parts of fastzk's :class:`~fastzk.client.KazooClient` share.

fastzk's client is assembled from a few parts, one job each: the session
and its lifecycle (:mod:`fastzk.kazooface.session`), watches and the event
thread (:mod:`fastzk.kazooface.watches`), the data operations
(:mod:`fastzk.kazooface.data`) and the operations only fastzk's recipes use
(:mod:`fastzk.kazooface.recipes`).  Each is a :class:`ClientBase`: kazoo's
client with the attributes fastzk's constructor adds declared, and the two
helpers every part uses (a path's server path, a call on the event
thread).

Internal: the public class is :class:`fastzk.client.KazooClient`.
"""

import threading
from typing import TYPE_CHECKING, Any, Callable, List

import kazoo.client

from fastzk.protocol.paths import server_path

if TYPE_CHECKING:
    from fastzk.drivers.dispatch import Dispatcher
    from fastzk.drivers.engine import Engine
    from fastzk.kazooface.fastpath import FastPath

__all__ = ["ClientBase"]


class ClientBase(kazoo.client.KazooClient):
    """kazoo's client with the attributes fastzk's constructor adds, and
    the helpers the parts share.

    Internal: only a base of fastzk's client parts; never made alone.
    """

    # kazoo's, set by its constructor: KeeperState and KazooState values.
    _state: str
    state: str

    # fastzk's, set by fastzk.client.KazooClient's constructor.
    _connection: "Engine"
    _events: "Dispatcher"
    _reconnect_on_expiry: bool
    cached_lock_checks: bool
    # Makes the result of an asynchronous request
    # (fastzk.kazooface.results.result_factory).
    _new_result: Callable[[], Any]
    _fast_path: "FastPath"
    _expiry_callbacks: List[Callable[[], Any]]
    _state_lock: threading.RLock

    # -- what every part uses ------------------------------------------------

    def _full_path(self, path: str) -> str:
        """The server path of ``path`` (see :func:`fastzk.protocol.paths.server_path`)."""
        return server_path(self.chroot, path)

    def _dispatch(self, func: Callable[..., Any], *args: Any) -> None:
        """Run ``func(*args)`` on the client's event thread, never on the
        thread that reads the socket.  Before start and after stop the call
        is made directly."""
        events = self._events
        if events.running:
            events.put(func, *args)
        else:
            func(*args)
