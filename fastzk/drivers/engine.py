"""The thread driver: one session over one connection at a time.

:class:`Engine` drives the :class:`~fastzk.protocol.session.SessionMachine`
(which does no I/O) with a socket, threads and the clock:

- its session thread (:mod:`fastzk.drivers.session_thread`) connects to
  the hosts in turn (:mod:`fastzk.drivers.hosts`), opens each connection
  (:mod:`fastzk.drivers.handshake`), pings, reads events and replies while
  no caller does, and reconnects;
- requests go through the :class:`~fastzk.drivers.channel.Channel`, where
  a thread that calls synchronously reads its own reply;
- the session's states reach the client through its ``_session_callback``
  (kazoo's ``KeeperState`` values), including the client-side expiry: LOST
  once a whole session timeout has passed without a server.

User code never runs here: replies complete result objects, and watch
events and state changes are handed to the client's dispatcher.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from kazoo.exceptions import (
    AuthFailedError,
    ConnectionClosedError,
    ConnectionDropped,
    SessionExpiredError,
)
from kazoo.protocol.serialization import Transaction
from kazoo.protocol.states import KeeperState
from kazoo.retry import KazooRetry

from fastzk._core import codec
from fastzk.protocol.session import R_CLOSE, Request, SessionMachine
from fastzk.drivers import spin as _spin
from fastzk.drivers.channel import Channel
from fastzk.drivers.hosts import HostRounds
from fastzk.drivers.session_thread import SessionThread
from fastzk.drivers.transport import PlainTransport, Transport
from fastzk.drivers.waiter import Waiter, bounded

log = logging.getLogger("fastzk.engine")

__all__ = ["Engine", "Request", "Waiter"]

_REFUSING_STATES = frozenset((KeeperState.AUTH_FAILED, KeeperState.CLOSED,
                              KeeperState.EXPIRED_SESSION))
# How often wait_connected looks whether the session thread gave up.
_START_CHECK_INTERVAL = 0.01


class Engine(object):
    """The connection engine of one client (one session at a time).

    It takes the place of kazoo's ``ConnectionHandler`` on the client
    (``client._connection``) and keeps its ``start``/``stop``/``close``
    contract, so kazoo's own ``start``/``restart``/``close`` work unchanged.

    :param client: the :class:`fastzk.client.KazooClient` it serves.
    :param retry_sleeper: a :class:`kazoo.retry.KazooRetry` pacing reconnects.
    """

    #: ``bounded(deadline)``: see :func:`fastzk.drivers.waiter.bounded`.
    bounded = staticmethod(bounded)

    def __init__(self, client: Any, retry_sleeper: KazooRetry,
                 logger: Optional[logging.Logger] = None) -> None:
        self.client = client
        self.handler = client.handler
        self.retry_sleeper = retry_sleeper
        self.logger = logger or log
        self.connection_closed = threading.Event()
        self.connection_closed.set()
        self.connection_stopped = threading.Event()
        self.connection_stopped.set()
        #: The session's protocol state (see fastzk.protocol.session).
        self.machine = machine = SessionMachine(
            client, client._session_timeout, bool(client.read_only),
            dispatch_watch=client._dispatch_watch,
            on_auth_failed=self._auth_failed,
            unchroot=self._unchroot,
            stopped=client._stopped,
            on_state=client._session_callback)
        self.watches = machine.watches
        self.children_view = machine.children_view
        #: Opens the connections (plain TCP).
        self.transport: Transport = PlainTransport()
        # How long a synchronous caller busy-polls the socket before
        # sleeping in poll() (see fastzk.drivers.spin).  Only the compiled core
        # polls without holding the GIL, so only it spins.
        self.spin = _spin.AdaptiveSpin(
            _spin.ceiling_from_environment() if codec.IMPLEMENTATION == "cython" else 0)
        self.hosts = HostRounds(self.logger)
        #: The connection and its read role.
        self.channel = channel = Channel(machine, self.spin, self._refuses,
                                         self._refusal, self._broken,
                                         self.logger)
        #: ``submit(req, reader_needed=True, force=False)`` and
        #: ``call(req)``: see :class:`~fastzk.drivers.channel.Channel`.
        self.submit = channel.submit
        self.call = channel.call
        # kazoo's client keeps these deques; they are the channel's.
        self._queue = channel.queue
        self._pending = channel.pending
        #: The session thread's loop.
        self.session = SessionThread(self)
        self._thread: Optional[threading.Thread] = None
        # kazoo's ConnectionHandler wakes its thread through this socket;
        # kazoo code that checks it for None must see "open" while started.
        self._write_sock: Any = None

    # -- kazoo ConnectionHandler contract ----------------------------------

    def start(self) -> None:
        """Start the session thread (it connects in the background)."""
        if self._thread is not None:
            raise Exception("Unable to start, connection routine already active.")
        self.connection_closed.clear()
        self.hosts.reset()
        self.session.reset()
        self._write_sock = _OpenMarker
        self.connection_stopped.clear()
        self._thread = threading.Thread(
            target=self.session.run, name="fastzk-session", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: Optional[float] = None) -> bool:
        """Wait for the session thread to end; True when it has."""
        self.connection_stopped.wait(timeout)
        thread = self._thread
        if thread is not None and self.connection_stopped.is_set():
            if thread is not threading.current_thread():
                thread.join()
            self._thread = None
        return self.connection_stopped.is_set()

    def close(self) -> None:
        """Release resources; the engine can be started again."""
        if not self.connection_stopped.is_set():
            raise Exception("Cannot close connection until it is stopped")
        self.connection_closed.set()
        self._write_sock = None

    def wait_connected(self, live: threading.Event,
                       timeout: Optional[float]) -> bool:
        """Wait until the client is connected (``live``, kazoo's event, is
        set), the session thread has given up, or ``timeout`` seconds
        (None: no limit) have passed.  True when connected.

        The session thread gives up at once on an authentication failure
        (:attr:`fatal_error` says which), so a caller of
        :meth:`~fastzk.client.KazooClient.start` hears of it without
        waiting for its timeout.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not live.is_set():
            if self.connection_stopped.is_set():
                return live.is_set()
            wait = _START_CHECK_INTERVAL
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                wait = min(wait, remaining)
            live.wait(wait)
        return True

    # -- public helpers used by the client ----------------------------------

    @property
    def _socket(self) -> Any:
        # The connected socket, or None (kazoo's tests look at it).
        return self.channel.socket

    @property
    def negotiated_timeout(self) -> Optional[int]:
        """The session timeout the server granted, in milliseconds."""
        return self.machine.negotiated_timeout

    @property
    def connected_host(self) -> Optional[Tuple[str, int]]:
        """``(host, port)`` of the server this client is connected to."""
        return self.session.connected_host

    def failed_rounds(self) -> List[Dict[Tuple[str, int], BaseException]]:
        """Why the latest rounds of connection attempts failed.

        :returns: one dict per round through the host list in which no
                  server was connected, oldest first, mapping ``(host,
                  port)`` to the exception of its last attempt (a
                  :class:`socket.gaierror` for a name that did not
                  resolve, :class:`ConnectionRefusedError`, a timeout...).
                  Only the rounds since the last connection, at most
                  the last eight.
        :rtype: list
        """
        return self.hosts.failed_rounds()

    @property
    def fatal_error(self) -> Optional[BaseException]:
        """The exception that ended the session thread for good since
        :meth:`start`, or None: an authentication the server refused
        (SASL), or a failure that retrying cannot mend on every server
        before any connection was made (a certificate that does not
        verify)."""
        return self.session.fatal_error

    @property
    def connecting_to(self) -> Optional[Tuple[str, int]]:
        """``(host, port)`` of the server a connection attempt is under way
        to, or None."""
        return self.hosts.attempting

    def connect_errors(self) -> Dict[Tuple[str, int], BaseException]:
        """The error of the latest failed connection attempt on each
        server since the last connection, the round under way included.

        :returns: ``{(host, port): exception}``, empty once connected.
        :rtype: dict
        """
        return self.hosts.connect_errors()

    def drop_connection(self) -> None:
        """Cut the current connection (kazoo's test hook _CONNECTION_DROP)."""
        sock = self.channel.socket
        if sock is not None:
            self._broken(sock, ConnectionDropped("Connection dropped: Testing"))

    def expire_session(self) -> None:
        """End the session on the server (kazoo's test hook _SESSION_EXPIRED).

        Sends closeSession on this connection, so the server really ends the
        session and removes its ephemeral nodes; the client then sees the
        expiry (LOST) and opens a new session.
        """
        self.session.drop_requested = KeeperState.EXPIRED_SESSION
        waiter = Waiter()
        req = Request(codec.CLOSE, codec.encode_close, R_CLOSE, waiter)
        self.submit(req)

    def close_session(self, timeout: float) -> None:
        """Send closeSession and wait up to ``timeout`` for the reply."""
        waiter = Waiter()
        self.session.close_waiter = waiter
        req = Request(codec.CLOSE, codec.encode_close, R_CLOSE, waiter)
        with self.channel.send_lock:
            connected = self.channel.socket is not None
        if not connected:
            return
        self.submit(req, force=True)
        deadline = time.monotonic() + timeout
        while not waiter.done and time.monotonic() < deadline:
            waiter.park(0.05)

    # -- the session's states --------------------------------------------------

    def _refuses(self) -> Optional[BaseException]:
        """The error a request fails with at once, or None (the common
        case, checked first)."""
        if self.client._state in _REFUSING_STATES:
            return self._refusal()
        return None

    def _refusal(self) -> Optional[BaseException]:
        """The error for a request the session's state refuses, or None.

        kazoo's rules: AUTH_FAILED, CLOSED and EXPIRED_SESSION refuse;
        while CONNECTING a request waits for the connection.
        """
        state = self.client._state
        if state == KeeperState.AUTH_FAILED:
            failure = self.session.fatal_error
            error: BaseException = (type(failure)(*failure.args) if failure
                                    else AuthFailedError())
        elif state == KeeperState.CLOSED or self.client._stopped.is_set():
            error = ConnectionClosedError("Connection has been closed")
        elif state == KeeperState.EXPIRED_SESSION:
            error = SessionExpiredError()
        else:
            return None
        return error

    def _auth_failed(self) -> None:
        self.machine.states.auth_failed()

    def _unchroot(self, value: Any) -> Any:
        return Transaction.unchroot(self.client, value)

    def _broken(self, sock: Any, error: BaseException) -> None:
        self.session.broken(sock, error)

class _OpenMarker(object):
    """Stands in for kazoo's wake-up socket while the engine is started."""

    @staticmethod
    def send(data: bytes) -> int:
        return len(data)
