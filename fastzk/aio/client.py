"""The asyncio client: :class:`AsyncClient`.

kazoo's method names, arguments, return values and exceptions, as
coroutines on one event loop, over the same session core as the thread
client.  Requests are pipelined: any number of concurrent awaits share the
connection, and the replies come back in the order sent (a ZooKeeper
guarantee), each completing its own future.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import re
from os.path import split as _split_path
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Dict,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

from kazoo.exceptions import (
    ConfigurationError,
    ConnectionClosedError,
    ConnectionLoss,
    KazooException,
    NodeExistsError,
    NoNodeError,
    NoWatcherError,
    SessionExpiredError,
)
from kazoo.retry import KazooRetry, RetryFailedError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.hosts import collect_hosts
from kazoo.protocol import serialization as ks
from kazoo.protocol.paths import _prefix_root
from kazoo.protocol.states import EventType, KazooState, WatchedEvent, ZnodeStat
from kazoo.security import ACL, OPEN_ACL_UNSAFE

from fastzk._core import codec
from fastzk.aio.driver import Connection, FutureResult, Identity
from fastzk.aio.recipes import Recipes
from fastzk.aio.transaction import AsyncTransaction
from fastzk.drivers.tls import client_context
from fastzk.protocol import builders as _rq
from fastzk.protocol import sasl as _sasl
from fastzk.protocol import session as _session
from fastzk.protocol.session import Request, SessionMachine
from fastzk.watches import EVENT_TYPES, WatcherType
from fastzk.watchrelease import must_remove

__all__ = ["AsyncClient"]

#: A watch: a function or a coroutine function of one WatchedEvent.
WatchFunc = Callable[[WatchedEvent], Any]


class AsyncClient(Recipes):
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
                 check_hostname: bool = False) -> None:
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

    # -- state -------------------------------------------------------------

    @property
    def state(self) -> str:
        """The connection state, a :class:`~kazoo.protocol.states.KazooState`."""
        connection = self._connection
        state: str = (connection.state if connection is not None
                      else KazooState.LOST)
        return state

    @property
    def connected(self) -> bool:
        """Whether the client is connected to a server."""
        connected: bool = self.state == KazooState.CONNECTED
        return connected

    @property
    def client_id(self) -> Optional[Tuple[int, bytes]]:
        """``(session_id, password)`` of the current session, or None."""
        identity = self._identity
        if identity._session_id is None:
            return None
        return identity._session_id, identity._session_passwd

    @property
    def negotiated_timeout(self) -> Optional[int]:
        """The session timeout the server granted, in milliseconds."""
        return self.machine.negotiated_timeout

    def add_listener(self, listener: Callable[[str], Any]) -> None:
        """Call ``listener(state)`` on each state change (a coroutine
        function runs as a task).  Returning True removes a plain
        function listener, as in kazoo."""
        if not callable(listener):
            raise ConfigurationError("listener must be callable")
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[str], Any]) -> None:
        """Remove a listener added with :meth:`add_listener`."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def states(self) -> AsyncIterator[str]:
        """The state changes, as an async iterator (the current state
        first)."""
        queue: "asyncio.Queue[str]" = asyncio.Queue()
        queue.put_nowait(self.state)
        self._state_queues.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._state_queues.remove(queue)

    def _on_state(self, state: str) -> None:
        for queue in list(self._state_queues):
            queue.put_nowait(state)
        for listener in list(self._listeners):
            try:
                if inspect.iscoroutinefunction(listener):
                    asyncio.ensure_future(listener(state))
                elif listener(state) is True:
                    self.remove_listener(listener)
            except Exception:
                import logging

                logging.getLogger("fastzk.aio").exception(
                    "Error in connection state listener")

    # -- watches -----------------------------------------------------------

    def _dispatch_watch(self, event_type: int, path: str,
                        funcs: Sequence[WatchFunc]) -> None:
        event = WatchedEvent(EVENT_TYPES[event_type], self.state,
                             self.unchroot(path))
        self._run_watchers(funcs, event)

    def _run_watchers(self, funcs: Any, event: WatchedEvent) -> None:
        loop = self._loop
        if loop is None:
            return
        for func in funcs:
            loop.call_soon(_call_watcher, func, event)

    def _reconnected(self) -> None:
        # SetWatches2 restored the persistent watches, but the server sends
        # no catch-up events for them: tell their watchers to re-read.
        for _kind, path, funcs in self.machine.watches.persistent_items():
            self._run_watchers(list(funcs), WatchedEvent(
                EventType.NONE, self.state, self.unchroot(path)))

    def _expired(self) -> None:
        # One-shot watches die with the session (kazoo fires them with a
        # NONE event); persistent ones are re-added on the new session.
        funcs = self.machine.watches.clear_one_shot()
        self._run_watchers(funcs, WatchedEvent(EventType.NONE,
                                               KazooState.LOST, None))

    # -- lifecycle ---------------------------------------------------------

    def _check_loop(self) -> asyncio.AbstractEventLoop:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "AsyncClient used outside its event loop (from another "
                "thread, or not in a coroutine)") from None
        loop = self._loop
        if loop is not None and running is not loop:
            raise RuntimeError("AsyncClient used from an event loop other "
                               "than the one it was started on")
        return running

    async def start(self, timeout: float = 15) -> None:
        """Connect; raises :exc:`~kazoo.handlers.threading.KazooTimeoutError`
        when no server was reached within ``timeout`` seconds, or the
        authentication error a server answered with."""
        loop = self._check_loop()
        if self._connection is not None and self._connection.running:
            return
        self._loop = loop
        retry = self.connection_retry
        if isinstance(retry, dict):
            retry = KazooRetry(**retry)
        self._connection = connection = Connection(
            loop, self.hosts, self._identity, self.machine, self._on_state,
            ssl_context=self._ssl, randomize_hosts=self.randomize_hosts,
            auth_data=list(self.auth_data), sasl_options=self._sasl_options,
            on_reconnected=self._reconnected, on_expired=self._expired,
            retry=retry)
        connection.start()
        if await connection.wait_connected(timeout):
            return
        error = connection.fatal_error
        await connection.stop()
        if error is not None:
            raise error
        details = "; ".join("%s:%s: %s" % (h, p, e) for (h, p), e in
                            sorted(connection.connect_errors.items()))
        raise KazooTimeoutError("Connection time-out"
                                + (" (%s)" % details if details else ""))

    async def stop(self) -> None:
        """Close the session and the connection."""
        self._check_loop()
        connection = self._connection
        if connection is not None:
            await connection.stop()

    async def close(self) -> None:
        """Release the client's resources (after :meth:`stop`)."""
        await self.stop()
        self._closed = True

    async def __aenter__(self) -> "AsyncClient":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()
        await self.close()

    # -- requests ----------------------------------------------------------

    def _full_path(self, path: str) -> str:
        if not isinstance(path, str):
            raise TypeError("Invalid type for 'path' (string expected)")
        full: str = _prefix_root(self.chroot, path)
        return full

    def unchroot(self, path: str) -> str:
        """Strip the chroot from a server path."""
        chroot = self.chroot
        if not chroot:
            return path
        if path == chroot:
            return "/"
        if path.startswith(chroot):
            return path[len(chroot):]
        return path

    def _unchroot_multi(self, results: Any) -> Any:
        return [self.unchroot(r) if isinstance(r, str) else r for r in results]

    def _call(self, build: Callable[[FutureResult], Request]) -> "asyncio.Future[Any]":
        loop = self._check_loop()
        future = loop.create_future()
        req = build(FutureResult(future))
        connection = self._connection
        if connection is None:
            future.set_exception(ConnectionClosedError(
                "Connection has been closed"))
        else:
            connection.submit(req)
        return future

    def _watcher(self, watch: Optional[WatchFunc]) -> Optional[WatchFunc]:
        if watch and not callable(watch):
            raise TypeError("Invalid type for 'watch' (must be a callable)")
        return watch or None

    # The reads come twice: as coroutines (kazoo's names), and as *_async
    # methods that put the request in flight at once and return the
    # reply's asyncio.Future, as kazoo's *_async return an IAsyncResult.
    # Gathering futures pipelines without a task per request.

    def get_async(self, path: str, watch: Optional[WatchFunc] = None
                  ) -> "asyncio.Future[Tuple[bytes, ZnodeStat]]":
        """Put a getData for ``path`` in flight now; the future of its
        ``(data, stat)`` (NoNodeError when it does not exist)."""
        full = self._full_path(path)
        watcher = self._watcher(watch)
        return self._call(
            lambda r: _rq.read(codec.GET_DATA, _session.R_DATA_STAT, full,
                               watcher, r))

    async def get(self, path: str, watch: Optional[WatchFunc] = None
                  ) -> Tuple[bytes, ZnodeStat]:
        """The data and stat of ``path``; raises NoNodeError."""
        return await self.get_async(path, watch)

    def exists_async(self, path: str, watch: Optional[WatchFunc] = None
                     ) -> "asyncio.Future[Optional[ZnodeStat]]":
        """Put an exists for ``path`` in flight now; the future of its
        stat, or None when it does not exist."""
        full = self._full_path(path)
        watcher = self._watcher(watch)
        return self._call(
            lambda r: _rq.read(codec.EXISTS, _session.R_STAT, full, watcher, r))

    async def exists(self, path: str, watch: Optional[WatchFunc] = None
                     ) -> Optional[ZnodeStat]:
        """The stat of ``path``, or None when it does not exist."""
        return await self.exists_async(path, watch)

    def get_children_async(self, path: str,
                           watch: Optional[WatchFunc] = None,
                           include_data: bool = False
                           ) -> "asyncio.Future[Any]":
        """Put a getChildren for ``path`` in flight now; the future of its
        children names (with its stat when ``include_data``)."""
        if not isinstance(include_data, bool):
            raise TypeError("Invalid type for 'include_data' (bool expected)")
        full = self._full_path(path)
        watcher = self._watcher(watch)
        return self._call(
            lambda r: _rq.children(full, watcher, include_data, r))

    async def get_children(self, path: str, watch: Optional[WatchFunc] = None,
                           include_data: bool = False) -> Any:
        """The children names of ``path`` (with its stat when
        ``include_data``)."""
        return await self.get_children_async(path, watch, include_data)

    async def set(self, path: str, value: Optional[bytes],
                  version: int = -1) -> ZnodeStat:
        """Set the data of ``path``; returns the new stat."""
        if value is not None and not isinstance(value, bytes):
            raise TypeError("Invalid type for 'value' (must be a byte string)")
        if not isinstance(version, int):
            raise TypeError("Invalid type for 'version' (int expected)")
        full = self._full_path(path)
        result: ZnodeStat = await self._call(
            lambda r: _rq.set_data(full, value, version, r))
        return result

    async def sync(self, path: str) -> str:
        """Let the connected server catch up with the leader on ``path``."""
        full = self._full_path(path)
        result: str = await self._call(lambda r: _rq.sync(full, r))
        return self.unchroot(result)

    async def delete(self, path: str, version: int = -1,
                     recursive: bool = False) -> bool:
        """Delete ``path`` (with its descendants when ``recursive``)."""
        if not isinstance(recursive, bool):
            raise TypeError("Invalid type for 'recursive' (bool expected)")
        if not isinstance(version, int):
            raise TypeError("Invalid type for 'version' (int expected)")
        if recursive:
            await self._delete_recursive(path)
            return True
        full = self._full_path(path)
        result: bool = await self._call(lambda r: _rq.delete(full, version, r))
        return result

    async def _delete_recursive(self, path: str) -> None:
        try:
            children = await self.get_children(path)
        except NoNodeError:
            return
        base = path.rstrip("/")
        if children:
            await asyncio.gather(*(self._delete_recursive(base + "/" + child)
                                   for child in children))
        try:
            await self.delete(path)
        except NoNodeError:
            pass

    async def create(self, path: str, value: Optional[bytes] = b"",
                     acl: Optional[Sequence[ACL]] = None,
                     ephemeral: bool = False, sequence: bool = False,
                     makepath: bool = False, include_data: bool = False
                     ) -> Any:
        """Create a node; returns its path (and stat with
        ``include_data``), as kazoo's ``create``."""
        acl = acl or self.default_acl
        flags = _rq.create_flags(path, value, acl, ephemeral, sequence,
                                 makepath, include_data)
        full = _prefix_root(self.chroot, path, trailing=sequence)
        use_acl = acl or OPEN_ACL_UNSAFE

        def build(r: FutureResult) -> Request:
            return _rq.create(full, value, use_acl, flags, include_data, r)

        try:
            result = await self._call(build)
        except NoNodeError:
            if not makepath:
                raise
            if sequence and path.endswith("/"):
                parent = path.rstrip("/")
            else:
                parent, _ = _split_path(path)
            await self.ensure_path(parent, acl)
            result = await self._call(build)
        if include_data:
            return self.unchroot(result[0]), result[1]
        return self.unchroot(result)

    async def ensure_path(self, path: str,
                          acl: Optional[Sequence[ACL]] = None) -> bool:
        """Create ``path`` and its missing ancestors."""
        acl = acl or self.default_acl
        if await self.exists(path):
            return True
        parent, node = _split_path(path)
        if node and parent != path:
            await self.ensure_path(parent, acl)
        try:
            await self.create(path, acl=acl)
        except NodeExistsError:
            pass
        return True

    async def get_acls(self, path: str) -> Tuple[List[ACL], ZnodeStat]:
        """The ACL and stat of ``path``."""
        full = self._full_path(path)
        result: Tuple[List[ACL], ZnodeStat] = await self._call(
            lambda r: _rq.kazoo_request(ks.GetACL(full), r))
        return result

    async def set_acls(self, path: str, acls: Sequence[ACL],
                       version: int = -1) -> ZnodeStat:
        """Set the ACL of ``path``; returns its stat."""
        if isinstance(acls, ACL) or not isinstance(acls, (tuple, list)):
            raise TypeError("Invalid type for 'acl' (acl must be a tuple/list"
                            " of ACL's)")
        full = self._full_path(path)
        result: ZnodeStat = await self._call(
            lambda r: _rq.kazoo_request(ks.SetACL(full, acls, version), r))
        return result

    async def add_auth(self, scheme: str, credential: str) -> bool:
        """Send credentials (kept and sent again on every reconnect)."""
        if not isinstance(scheme, str):
            raise TypeError("Invalid type for 'scheme' (string expected)")
        if not isinstance(credential, str):
            raise TypeError("Invalid type for 'credential' (string expected)")
        self.auth_data.add((scheme, credential))
        connection = self._connection
        if connection is not None:
            connection.auth_data = list(self.auth_data)
        await self._call(lambda r: _rq.kazoo_request(
            ks.Auth(0, scheme, credential), r))
        return True

    def transaction(self) -> AsyncTransaction:
        """A transaction; ``await txn.commit()`` sends it."""
        return AsyncTransaction(self)

    async def _commit(self, operations: List[Any]) -> List[Any]:
        result: List[Any] = await self._call(
            lambda r: _rq.kazoo_request(ks.Transaction(operations), r))
        return result

    def add_watch_async(self, path: str, watch: WatchFunc, mode: int
                        ) -> "asyncio.Future[bool]":
        """Put an addWatch in flight now (see :meth:`add_watch`); the
        future of its reply."""
        if not callable(watch):
            raise TypeError("Invalid type for 'watch' (must be a callable)")
        full = self._full_path(path)
        recursive = int(mode) == 1
        return self._call(
            lambda r: _rq.add_watch(full, watch, recursive, r))

    async def add_watch(self, path: str, watch: WatchFunc,
                        mode: int) -> bool:
        """Add a persistent (``AddWatchMode.PERSISTENT``) or recursive
        (``AddWatchMode.PERSISTENT_RECURSIVE``) watch (ZooKeeper 3.6+)."""
        result: bool = await self.add_watch_async(path, watch, mode)
        return result

    async def remove_all_watches(self, path: str,
                                 watcher_type: WatcherType) -> bool:
        """Remove every watch of ``watcher_type`` this session holds on
        ``path``; raises NoWatcherError when there is none."""
        full = self._full_path(path)
        watcher_type = WatcherType(watcher_type)
        result: bool = await self._call(
            lambda r: _rq.remove_watches(full, watcher_type, r))
        return result

    async def release_watches(self, path: str, func: WatchFunc,
                              watcher_type: WatcherType = WatcherType.ANY
                              ) -> None:
        """Stop ``func``'s watches of ``watcher_type`` on ``path``: they
        are removed from the server when no other function of this client
        shares them (ZooKeeper keeps one watch per kind, path and session,
        and removeWatches drops it for every function behind it); else
        they stay for the others.  A watch already gone (fired, or with
        the session) is not an error."""
        full = self._full_path(path)
        watcher_type = WatcherType(watcher_type)
        if not must_remove(self.machine.watches, full, func, watcher_type):
            return
        try:
            await self.remove_all_watches(path, watcher_type)
        except (NoWatcherError, NoNodeError, ConnectionLoss,
                ConnectionClosedError, SessionExpiredError):
            pass

    async def command(self, cmd: bytes = b"ruok") -> str:
        """Send a four-letter management command to the connected server
        (on a connection of its own); its textual answer.

        :raises ConnectionLoss: no server is connected.
        """
        self._check_loop()
        connection = self._connection
        where = connection.connected_host if connection is not None else None
        if where is None:
            raise ConnectionLoss("No connection to server")
        host, port = where
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            host, port, ssl=self._ssl,
            server_hostname=host if self._ssl else None),
            self._timeout_ms / 1000.0)
        try:
            writer.write(cmd)
            answer = await asyncio.wait_for(reader.read(65536),
                                            self._timeout_ms / 1000.0)
        finally:
            writer.close()
        return answer.decode("utf-8", "replace")

    async def server_version(self, retries: int = 3) -> Tuple[int, ...]:
        """The version of the connected server, e.g. ``(3, 8, 4)``."""
        for _ in range(retries + 1):
            data = await self.command(b"envi")
            for line in data.splitlines():
                key, _sep, value = line.partition("=")
                if key.strip() == "zookeeper.version":
                    match = re.match(r"([\d.]+)", value.strip())
                    if match:
                        version = tuple(int(d) for d in
                                        match.group(1).strip(".").split("."))
                        if len(version) > 1:
                            return version
        raise KazooException("Unable to fetch useable server version")

    async def retry(self, func: Callable[..., Awaitable[Any]], *args: Any,
                    **kwargs: Any) -> Any:
        """Await ``func(*args, **kwargs)`` until it completes without a
        connection loss or timeout, paced by ``command_retry`` (a
        :class:`kazoo.retry.KazooRetry`; by default up to 5 tries), as
        kazoo's ``client.retry`` does.

        :raises RetryFailedError: the tries or the deadline ran out.
        """
        policy = self.command_retry or KazooRetry(max_tries=5)
        if isinstance(policy, dict):
            policy = KazooRetry(**policy)
        tries = 0
        delay = float(policy.delay)
        loop = self._check_loop()
        stop_at = (None if policy.deadline is None
                   else loop.time() + policy.deadline)
        while True:
            try:
                return await func(*args, **kwargs)
            except ConnectionClosedError:
                raise
            except policy.retry_exceptions:
                tries += 1
                if tries == policy.max_tries:
                    raise RetryFailedError("Too many retry attempts")
                pause = delay * random.uniform(1.0 - policy.max_jitter,
                                               1.0 + policy.max_jitter)
                if stop_at is not None and loop.time() + pause >= stop_at:
                    raise RetryFailedError("Exceeded retry deadline")
                await asyncio.sleep(pause)
                delay = min(pause * policy.backoff, policy.max_delay)


def _call_watcher(func: WatchFunc, event: WatchedEvent) -> None:
    try:
        result = func(event)
        if inspect.isawaitable(result):
            asyncio.ensure_future(result)
    except Exception:
        import logging

        logging.getLogger("fastzk.aio").exception("Error in watch callback")
