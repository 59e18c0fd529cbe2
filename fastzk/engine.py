"""The thread driver: one session over one connection at a time.

:class:`Engine` drives the :class:`~fastzk.protocol.session.SessionMachine`
(which does no I/O) with a socket, threads and the clock:

- its session thread connects to the hosts in turn (after a short random
  delay on reconnect, see :mod:`fastzk.drivers.hosts`), opens each
  connection (:mod:`fastzk.drivers.handshake`), then pings when nothing
  was sent for a third of the read timeout and reads events and replies
  while no caller does;
- requests go through the :class:`~fastzk.drivers.channel.Channel`, where
  a thread that calls synchronously reads its own reply;
- the session's states reach the client through its ``_session_callback``
  (kazoo's ``KeeperState`` values), including the client-side expiry: LOST
  once a whole session timeout has passed without a server.

User code never runs here: replies complete result objects, and watch
events and state changes are handed to the client's dispatcher.
"""

import logging
import random
import socket
import threading
import time

from kazoo.exceptions import (
    AuthFailedError,
    ConnectionClosedError,
    ConnectionDropped,
    ConnectionLoss,
    SessionClosedRequireSaslError,
    SessionExpiredError,
)
from kazoo.protocol.serialization import Transaction
from kazoo.protocol.states import KeeperState
from kazoo.retry import ForceRetryError, RetryFailedError

from fastzk._core import codec
from fastzk.errors import ProtocolError
from fastzk.protocol.session import (
    R_CLOSE,
    ConnectionBroken as _Broken,
    Request,
    SessionClosed as _SessionClosed,
    SessionMachine,
)
from fastzk import spin as _spin
from fastzk.drivers.channel import Channel
from fastzk.drivers.handshake import open_connection
from fastzk.drivers.hosts import HostRounds, resolve
from fastzk.drivers.transport import PlainTransport, TransportStopped
from fastzk.drivers.waiter import Waiter, bounded

log = logging.getLogger(__name__)

__all__ = ["Engine", "Request", "Waiter"]

_REFUSING_STATES = frozenset((KeeperState.AUTH_FAILED, KeeperState.CLOSED,
                              KeeperState.EXPIRED_SESSION))
# Authentication failures that end the session thread: retrying the same
# credentials on the same servers cannot succeed.
_AUTH_FAILURES = (AuthFailedError, SessionClosedRequireSaslError)
# How often wait_connected looks whether the session thread gave up.
_START_CHECK_INTERVAL = 0.01

# The session thread leaves the socket to synchronous callers while one has
# been active within this many seconds.  While they stay active it looks
# again after a nap that doubles up to _NAP_MAX (a busy caller would
# otherwise cost it a wake-up every _QUIET), so it takes over reading at
# most _NAP_MAX after the callers stop.
_QUIET = 0.002
_NAP_MAX = 0.016

_STOP = object()


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

    def __init__(self, client, retry_sleeper, logger=None):
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
            stopped=client._stopped)
        self.watches = machine.watches
        self.children_view = machine.children_view
        #: Opens the connections (plain TCP).
        self.transport = PlainTransport()
        # How long a synchronous caller busy-polls the socket before
        # sleeping in poll() (see fastzk.spin).  Only the compiled core
        # polls without holding the GIL, so only it spins.
        self.spin = _spin.AdaptiveSpin(
            _spin.ceiling_from_environment() if codec.IMPLEMENTATION == "cython" else 0)
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
        self.hosts = HostRounds(self.logger)

        self._thread = None
        # kazoo's ConnectionHandler wakes its thread through this socket;
        # kazoo code that checks it for None must see "open" while started.
        self._write_sock = None
        # Bumped on every connection change; a client-side expiry timer acts
        # only if it is still the epoch it was started in.
        self._suspension = 0
        self._expiry_timer = None
        self._close_waiter = None
        self._drop_requested = None
        self._lost_state = None
        self._lost_error = None
        self._connected_host = None
        self._read_only = False
        self._next_rw_probe = 0.0
        self._rw_probe_delay = 0.5
        # The error that ended the session thread for good since start()
        # (see fatal_error).
        self._fatal_error = None

    # -- kazoo ConnectionHandler contract ----------------------------------

    def start(self):
        """Start the session thread (it connects in the background)."""
        if self._thread is not None:
            raise Exception("Unable to start, connection routine already active.")
        self.connection_closed.clear()
        self._close_waiter = None
        self.hosts.reset()
        self._fatal_error = None
        self._write_sock = _OpenMarker
        self.connection_stopped.clear()
        self._thread = threading.Thread(
            target=self._session_loop, name="fastzk-session", daemon=True
        )
        self._thread.start()

    def stop(self, timeout=None):
        """Wait for the session thread to end; True when it has."""
        self.connection_stopped.wait(timeout)
        thread = self._thread
        if thread is not None and self.connection_stopped.is_set():
            if thread is not threading.current_thread():
                thread.join()
            self._thread = None
        return self.connection_stopped.is_set()

    def close(self):
        """Release resources; the engine can be started again."""
        if not self.connection_stopped.is_set():
            raise Exception("Cannot close connection until it is stopped")
        self.connection_closed.set()
        self._write_sock = None

    def wait_connected(self, live, timeout):
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
    def _socket(self):
        # The connected socket, or None (kazoo's tests look at it).
        return self.channel.socket

    @property
    def negotiated_timeout(self):
        """The session timeout the server granted, in milliseconds."""
        return self.machine.negotiated_timeout

    @property
    def connected_host(self):
        """``(host, port)`` of the server this client is connected to."""
        return self._connected_host

    def failed_rounds(self):
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
    def fatal_error(self):
        """The exception that ended the session thread for good since
        :meth:`start`, or None: an authentication the server refused
        (SASL), or a failure that retrying cannot mend on every server
        before any connection was made (a certificate that does not
        verify)."""
        return self._fatal_error

    @property
    def connecting_to(self):
        """``(host, port)`` of the server a connection attempt is under way
        to, or None."""
        return self.hosts.attempting

    def connect_errors(self):
        """The error of the latest failed connection attempt on each
        server since the last connection, the round under way included.

        :returns: ``{(host, port): exception}``, empty once connected.
        :rtype: dict
        """
        return self.hosts.connect_errors()

    def drop_connection(self):
        """Cut the current connection (kazoo's test hook _CONNECTION_DROP)."""
        sock = self.channel.socket
        if sock is not None:
            self._broken(sock, ConnectionDropped("Connection dropped: Testing"))

    def expire_session(self):
        """End the session on the server (kazoo's test hook _SESSION_EXPIRED).

        Sends closeSession on this connection, so the server really ends the
        session and removes its ephemeral nodes; the client then sees the
        expiry (LOST) and opens a new session.
        """
        self._drop_requested = KeeperState.EXPIRED_SESSION
        waiter = Waiter()
        req = Request(codec.CLOSE, codec.encode_close, R_CLOSE, waiter)
        self.submit(req)

    def close_session(self, timeout):
        """Send closeSession and wait up to ``timeout`` for the reply."""
        waiter = Waiter()
        self._close_waiter = waiter
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

    def _refuses(self):
        """The error a request fails with at once, or None (the common
        case, checked first)."""
        if self.client._state in _REFUSING_STATES:
            return self._refusal()
        return None

    def _refusal(self):
        """The error for a request the session's state refuses, or None.

        kazoo's rules: AUTH_FAILED, CLOSED and EXPIRED_SESSION refuse;
        while CONNECTING a request waits for the connection.
        """
        state = self.client._state
        if state == KeeperState.AUTH_FAILED:
            failure = self._fatal_error
            return type(failure)(*failure.args) if failure else AuthFailedError()
        if state == KeeperState.CLOSED or self.client._stopped.is_set():
            return ConnectionClosedError("Connection has been closed")
        if state == KeeperState.EXPIRED_SESSION:
            return SessionExpiredError()
        return None

    def _auth_failed(self):
        self.client._session_callback(KeeperState.AUTH_FAILED)

    def _unchroot(self, value):
        return Transaction.unchroot(self.client, value)

    def _broken(self, sock, error):
        """Close ``sock`` if it is still the current connection and fail what
        was in flight on it; the session thread reconnects."""
        pending = self.channel.detach(sock)
        if pending is None:
            return
        if isinstance(error, _SessionClosed):
            if self._drop_requested is not None:
                state = self._drop_requested
            else:
                state = KeeperState.CLOSED
        elif isinstance(error, SessionClosedRequireSaslError):
            # Every reconnect would be refused the same way.
            state = KeeperState.AUTH_FAILED
        else:
            state = KeeperState.CONNECTING
            self.logger.warning("Connection dropped: %s", str(error))
        if state == KeeperState.AUTH_FAILED:
            exc = type(error)(*error.args)
        elif state == KeeperState.EXPIRED_SESSION:
            exc = SessionExpiredError()
        elif state == KeeperState.CLOSED:
            exc = ConnectionClosedError("Connection has been closed")
        else:
            exc = ConnectionLoss()
        for req in pending:
            if req.opcode == codec.CLOSE:
                req.result.set(True)
            else:
                req.result.set_exception(exc)
        self._lost_state = state
        self._lost_error = error
        self.channel.wake_all()

    def _fail_queue(self, error):
        for req in self.channel.drain_queue():
            req.result.set_exception(error)

    def _authentication_failed(self, error):
        """The server refused this client's authentication: report
        AUTH_FAILED (kazoo's LOST), fail what waited, and stop, as kazoo
        does."""
        self._fatal_error = error
        self.logger.warning("AUTH_FAILED closing: %s", error)
        self.client._session_callback(KeeperState.AUTH_FAILED)
        self._fail_queue(type(error)(*error.args))
        return _STOP

    def _expired(self):
        """The session is gone: tell the client, fail what waited for it,
        and go on with a new session unless the client said not to."""
        client = self.client
        with self.channel.send_lock:
            self._suspension += 1  # no client-side expiry pending any more
        self.machine.reset_xids()
        client._session_callback(KeeperState.EXPIRED_SESSION)
        self._fail_queue(SessionExpiredError())
        if not client._stopped.is_set() and client._reconnect_on_expiry:
            client._session_callback(KeeperState.CONNECTING)
            return None
        return _STOP

    # -- client-side expiry (Curator's rule) ------------------------------------

    def _start_expiry_clock(self):
        """Declare the session lost once a whole session timeout has passed
        since the server was last heard from, if no connection came back.

        The server expires a session it has not heard from for the
        negotiated timeout; a partitioned client otherwise learns of it only
        when it reaches a server again, possibly hours later (the seed's
        closed laptop).  Until then a lock holder must assume it lost the
        lock, so the client says LOST at the moment the server may expire
        it, like Curator does.
        """
        deadline = self.machine.expiry_deadline()
        if deadline is None:
            return
        with self.channel.send_lock:
            self._suspension += 1
            epoch = self._suspension
        delay = deadline - time.monotonic()
        timer = threading.Timer(max(0.0, delay), self._expire_if_suspended,
                                (epoch,))
        timer.daemon = True
        self._cancel_expiry_clock()
        self._expiry_timer = timer
        timer.start()

    def _cancel_expiry_clock(self):
        timer = self._expiry_timer
        if timer is not None:
            self._expiry_timer = None
            timer.cancel()

    def _expire_if_suspended(self, epoch):
        client = self.client
        with self.channel.send_lock:
            if epoch != self._suspension or self.channel.socket is not None:
                return
            self._suspension += 1
            self.machine.declare_lost()
        if client._stopped.is_set():
            return
        self.logger.warning(
            "No server reached for a whole session timeout: session 0x%x "
            "considered expired", self.machine.abandoned_session or 0)
        client._session_callback(KeeperState.EXPIRED_SESSION)
        self._fail_queue(SessionExpiredError())
        if client._reconnect_on_expiry:
            client._session_callback(KeeperState.CONNECTING)

    # -- the session thread ---------------------------------------------------

    def _session_loop(self):
        retry = self.retry_sleeper.copy()
        client = self.client
        try:
            while not client._stopped.is_set():
                try:
                    if retry(self._connect_round, retry) is _STOP:
                        break
                except RetryFailedError:
                    self.logger.warning(
                        "Failed connecting to Zookeeper within the connection "
                        "retry policy."
                    )
                    break
        finally:
            self._fail_queue(ConnectionClosedError("Connection has been closed"))
            self.connection_stopped.set()
            client._session_callback(KeeperState.CLOSED)

    def _connect_round(self, retry):
        rounds = self.hosts
        errors = rounds.new_round()
        addresses = rounds.begin(resolve(self.client.hosts, errors, self.logger),
                                 self.client.randomize_hosts)
        if not addresses:
            rounds.end(errors)
            raise ForceRetryError("No host resolved. Reconnecting")
        for host, address, port in addresses:
            if self.client._stopped.is_set():
                return _STOP
            status = self._session(host, address, port, retry)
            if status is _STOP:
                return _STOP
            if rounds.preferred is not None:
                return None  # a new round, starting with that host
        failure = rounds.end(errors)
        if failure is not None:
            return self._authentication_failed(failure)
        raise ForceRetryError("Reconnecting")

    def _session(self, host, address, port, retry):
        """Connect to one server and serve the session until the connection
        ends.  Returns _STOP when the client is done."""
        client = self.client
        if client._state != KeeperState.CONNECTING:
            client._session_callback(KeeperState.CONNECTING)
        self._lost_state = None
        self._lost_error = None
        self._drop_requested = None
        self.hosts.attempting = (host, port)
        try:
            sock = self._connect(host, address, port)
        except TransportStopped:
            return _STOP
        except SessionExpiredError:
            retry.reset()
            self.logger.warning("Session has expired")
            return self._expired()
        except _AUTH_FAILURES as exc:
            return self._authentication_failed(exc)
        except (OSError, ConnectionDropped, ProtocolError) as exc:
            self.hosts.failed(host, port, *self.transport.explain(exc))
            return None
        finally:
            self.hosts.attempting = None
        retry.reset()
        try:
            self._serve(sock)
        except _Broken as exc:
            self._broken(sock, exc.args[0])
        else:
            self._broken(sock, _SessionClosed())
        state = self._lost_state
        if state == KeeperState.CLOSED:
            return _STOP
        if state == KeeperState.AUTH_FAILED:
            return self._authentication_failed(self._lost_error)
        if state == KeeperState.EXPIRED_SESSION:
            return self._expired()
        if client._stopped.is_set():
            return _STOP
        client._session_callback(KeeperState.CONNECTING)
        self._start_expiry_clock()
        # Reconnect after a short random delay so a fleet of clients does
        # not hit the next server at the same instant.
        time.sleep(random.uniform(0.0, 0.1))
        return None

    def _connect(self, host, address, port):
        """Open a connection to one server and make it the channel's."""
        client = self.client
        machine = self.machine
        # A third of the session timeout at most, even with one host: a
        # handshake that stalls once must leave time for another attempt
        # before the session would expire.
        timeout = client._session_timeout / 1000.0 / max(3, len(client.hosts))
        machine.session_timeout_ms = client._session_timeout
        machine.read_only = bool(client.read_only)
        sock, frames, read_only = open_connection(
            self.transport, machine, host, address, port, timeout,
            client._stopped.is_set, client._sasl_options, client.auth_data)
        self._connected_host = (host, port)
        self.hosts.connected()
        machine.last_send = machine.last_recv = time.monotonic()
        self._cancel_expiry_clock()
        with self.channel.send_lock:
            self._suspension += 1
        failed = self.channel.attach(sock, frames)
        if failed is not None:
            sock.close()
            self._start_expiry_clock()  # the server was heard from just now
            raise ConnectionDropped("sending the requests queued while "
                                    "disconnected failed: %s" % (failed,))
        self._read_only = bool(read_only)
        self._next_rw_probe = time.monotonic() + 0.5
        self._rw_probe_delay = 0.5
        if read_only:
            client._session_callback(KeeperState.CONNECTED_RO)
        else:
            client._session_callback(KeeperState.CONNECTED)
        # SetWatches2 restored the persistent watches, but the server sends
        # no catch-up events for them: tell their watchers to re-read.
        persistent = self.watches.persistent_items()
        if persistent:
            client._dispatch_reconnected(persistent)
        self.logger.info("Connected to %s:%s, session 0x%x, timeout %d ms",
                         host, port, client._session_id,
                         machine.negotiated_timeout)
        self.channel.wake_all()
        return sock

    def _serve(self, sock):
        """Pings, idle reads and connection checks while connected."""
        client = self.client
        channel = self.channel
        mx = channel.mx
        wakeup = channel.wakeup
        me = threading.get_ident()
        machine = self.machine
        nap = _QUIET
        while channel.socket is sock:
            now = time.monotonic()
            ping = machine.tick(now)
            if ping is not None:
                channel.send(sock, ping)
            if self._read_only and now >= self._next_rw_probe:
                self._probe_for_rw_server()
            wait = max(0.0, machine.next_deadline() - now)
            with mx:
                if channel.socket is not sock:
                    break
                idle = now - channel.last_sync >= _QUIET
                take = (channel.reader is None and not channel.followers
                        and (channel.pending or idle))
                if take:
                    channel.reader = me
                    nap = _QUIET
                else:
                    # Synchronous callers active: look again after a nap.
                    # Otherwise sleep until the reader leaves the role (it
                    # notifies us) or a ping is due.
                    channel.session_parked = idle
                    if idle:
                        wakeup.wait(min(wait, 0.5))
                    else:
                        wakeup.wait(min(wait, nap))
                        nap = min(nap * 2, _NAP_MAX)
                    channel.session_parked = False
                    continue
            try:
                channel.read_available(sock, min(wait, 0.5) or 0.001)
            finally:
                channel.leave_role()
            closing = self._close_waiter
            if client._stopped.is_set() and (closing is None or closing.done):
                break

    def _probe_for_rw_server(self):
        """While connected to a read-only server, look for a read-write one
        (the ``isro`` four-letter word answers ``rw``) with a growing delay
        between rounds, and move to it when found."""
        for host, address, port in resolve(self.client.hosts):
            if (host, port) == self._connected_host:
                continue
            try:
                with socket.create_connection((address, port), timeout=0.5) as probe:
                    probe.sendall(b"isro")
                    answer = probe.recv(16)
            except OSError:
                continue
            if answer == b"rw":
                self.hosts.preferred = (host, port)
                raise _Broken(ConnectionDropped(
                    "a read-write server is available: %s:%s" % (host, port)))
        self._rw_probe_delay = min(self._rw_probe_delay * 2, 60.0)
        self._next_rw_probe = time.monotonic() + self._rw_probe_delay


class _OpenMarker(object):
    """Stands in for kazoo's wake-up socket while the engine is started."""

    @staticmethod
    def send(data):
        return len(data)
