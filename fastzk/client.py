"""The kazoo-compatible face: :class:`KazooClient`.

fastzk's client *is* a :class:`kazoo.client.KazooClient`: the constructor,
every public method, the recipes bound to it (``zk.Lock``, ``zk.Election``
...) and the state listeners are kazoo's.  What changes is underneath: the
connection is fastzk's :class:`~fastzk.drivers.engine.Engine`, the hot
requests are encoded and decoded by fastzk's core, and synchronous calls
read their own replies instead of handing off to an I/O thread.  Requests
fastzk does not encode itself (ACLs, auth, reconfig, transactions) are
serialized by kazoo's own request classes and travel over the same
connection and session.

The class is the constructor over a few parts, one job each:
:mod:`fastzk.kazooface.session` (starting, stopping, the session's state
as kazoo reports it, kazoo's ``_call``), :mod:`fastzk.kazooface.watches`
(watch events to kazoo's watchers, persistent watches),
:mod:`fastzk.kazooface.data` (create, get, set, delete, exists,
get_children) and :mod:`fastzk.kazooface.recipes` (what
:mod:`fastzk.kazooface.fastpath` gives the recipes).
"""

import logging
import threading
import warnings
from functools import partial
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from kazoo.exceptions import ConfigurationError
from kazoo.security import ACL
from kazoo.handlers.threading import SequentialThreadingHandler
from kazoo.retry import KazooRetry
from kazoo.protocol.states import WatchedEvent

from fastzk.kazooface.data import DataOperations
from fastzk.kazooface.recipes import RecipeOperations
from fastzk.kazooface.results import result_factory
from fastzk.kazooface.session import SessionLifecycle
from fastzk.kazooface.session import StateListener  # noqa: F401 (kazoo face)
from fastzk.kazooface.watches import WatchRouting
from fastzk.drivers.batching import DEFAULT_PAUSE, check_pause
from fastzk.drivers.dispatch import Dispatcher
from fastzk.drivers.tls import TlsTransport, client_context
from fastzk.drivers.engine import Engine
from fastzk.kazooface.fastpath import FastPath
from fastzk.protocol import sasl as _sasl
from fastzk.lock import Lock, ReadLock, Semaphore, WriteLock
from fastzk.watchers import ChildrenWatch, DataWatch
from fastzk.protocol.watches import AddWatchMode, WatcherType

__all__ = ["KazooClient", "AddWatchMode", "WatcherType"]

#: A watch function: called with one :class:`~kazoo.protocol.states.WatchedEvent`.
WatchFunc = Callable[[WatchedEvent], Any]
# An ACL: a kazoo.security.ACL, or a (perms, scheme, id) tuple.
_ACL = Union[ACL, Tuple[int, str, str]]

log = logging.getLogger(__name__)


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


class KazooClient(SessionLifecycle, WatchRouting, DataOperations,
                  RecipeOperations):
    """A ZooKeeper client with kazoo's API and fastzk's engine.

    Takes the arguments of :class:`kazoo.client.KazooClient`, plus

    - ``reconnect_on_expiry`` (default True): whether to open a new session
      by itself after the session expired;
    - ``cached_lock_checks`` (default False): let a non-blocking lock
      attempt that finds the lock held answer the next attempts on that
      path from the children list a child watch keeps current, without a
      round trip, until the watch fires (see :mod:`fastzk.protocol.childview`).
      Exact for this session's own changes; another session's release is
      seen when its event arrives, where kazoo's fresh read sees it at
      once on a standalone server;
    - ``reply_batching`` (default 0.001, in seconds): while 64 or more
      replies are outstanding (``*_async`` calls in flight) and a read
      brought only a few, the connection's thread stops reading this long
      so that the next read takes many replies at once, saving a wake-up
      per reply or two (see :mod:`fastzk.drivers.batching`); 0 reads each
      reply as it arrives.

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
                 reply_batching: float = DEFAULT_PAUSE,
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
        reply_batching = check_pause(reply_batching)
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
        self._new_result = result_factory(self.handler)
        self._reconnect_on_expiry = bool(reconnect_on_expiry)
        #: Whether non-blocking lock attempts may answer from watched
        #: children lists (the ``cached_lock_checks`` argument).
        self.cached_lock_checks = bool(cached_lock_checks)
        #: The pause of reply batching, in seconds (the ``reply_batching``
        #: argument; see :mod:`fastzk.drivers.batching`).
        self.reply_batching = reply_batching
        # What the recipes reach through
        # fastzk.kazooface.fastpath.fast_path_of.
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
