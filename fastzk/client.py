"""The kazoo-compatible face: :class:`KazooClient`.

fastzk's client *is* a :class:`kazoo.client.KazooClient`: the constructor,
every public method, the recipes bound to it (``zk.Lock``, ``zk.Election``
...) and the state listeners are kazoo's.  What changes is underneath: the
connection is fastzk's :class:`~fastzk.engine.Engine`, the hot requests are
encoded and decoded by fastzk's core, and synchronous calls read their own
replies instead of handing off to an I/O thread.  Requests fastzk does not
encode itself (ACLs, auth, reconfig, transactions) are serialized by kazoo's
own request classes and travel over the same connection and session.
"""

import logging
import threading
import time
import warnings
from functools import partial
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

import kazoo.client
from os.path import split as _split_path

from kazoo.exceptions import ConfigurationError, NoNodeError
from kazoo.security import ACL, OPEN_ACL_UNSAFE
from kazoo.handlers.threading import SequentialThreadingHandler
from kazoo.protocol import serialization as ks
from kazoo.protocol.connection import _CONNECTION_DROP, _SESSION_EXPIRED
from kazoo.protocol.paths import _prefix_root
from kazoo.interfaces import IAsyncResult
from kazoo.retry import KazooRetry
from kazoo.protocol.states import (
    ZnodeStat,
    EventType,
    KazooState,
    KeeperState,
    WatchedEvent,
)

from fastzk._core import codec
from fastzk.dispatch import Dispatcher
from fastzk.drivers.tls import TlsTransport, client_context
from fastzk.drivers.waiter import Waiter
from fastzk.engine import Engine
from fastzk.fastpath import FastPath
from fastzk.protocol import builders as _rq
from fastzk.protocol import sasl as _sasl
from fastzk.protocol import session as _session
from fastzk.protocol.session import Request
from fastzk.protocol.states import kazoo_state_after
from fastzk.lock import Lock, ReadLock, Semaphore, WriteLock
from fastzk.watchers import ChildrenWatch, DataWatch
from fastzk import watches as _watches
from fastzk.watches import EVENT_TYPES, AddWatchMode, WatcherType

__all__ = ["KazooClient", "AddWatchMode", "WatcherType"]

#: A watch function: called with one :class:`~kazoo.protocol.states.WatchedEvent`.
WatchFunc = Callable[[WatchedEvent], Any]
#: A connection state listener: called with a
#: :class:`~kazoo.protocol.states.KazooState`; returning True removes it.
StateListener = Callable[[str], Any]
# An ACL: a kazoo.security.ACL, or a (perms, scheme, id) tuple.
_ACL = Union[ACL, Tuple[int, str, str]]

log = logging.getLogger(__name__)

# How each kazoo request class is encoded by fastzk's core, and how its
# reply is read.  Anything not listed is serialized by kazoo itself.
_PATH_WATCH = {
    ks.Exists: (codec.EXISTS, _session.R_STAT),
    ks.GetData: (codec.GET_DATA, _session.R_DATA_STAT),
    ks.GetChildren: (codec.GET_CHILDREN, _session.R_CHILDREN),
    ks.GetChildren2: (codec.GET_CHILDREN2, _session.R_CHILDREN_STAT),
}


def _request_for(request: Any, result: Any) -> Request:
    """Build the engine request for one of kazoo's request objects."""
    cls = type(request)
    spec = _PATH_WATCH.get(cls)
    if spec is not None:
        opcode, kind = spec
        return _rq.read(opcode, kind, request.path, request.watcher, result)
    if cls is ks.Create or cls is ks.Create2:
        return _rq.create(request.path, request.data, request.acl,
                          request.flags, cls is ks.Create2, result)
    if cls is ks.Delete:
        return _rq.delete(request.path, request.version, result)
    if cls is ks.SetData:
        return _rq.set_data(request.path, request.data, request.version,
                            result)
    if cls is ks.Sync:
        return _rq.sync(request.path, result)
    return _rq.kazoo_request(request, result)


def _sasl_configuration(
    auth_data: Optional[Sequence[Tuple[str, str]]],
    sasl_options: Optional[Dict[str, Any]],
) -> Tuple[Optional[Dict[str, Any]], List[Tuple[str, str]]]:
    """kazoo's SASL configuration: ``sasl_options``, or the ``sasl`` entry
    of ``auth_data`` turned into them (with kazoo's DeprecationWarning,
    pointing at the caller of the constructor); the other ``auth_data``."""
    if sasl_options is not None and not isinstance(sasl_options, dict):
        raise ConfigurationError("sasl_options must be a dict, not %s"
                                 % type(sasl_options).__name__)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        options, others = _sasl.sasl_options_from_auth_data(auth_data,
                                                            sasl_options)
    for warning in caught:
        warnings.warn(warning.message, warning.category, stacklevel=4)
    return options, others


class KazooClient(kazoo.client.KazooClient):
    """A ZooKeeper client with kazoo's API and fastzk's engine.

    Takes the arguments of :class:`kazoo.client.KazooClient`, plus

    - ``reconnect_on_expiry`` (default True): whether to open a new session
      by itself after the session expired;
    - ``cached_lock_checks`` (default False): let a non-blocking lock
      attempt that finds the lock held answer the next attempts on that
      path from the children list a child watch keeps current, without a
      round trip, until the watch fires (see :mod:`fastzk.childview`).
      Exact for this session's own changes; another session's release is
      seen when its event arrives, where kazoo's fresh read sees it at
      once on a standalone server.
    The handler must be kazoo's threading handler (the default); gevent and
    eventlet handlers are refused with :exc:`~kazoo.exceptions.ConfigurationError`,
    TLS takes kazoo's parameters (``use_ssl``, ``ca``, ``certfile``,
    ``keyfile``, ``keyfile_password``, ``verify_certs``,
    ``check_hostname``) with their meaning; see :mod:`fastzk.drivers.tls`.

    SASL takes kazoo's ``sasl_options`` (DIGEST-MD5 built in, GSSAPI with
    the optional ``gssapi`` package) or a ``("sasl", "user:password")``
    entry of ``auth_data``, checked here (a
    :exc:`~kazoo.exceptions.ConfigurationError` says what is wrong).  The
    exchange runs on every connection before anything else is sent, and
    the client reports CONNECTED only after it succeeded; a refused
    authentication makes :meth:`start` raise
    :exc:`~kazoo.exceptions.AuthFailedError` at once.

    Basic Example:

    .. code-block:: python

        from fastzk import KazooClient

        zk = KazooClient(hosts="127.0.0.1:2181")
        zk.start()
        children = zk.get_children("/")
        zk.stop()
    """

    # kazoo's, set by its constructor: KeeperState and KazooState values.
    _state: str
    state: str

    # Lock recipes bound their synchronous calls by a deadline with this
    # (see fastzk.drivers.waiter.bounded); kazoo's client has no such thing.
    _bounded = staticmethod(Engine.bounded)

    def __init__(self, hosts: Union[str, List[str]] = "127.0.0.1:2181",
                 timeout: float = 10.0,
                 client_id: Optional[Tuple[int, bytes]] = None,
                 handler: Optional[SequentialThreadingHandler] = None,
                 default_acl: Optional[Sequence[ACL]] = None,
                 auth_data: Optional[Sequence[Tuple[str, str]]] = None,
                 sasl_options: Optional[Dict[str, Any]] = None,
                 read_only: Optional[bool] = None,
                 randomize_hosts: bool = True,
                 connection_retry: Optional[Union[KazooRetry,
                                                  Dict[str, Any]]] = None,
                 command_retry: Optional[Union[KazooRetry,
                                               Dict[str, Any]]] = None,
                 logger: Optional[logging.Logger] = None,
                 keyfile: Optional[str] = None,
                 keyfile_password: Optional[str] = None,
                 certfile: Optional[str] = None, ca: Optional[str] = None,
                 use_ssl: bool = False, verify_certs: bool = True,
                 check_hostname: bool = False,
                 reconnect_on_expiry: bool = True,
                 cached_lock_checks: bool = False,
                 **kwargs: Any) -> None:
        if handler is not None and not isinstance(
                handler, SequentialThreadingHandler):
            raise ConfigurationError(
                "fastzk supports only kazoo's threading handler "
                "(kazoo.handlers.threading.SequentialThreadingHandler), not "
                "%s; use kazoo's own KazooClient for gevent or eventlet"
                % type(handler).__name__
            )
        tls_context = None
        if use_ssl:
            tls_context = client_context(
                ca=ca, certfile=certfile, keyfile=keyfile,
                keyfile_password=keyfile_password, verify_certs=verify_certs,
                check_hostname=check_hostname)
        sasl_options, auth_data = _sasl_configuration(auth_data, sasl_options)
        #: kazoo's ``sasl_options``, normalized, or None without SASL.
        self._sasl_options = (None if sasl_options is None
                              else _sasl.normalize_sasl_options(sasl_options))
        super().__init__(
            hosts=hosts, timeout=timeout, client_id=client_id, handler=handler,
            default_acl=default_acl, auth_data=auth_data,
            sasl_options=sasl_options, read_only=read_only,
            randomize_hosts=randomize_hosts, connection_retry=connection_retry,
            command_retry=command_retry, logger=logger, keyfile=keyfile,
            keyfile_password=keyfile_password, certfile=certfile, ca=ca,
            use_ssl=use_ssl, verify_certs=verify_certs,
            check_hostname=check_hostname, **kwargs)
        self._connection = Engine(self, self._conn_retry.copy(),
                                  logger=self.logger)
        if tls_context is not None:
            self._connection.transport = TlsTransport(tls_context)
        self._events = Dispatcher()
        self._reconnect_on_expiry = bool(reconnect_on_expiry)
        #: Whether non-blocking lock attempts may answer from watched
        #: children lists (the ``cached_lock_checks`` argument).
        self.cached_lock_checks = bool(cached_lock_checks)
        # What the recipes reach through fastzk.fastpath.fast_path_of.
        self._fast_path = FastPath(self)
        self._expiry_callbacks: List[Callable[[], Any]] = []
        self._state_lock = threading.RLock()
        self._queue = self._connection._queue
        self._pending = self._connection._pending
        self.Lock = partial(Lock, self)
        self.ReadLock = partial(ReadLock, self)
        self.WriteLock = partial(WriteLock, self)
        self.Semaphore = partial(Semaphore, self)
        self.DataWatch = partial(DataWatch, self)
        self.ChildrenWatch = partial(ChildrenWatch, self)

    # -- kazoo internals that kazoo's own recipes and tests look at ----------

    @property
    def _data_watchers(self) -> Dict[str, Set[WatchFunc]]:
        connection = getattr(self, "_connection", None)
        if isinstance(connection, Engine):
            watchers: Dict[str, Set[WatchFunc]] = connection.watches.by_path(
                _watches.DATA)
            return watchers
        return {}

    @_data_watchers.setter
    def _data_watchers(self, value: Any) -> None:
        pass  # kazoo's constructor; the engine's registry is the truth

    @property
    def _child_watchers(self) -> Dict[str, Set[WatchFunc]]:
        connection = getattr(self, "_connection", None)
        if isinstance(connection, Engine):
            watchers: Dict[str, Set[WatchFunc]] = connection.watches.by_path(
                _watches.CHILD)
            return watchers
        return {}

    @_child_watchers.setter
    def _child_watchers(self, value: Any) -> None:
        pass

    def _reset(self) -> None:
        super()._reset()
        connection = getattr(self, "_connection", None)
        if isinstance(connection, Engine):
            # Requests made while disconnected, as kazoo's _queue holds them.
            self._queue = connection._queue
            self._pending = connection._pending

    # -- session state ---------------------------------------------------------

    @property
    def negotiated_timeout(self) -> Optional[int]:
        """The session timeout granted by the server, in milliseconds, or
        None before the first connection."""
        timeout: Optional[int] = self._connection.negotiated_timeout
        return timeout

    def on_session_expired(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` each time the session expires.

        Expiry is reported by the server when the client reconnects, or
        decided by the client after a whole session timeout without a
        server.  Either way the session's ephemeral nodes and watches are
        gone; unless the client was made with ``reconnect_on_expiry=False``
        it opens a new session by itself, and the callback is the place to
        rebuild application state on it.  fastzk's recipes (locks, caches,
        persistent watches) handle this themselves.  Callbacks run on the
        client's event thread.
        """
        if not callable(callback):
            raise ConfigurationError("callback must be callable")
        self._expiry_callbacks.append(callback)

    def _session_callback(self, state: str) -> None:
        with self._state_lock:
            self._change_session_state(state)

    def _change_session_state(self, state: str) -> None:
        # kazoo's state machine (fastzk.protocol.states), with one
        # difference: a lost connection keeps the watches, because the
        # engine restores them on the next connection instead of firing
        # and dropping them.
        previous = self._state
        if state == previous:
            return
        if state == KeeperState.EXPIRED_SESSION:
            for callback in self._expiry_callbacks:
                self._dispatch(callback)
        self._state = state
        seen = kazoo_state_after(previous, state)
        if seen == KazooState.CONNECTED:
            self.logger.info("Zookeeper connection established, state: %s",
                             state)
            self._live.set()
        elif seen == KazooState.LOST:
            self.logger.info("Zookeeper session closed, state: %s", state)
            self._live.clear()
        elif seen == KazooState.SUSPENDED:
            self.logger.info("Zookeeper connection lost")
            self._live.clear()
        if seen is not None:
            self._make_state_change(seen)
        if seen == KazooState.LOST:
            self._reset()

    def _make_state_change(self, state: str) -> None:
        if self.state == state:
            return
        self.state = state
        for listener in list(self.state_listeners):
            self._dispatch(self._run_listener, listener, state)

    def _run_listener(self, listener: StateListener, state: str) -> None:
        try:
            if listener(state) is True:
                self.remove_listener(listener)
        except Exception:
            self.logger.exception("Error in connection state listener")

    def _reset_watchers(self) -> None:
        connection = getattr(self, "_connection", None)
        if not isinstance(connection, Engine):
            return  # called by kazoo's constructor, before the engine exists
        event = WatchedEvent(EventType.NONE, self._state, None)
        for func in connection.watches.clear_one_shot():
            self._dispatch(func, event)

    def _dispatch(self, func: Callable[..., Any], *args: Any) -> None:
        """Run ``func(*args)`` on the client's event thread, never on the
        thread that reads the socket.  Before start and after stop the call
        is made directly."""
        events = self._events
        if events.running:
            events.put(func, *args)
        else:
            func(*args)

    def _dispatch_watch(self, event_type: int, path: str,
                        funcs: Sequence[WatchFunc]) -> None:
        if self._stopped.is_set():
            return
        event = WatchedEvent(EVENT_TYPES[event_type], self._state,
                             self.unchroot(path))
        put = self._events.put
        for func in funcs:
            put(func, event)

    def _dispatch_reconnected(
            self, persistent: Sequence[Tuple[int, str, Sequence[WatchFunc]]]
    ) -> None:
        # One NONE event per persistent watcher, carrying the new state and
        # the watched path: changes may have been missed while disconnected.
        for _kind, path, funcs in persistent:
            event = WatchedEvent(EventType.NONE, self._state,
                                 self.unchroot(path))
            for func in funcs:
                self._dispatch(func, event)

    # -- persistent watches --------------------------------------------------------

    def add_watch(self, path: str, watch: WatchFunc,
                  mode: AddWatchMode) -> bool:
        """Add a persistent watch (ZooKeeper 3.6+).

        The watch stays until removed with :meth:`remove_all_watches`, and is
        restored after every reconnect and re-added on a new session after
        an expiry; each time, the watcher receives an event of type
        ``EventType.NONE`` with the new state, as changes may have been
        missed in between.

        :param path: path of the node to watch.
        :param watch: a callable taking a
                      :class:`~kazoo.protocol.states.WatchedEvent`.
        :param mode: :attr:`AddWatchMode.PERSISTENT` (the node's data, its
                     children list and its existence) or
                     :attr:`AddWatchMode.PERSISTENT_RECURSIVE` (the node and
                     every descendant; no child events).
        :raises: :exc:`~kazoo.exceptions.ZookeeperError` if the server
                 returns a non-zero error code (an older server refuses
                 the request with UnimplementedError).
        """
        added: bool = self.add_watch_async(path, watch, mode).get()
        return added

    def add_watch_async(self, path: str, watch: WatchFunc,
                        mode: AddWatchMode) -> IAsyncResult:
        """Asynchronously add a persistent watch. Takes the same arguments
        as :meth:`add_watch`."""
        if not isinstance(path, str):
            raise TypeError("Invalid type for 'path' (string expected)")
        if not callable(watch):
            raise TypeError("Invalid type for 'watch' (must be a callable)")
        mode = AddWatchMode(mode)
        full = self._full_path(path)
        result = self.handler.async_result()
        self._connection.submit(_rq.add_watch(
            full, watch, mode == AddWatchMode.PERSISTENT_RECURSIVE, result))
        return result

    def remove_all_watches(self, path: str,
                           watcher_type: WatcherType) -> bool:
        """Remove every watch of ``watcher_type`` on ``path`` this session
        holds, on the server and in the client.

        :param watcher_type: :attr:`WatcherType.CHILDREN`,
                             :attr:`WatcherType.DATA` or
                             :attr:`WatcherType.ANY`.  As on the server
                             (ZooKeeper 3.6-3.8), DATA and ANY also remove
                             a persistent or recursive watch on the path,
                             and CHILDREN a persistent one.
        :raises: :exc:`~kazoo.exceptions.NoWatcherError` when the session
                 has no such watch on the path.
        """
        removed: bool = self.remove_all_watches_async(path,
                                                      watcher_type).get()
        return removed

    def remove_all_watches_async(self, path: str, watcher_type: WatcherType
                                 ) -> IAsyncResult:
        """Asynchronously remove watches. Takes the same arguments as
        :meth:`remove_all_watches`."""
        if not isinstance(path, str):
            raise TypeError("Invalid type for 'path' (string expected)")
        watcher_type = WatcherType(watcher_type)
        full = self._full_path(path)
        result = self.handler.async_result()
        self._connection.submit(_rq.remove_watches(full, watcher_type, result))
        return result

    # -- requests ----------------------------------------------------------------

    def _call(self, request: Any, async_object: IAsyncResult) -> None:
        if request is _CONNECTION_DROP:
            self._connection.drop_connection()
            return None
        if request is _SESSION_EXPIRED:
            self._connection.expire_session()
            return None
        self._connection.submit(_request_for(request, async_object))
        return None

    def stop(self) -> None:
        """Gracefully stop this Zookeeper session.

        Sends closeSession (the server removes the session's ephemeral nodes
        and fires their watches), waits for the reply, and stops the session
        thread.
        """
        if self._stopped.is_set():
            return
        self._stopped.set()
        try:
            self._connection.close_session(
                max(1.0, self._session_timeout / 1000.0))
        finally:
            try:
                self._safe_close()
            finally:
                self._events.stop()

    def start(self, timeout: Optional[float] = 15) -> None:
        """Initiate connection to ZK.

        Same contract as :meth:`kazoo.client.KazooClient.start`; the
        timeout exception's message also says why the last attempt on each
        server failed.

        :param timeout: Time in seconds to wait for connection to
                        succeed (None or infinity: no limit).
        :raises: :attr:`~kazoo.interfaces.IHandler.timeout_exception`
                 if the connection wasn't established within `timeout`
                 seconds.
        :raises kazoo.exceptions.AuthFailedError: at once, when the server
            refused the SASL authentication (``SessionClosedRequireSaslError``
            on a server that requires it); the message says what failed.
        """
        if timeout is not None and timeout > threading.TIMEOUT_MAX:
            timeout = None
        event = self.start_async()
        self._connection.wait_connected(event, timeout)
        if not self.connected:
            # We time-out, ensure we are disconnected
            self.stop()
            errors = self._connection.connect_errors()
            failure = self._connection.fatal_error
            self.close()
            if failure is not None:
                raise type(failure)(*failure.args)
            raise self.handler.timeout_exception(
                "Connection time-out" + _describe_connect_errors(errors))
        if self.chroot and not self.exists("/"):
            warnings.warn(
                "No chroot path exists, the chroot path "
                "should be created before normal use."
            )

    def start_async(self) -> threading.Event:
        """Asynchronously initiate connection to ZK.

        Same contract as :meth:`kazoo.client.KazooClient.start_async`.
        """
        if not self._live.is_set():
            self._events.start()
        live: threading.Event = super().start_async()
        return live

    def _full_path(self, path: str) -> str:
        """The server path of ``path``: chroot prefixed, normalised as
        kazoo's ``_prefix_root`` does.  Already-normal paths (the common
        case) skip kazoo's general normalisation."""
        if (path[:1] == "/" and path[-1:] != "/" and "//" not in path
                and "/." not in path):
            chroot = self.chroot
            return chroot + path if chroot else path
        full: str = _prefix_root(self.chroot, path)
        return full

    # Each hot request is built once, for the synchronous method (with a
    # Waiter, read by the calling thread) and the asynchronous one (with
    # kazoo's async result) alike; the checks and messages are kazoo's.

    def _read_request(self, opcode: int, kind: int, path: str,
                      watch: Optional[WatchFunc], result: Any) -> Request:
        if not isinstance(path, str):
            raise TypeError("Invalid type for 'path' (string expected)")
        if watch and not callable(watch):
            raise TypeError("Invalid type for 'watch' (must be a callable)")
        return _rq.read(opcode, kind, self._full_path(path), watch or None,
                        result)

    def _children_request(self, path: str, watch: Optional[WatchFunc],
                          include_data: bool, result: Any) -> Request:
        if not isinstance(include_data, bool):
            raise TypeError("Invalid type for 'include_data' (bool expected)")
        if include_data:
            return self._read_request(codec.GET_CHILDREN2,
                                      _session.R_CHILDREN_STAT, path, watch,
                                      result)
        return self._read_request(codec.GET_CHILDREN, _session.R_CHILDREN,
                                  path, watch, result)

    def _set_request(self, path: str, value: Optional[bytes], version: int,
                     result: Any) -> Request:
        if not isinstance(path, str):
            raise TypeError("Invalid type for 'path' (string expected)")
        if value is not None and not isinstance(value, bytes):
            raise TypeError("Invalid type for 'value' (must be a byte string)")
        if not isinstance(version, int):
            raise TypeError("Invalid type for 'version' (int expected)")
        return _rq.set_data(self._full_path(path), value, version, result)

    def _delete_request(self, path: str, version: int,
                        result: Any) -> Request:
        if not isinstance(path, str):
            raise TypeError("Invalid type for 'path' (string expected)")
        if not isinstance(version, int):
            raise TypeError("Invalid type for 'version' (int expected)")
        return _rq.delete(self._full_path(path), version, result)

    def _submit(self, request: Request) -> IAsyncResult:
        self._connection.submit(request)
        return request.result

    def get_children_async(self, path: str, watch: Optional[WatchFunc] = None,
                           include_data: bool = False) -> IAsyncResult:
        """Asynchronously get a list of child nodes of a path. Takes the
        same arguments as :meth:`get_children`."""
        return self._submit(self._children_request(
            path, watch, include_data, self.handler.async_result()))

    def get_async(self, path: str,
                  watch: Optional[WatchFunc] = None) -> IAsyncResult:
        """Asynchronously get the value of a node. Takes the same arguments
        as :meth:`get`."""
        return self._submit(self._read_request(
            codec.GET_DATA, _session.R_DATA_STAT, path, watch,
            self.handler.async_result()))

    def exists_async(self, path: str,
                     watch: Optional[WatchFunc] = None) -> IAsyncResult:
        """Asynchronously check if a node exists. Takes the same arguments
        as :meth:`exists`."""
        return self._submit(self._read_request(
            codec.EXISTS, _session.R_STAT, path, watch,
            self.handler.async_result()))

    def set_async(self, path: str, value: Optional[bytes],
                  version: int = -1) -> IAsyncResult:
        """Asynchronously set the value of a node. Takes the same arguments
        as :meth:`set`."""
        return self._submit(self._set_request(path, value, version,
                                              self.handler.async_result()))

    def delete_async(self, path: str, version: int = -1) -> IAsyncResult:
        """Asynchronously delete a node. Takes the same arguments as
        :meth:`delete`, except for ``recursive``."""
        return self._submit(self._delete_request(path, version,
                                                 self.handler.async_result()))

    def _watched_children(self, path: str) -> List[str]:
        """The children of ``path``, from the connection's
        :class:`~fastzk.childview.ChildrenView` when a child watch keeps
        them current, else read with such a watch (for the lock recipes'
        non-blocking check).  The list returned must not be changed."""
        full = self._full_path(path)
        view = self._connection.children_view
        children: Optional[List[str]] = view.get(full)
        if children is not None:
            # Answered without I/O: give up the GIL for a moment, or a
            # caller looping on this answer starves the reader thread that
            # delivers the watch events which would change it (CPython
            # takes the GIL from a busy thread only every 5 ms).
            time.sleep(0)
            return children
        token = view.token()
        # Watched (by the view, not by a function) when the view takes it.
        request = Request(codec.GET_CHILDREN,
                          _rq.path_watch_frame(codec.GET_CHILDREN, full,
                                               token is not None),
                          _session.R_CHILDREN, Waiter(), full)
        request.view_token = token
        children = self._connection.call(request)
        return children

    def _create_and_list(
            self, path: str, value: Optional[bytes], ephemeral: bool
    ) -> Tuple[str, ZnodeStat, Optional[List[str]]]:
        """Create a sequential node at ``path`` and read its parent's
        children, in one round trip (for the lock recipes).

        Both requests are written before either reply is awaited: the
        server runs a session's requests in the order they were sent
        (ZooKeeper's FIFO client order), so the list includes the new node
        and every contender created before it.

        :returns: ``(created_path, stat, children)``; ``children`` is None
                  when the read failed after the create succeeded (the
                  caller reads again).
        :raises: the create's error (e.g. NoNodeError when the parent is
                 missing: nothing was created), or the read's timeout
                 inside :meth:`_bounded` when the create's reply is not in.
        """
        full = _prefix_root(self.chroot, path, trailing=True)
        parent = full.rsplit("/", 1)[0] or "/"
        flags = 3 if ephemeral else 2  # sequential, maybe ephemeral
        create = _rq.create(full, value, self.default_acl or OPEN_ACL_UNSAFE,
                            flags, True, Waiter())
        listing = _rq.read(codec.GET_CHILDREN, _session.R_CHILDREN, parent,
                           None, Waiter())
        connection = self._connection
        # This thread reads both replies: no reader is woken for the first.
        connection.submit(create, False)
        children = None
        try:
            children = connection.call(listing)
        except Exception:
            if not create.result.done:
                raise
        created, stat = create.result.result()
        return self.unchroot(created), stat, children

    def get_children(self, path: str, watch: Optional[WatchFunc] = None,
                     include_data: bool = False
                     ) -> Union[List[str], Tuple[List[str], ZnodeStat]]:
        """Get a list of child nodes of a path.

        Same contract as :meth:`kazoo.client.KazooClient.get_children`.
        """
        children: Union[List[str], Tuple[List[str], ZnodeStat]] = \
            self._connection.call(self._children_request(
                path, watch, include_data, Waiter()))
        return children

    def get(self, path: str, watch: Optional[WatchFunc] = None
            ) -> Tuple[Optional[bytes], ZnodeStat]:
        """Get the value of a node.

        Same contract as :meth:`kazoo.client.KazooClient.get`.
        """
        data_stat: Tuple[Optional[bytes], ZnodeStat] = self._connection.call(
            self._read_request(codec.GET_DATA, _session.R_DATA_STAT, path,
                               watch, Waiter()))
        return data_stat

    def exists(self, path: str, watch: Optional[WatchFunc] = None
               ) -> Optional[ZnodeStat]:
        """Check if a node exists.

        Same contract as :meth:`kazoo.client.KazooClient.exists`.
        """
        return self._connection.call(self._read_request(
            codec.EXISTS, _session.R_STAT, path, watch, Waiter()))

    def set(self, path: str, value: Optional[bytes],
            version: int = -1) -> ZnodeStat:
        """Set the value of a node.

        Same contract as :meth:`kazoo.client.KazooClient.set`.
        """
        return self._connection.call(self._set_request(path, value, version,
                                                       Waiter()))

    def delete(self, path: str, version: int = -1,
               recursive: bool = False) -> bool:
        """Delete a node.

        Same contract as :meth:`kazoo.client.KazooClient.delete`.
        """
        if not isinstance(recursive, bool):
            raise TypeError("Invalid type for 'recursive' (bool expected)")
        deleted: bool
        if recursive:
            deleted = self._delete_recursive(path)
            return deleted
        deleted = self._connection.call(self._delete_request(path, version,
                                                             Waiter()))
        return deleted

    def create(self, path: str, value: Optional[bytes] = b"",
               acl: Optional[Sequence[ACL]] = None, ephemeral: bool = False,
               sequence: bool = False, makepath: bool = False,
               include_data: bool = False) -> Union[str, Tuple[str, ZnodeStat]]:
        """Create a node with the given value as its data.

        Same contract as :meth:`kazoo.client.KazooClient.create`.
        """
        acl = acl or self.default_acl
        flags = _rq.create_flags(path, value, acl, ephemeral, sequence,
                                 makepath, include_data)
        if acl is None:
            acl = OPEN_ACL_UNSAFE
        full = _prefix_root(self.chroot, path, trailing=sequence)
        try:
            result = self._connection.call(
                _rq.create(full, value, acl, flags, include_data, Waiter()))
        except NoNodeError:
            if not makepath:
                raise
            if sequence and path.endswith("/"):
                parent = path.rstrip("/")
            else:
                parent, _ = _split_path(path)
            self.ensure_path(parent, acl)
            result = self._connection.call(
                _rq.create(full, value, acl, flags, include_data, Waiter()))
        if include_data:
            return self.unchroot(result[0]), result[1]
        created: str = self.unchroot(result)
        return created


def _describe_connect_errors(
        errors: Dict[Tuple[str, int], BaseException]) -> str:
    """`` (host:port: error; ...)`` for :meth:`KazooClient.start`'s
    timeout message, or "" when no attempt has failed yet."""
    if not errors:
        return ""
    return " (%s)" % "; ".join(
        "%s:%s: %s" % (host, port, error or type(error).__name__)
        for (host, port), error in sorted(errors.items()))
