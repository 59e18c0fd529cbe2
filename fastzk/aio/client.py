"""The asyncio client: :class:`AsyncClient`.

kazoo's method names, arguments, return values and exceptions, as
coroutines on one event loop, over the same session core as the thread
client.  Requests are pipelined: any number of concurrent awaits share the
connection, and the replies come back in the order sent (a ZooKeeper
guarantee), each completing its own future.

The class is put together from parts with one job each: the connection's
life and state (:mod:`fastzk.aio.lifecycle`), the znode operations
(:mod:`fastzk.aio.nodecalls`), the watches (:mod:`fastzk.aio.watchcalls`),
the four-letter commands (:mod:`fastzk.aio.servercalls`) and the recipe
constructors (:mod:`fastzk.aio.recipes`).
"""

from __future__ import annotations

import asyncio
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

from kazoo.hosts import collect_hosts
from kazoo.protocol.paths import _prefix_root
from kazoo.security import ACL

from fastzk.aio.driver import Connection, Identity
from fastzk.aio.recipes import Recipes
from fastzk.aio.servercalls import ServerCalls
from fastzk.aio.watchcalls import WatchCalls
from fastzk.drivers.batching import DEFAULT_PAUSE, check_pause
from fastzk.drivers.tls import client_context
from fastzk.protocol import sasl as _sasl
from fastzk.protocol.session import SessionMachine

__all__ = ["AsyncClient"]


class AsyncClient(WatchCalls, ServerCalls, Recipes):
    """An asyncio ZooKeeper client with kazoo's API.

    The arguments are :class:`kazoo.client.KazooClient`'s where they
    apply.  Every method is a coroutine to be awaited on the loop the
    client was started on; using the client from another loop or thread
    raises :exc:`RuntimeError`.

    :param hosts: ``"host:port,host:port/chroot"`` or a list of them.
    :param timeout: the session timeout to ask for, in seconds.
    :param client_id: ``(session_id, password)`` of a session to resume.
    :param default_acl: the ACL of nodes created without one.
    :param auth_data: ``[(scheme, credential), ...]`` sent on connect.
    :param sasl_options: kazoo's SASL options.
    :param read_only: accept a read-only server.
    :param randomize_hosts: try the hosts in random order.
    :param use_ssl: connect with TLS (``certfile``, ``keyfile``,
                    ``keyfile_password``, ``ca``, ``verify_certs`` and
                    ``check_hostname`` as kazoo's).
    :param connection_retry: a :class:`kazoo.retry.KazooRetry` (or its
                             arguments as a dict) pacing reconnects;
                             ``max_tries`` rounds without a connection
                             end the client, as in kazoo.
    :param command_retry: a :class:`kazoo.retry.KazooRetry` pacing
                          :meth:`retry` (commands are not retried by
                          themselves, as in kazoo).
    :param reply_batching: fastzk's own, in seconds: while a pipelined
                           burst is in flight (64 replies or more
                           outstanding) and a read brought only a few
                           replies, reading pauses this long so that the
                           next read takes many at once (see
                           :mod:`fastzk.drivers.batching`).  0 reads every
                           reply as it arrives.
    """

    def __init__(self, hosts: Union[str, List[str]] = "127.0.0.1:2181",
                 timeout: float = 10.0,
                 client_id: Optional[Tuple[int, bytes]] = None,
                 default_acl: Optional[Sequence[ACL]] = None,
                 auth_data: Optional[Sequence[Tuple[str, str]]] = None,
                 sasl_options: Optional[Dict[str, Any]] = None,
                 read_only: Optional[bool] = None,
                 randomize_hosts: bool = True,
                 connection_retry: Any = None,
                 command_retry: Any = None,
                 use_ssl: bool = False, certfile: Optional[str] = None,
                 keyfile: Optional[str] = None,
                 keyfile_password: Optional[str] = None,
                 ca: Optional[str] = None, verify_certs: bool = True,
                 check_hostname: bool = False,
                 *, reply_batching: float = DEFAULT_PAUSE) -> None:
        host_ports, chroot = collect_hosts(hosts)
        if chroot:
            chroot = _prefix_root("", chroot)
            if chroot == "/":
                chroot = ""
        self.hosts: List[Tuple[str, int]] = host_ports
        self.chroot: str = chroot or ""
        self.default_acl = default_acl
        self.auth_data: Set[Tuple[str, str]] = set(auth_data or ())
        self.read_only = read_only
        self.randomize_hosts = randomize_hosts
        self.connection_retry = connection_retry
        self.command_retry = command_retry
        self.reply_batching = check_pause(reply_batching)
        self._sasl_options = (None if sasl_options is None
                              else _sasl.normalize_sasl_options(sasl_options))
        self._ssl = (client_context(ca=ca, certfile=certfile, keyfile=keyfile,
                                    keyfile_password=keyfile_password,
                                    verify_certs=verify_certs,
                                    check_hostname=check_hostname)
                     if use_ssl else None)
        self._timeout_ms = int(timeout * 1000)
        self._identity = Identity(client_id)
        self.machine = SessionMachine(
            self._identity, self._timeout_ms, bool(read_only),
            dispatch_watch=self._dispatch_watch,
            unchroot=self._unchroot_multi)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._connection: Optional[Connection] = None
        self._listeners: List[Callable[[str], Any]] = []
        self._state_queues: List["asyncio.Queue[str]"] = []
        self._closed = False

    async def __aenter__(self) -> "AsyncClient":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()
        await self.close()
