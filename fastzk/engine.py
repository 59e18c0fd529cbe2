"""The connection engine: one TCP connection per session.

What it does
------------
- Connects to the hosts in turn (after a short random delay on reconnect),
  performs the handshake, authenticates with SASL when configured (before
  anything else, on every connection), re-sends authentication, restores
  watches with
  SetWatches/SetWatches2 (relativeZxid = the last zxid seen, so the server
  sends catch-up events) and then sends what was queued while disconnected.
- Pipelines requests: each gets the next xid and goes straight to the socket;
  replies come back in request order on a session (a ZooKeeper guarantee),
  so the pending requests form a FIFO matched by xid.
- Pings when nothing was sent for a third of the read timeout, and drops the
  connection when nothing was received for the read timeout (2/3 of the
  negotiated session timeout, as the Java client does).
- Drives the session state machine through the client's
  ``_session_callback`` (kazoo's ``KeeperState`` values).

The protocol itself (handshake, xids, reply matching and decoding, watch
routing, SetWatches, the ping and read-timeout deadlines) is the
:class:`~fastzk.protocol.session.SessionMachine`, which does no I/O: the
engine feeds it the frames it reads, sends what it hands back, and tells
it the time.

Who reads the socket
--------------------
A thread that calls synchronously reads its own reply: it sends, takes the
*read role* if nobody holds it, and reads frames until its reply is in,
completing any other request whose reply comes first (leader/follower).
That saves the two thread hand-offs per request a dedicated I/O thread
costs.  A caller that finds the role taken parks until its reply is in, or
until the reader leaves and promotes it.  The session thread takes the role
only when nobody else will: requests are pending with no caller waiting for
them (asynchronous calls), or no synchronous caller has been active for a
little while (so events and pings are read on an idle session).

User code never runs here: replies complete result objects, and watch
events and state changes are handed to the client's dispatcher.
"""

import logging
import random
import socket
import threading
import time
from collections import deque
from contextlib import contextmanager
from _thread import allocate_lock

from kazoo.exceptions import (
    AuthFailedError,
    ConnectionClosedError,
    ConnectionDropped,
    ConnectionLoss,
    SessionClosedRequireSaslError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.serialization import Transaction
from kazoo.protocol.states import KeeperState
from kazoo.retry import ForceRetryError, RetryFailedError

from fastzk._core import codec
from fastzk.errors import ProtocolError
from fastzk.protocol import constants as zk
from fastzk.protocol.session import (  # noqa: F401 (R_*: the client's names)
    R_CHILDREN,
    R_CHILDREN_STAT,
    R_CLOSE,
    R_DATA_STAT,
    R_KAZOO,
    R_MULTI,
    R_STAT,
    R_STRING,
    R_STRING_STAT,
    R_VOID,
    AbandonedSession,
    ConnectionBroken as _Broken,
    Request,
    SessionClosed as _SessionClosed,
    SessionMachine,
)
from fastzk import spin as _spin
from fastzk.drivers.transport import (
    STOP_CHECK_INTERVAL,
    PlainTransport,
    TransportStopped as _ClientStopped,
)

log = logging.getLogger(__name__)
_now_ns = time.perf_counter_ns
_monotonic = time.monotonic
send_all = codec.send_all


class _Bounds(threading.local):
    """Per thread, the deadline :meth:`Engine.bounded` set (None: none).

    A class default, not a missing attribute: looking up a missing
    attribute of a thread-local object raises (and formats) an
    AttributeError inside getattr, on every call."""

    deadline = None


_bounds = _Bounds()

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
# Frames an outbox holds before the submitting thread sends them itself.
_OUTBOX_BATCH = 32
# A parked caller re-checks the read role at least this often: a safety net,
# the engine wakes it explicitly.
_PARK = 0.05


class Waiter(object):
    """The completion of one synchronous call.

    Set by whichever thread reads its reply; the caller's thread waits on a
    plain lock used as a binary semaphore.  Extra wake-ups are harmless: the
    caller re-checks ``done``.
    """

    __slots__ = ("done", "value", "error", "_lock")

    def __init__(self):
        self.done = False
        self.value = None
        self.error = None
        self._lock = allocate_lock()
        self._lock.acquire()

    def set(self, value=None):
        self.value = value
        self.done = True
        self.wake()

    def set_exception(self, error):
        self.error = error
        self.done = True
        self.wake()

    def wake(self):
        try:
            self._lock.release()
        except RuntimeError:  # already awake
            pass

    def park(self, timeout):
        self._lock.acquire(True, timeout)

    def result(self):
        if self.error is not None:
            raise self.error
        return self.value


class Engine(object):
    """The connection engine of one client (one session at a time).

    It takes the place of kazoo's ``ConnectionHandler`` on the client
    (``client._connection``) and keeps its ``start``/``stop``/``close``
    contract, so kazoo's own ``start``/``restart``/``close`` work unchanged.

    :param client: the :class:`fastzk.client.KazooClient` it serves.
    :param retry_sleeper: a :class:`kazoo.retry.KazooRetry` pacing reconnects.
    """

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
        # How long a synchronous caller busy-polls the socket before
        # sleeping in poll() (see fastzk.spin).  Only the compiled core
        # polls without holding the GIL, so only it spins.
        #: Opens the connections (plain TCP).
        self.transport = PlainTransport()
        self.spin = _spin.AdaptiveSpin(
            _spin.ceiling_from_environment() if codec.IMPLEMENTATION == "cython" else 0)

        self._thread = None
        self._socket = None
        # kazoo's ConnectionHandler wakes its thread through this socket;
        # kazoo code that checks it for None must see "open" while started.
        self._write_sock = None
        self._frames = None
        self._send_lock = threading.Lock()
        self._mx = threading.Lock()
        self._session_wakeup = threading.Condition(self._mx)
        self._pending = machine.pending
        self._queue = deque()  # submitted while disconnected
        # Frames encoded while replies were outstanding, not sent yet (see
        # submit); guarded by _send_lock, cleared with the connection.
        self._outbox = []
        self._reader = None
        self._followers = []
        self._closing = []  # broken sockets a reader still holds
        self._last_sync = 0.0
        self._session_parked = False
        # Bumped on every connection change; a client-side expiry timer acts
        # only if it is still the epoch it was started in.
        self._suspension = 0
        self._expiry_timer = None
        self._close_waiter = None
        self._drop_requested = None
        self._connected_host = None
        self._read_only = False
        self._preferred_host = None
        self._next_rw_probe = 0.0
        self._rw_probe_delay = 0.5
        # Rounds through the host list in which no server was connected
        # since the last connection, one {(host, port): error} each.
        self._failed_rounds = deque(maxlen=_FAILED_ROUNDS_KEPT)
        self._round_errors = None
        self._attempting = None
        # Since start(): whether a connection was made, the connect failures
        # already logged ({(host, port): message}), and the error that
        # ended the session thread for good (see fatal_error).
        self._ever_connected = False
        self._logged_failures = {}
        self._fatal_error = None

    # -- kazoo ConnectionHandler contract ----------------------------------

    def start(self):
        """Start the session thread (it connects in the background)."""
        if self._thread is not None:
            raise Exception("Unable to start, connection routine already active.")
        self.connection_closed.clear()
        self._close_waiter = None
        self._ever_connected = False
        self._logged_failures = {}
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
        return [dict(errors) for errors in list(self._failed_rounds)]

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
        return self._attempting

    def connect_errors(self):
        """The error of the latest failed connection attempt on each
        server since the last connection, the round under way included.

        :returns: ``{(host, port): exception}``, empty once connected.
        :rtype: dict
        """
        latest = {}
        for errors in self.failed_rounds():
            latest.update(errors)
        current = self._round_errors
        if current is not None:
            latest.update(dict(current))
        return latest

    def submit(self, req, reader_needed=True, force=False):
        """Send ``req`` now, or queue it until the session is connected.

        Raises nothing: failures reach ``req.result``.  With
        ``reader_needed`` (an asynchronous call, whose caller will not read
        the reply itself) a parked session thread is woken to read it.
        """
        if self.client._state in _REFUSING_STATES and not force:
            error = self._refusal()
            if error is not None:
                req.result.set_exception(error)
                return
        with self._send_lock:
            sock = self._socket
            if sock is None:
                error = self._refusal()
                if force:
                    error = ConnectionClosedError("Connection has been closed")
                if error is not None:
                    req.result.set_exception(error)
                else:
                    self._queue.append(req)
                return
            try:
                frame = self.machine.encode(req)
            except Exception as exc:
                req.result.set_exception(exc)
                return
            pending = self._pending
            data = frame
            if pending:
                # Replies are outstanding, so a reader is or will be at the
                # socket: it sends this frame with whatever else queues up
                # meanwhile, in one write, when it next reads (Nagle's
                # rule, RFC 896, at the request level).  Little is lost:
                # the server answers a session's requests in order, so this
                # reply cannot come before the outstanding ones anyway.
                # A long burst goes out every _OUTBOX_BATCH frames, to keep
                # the server busy meanwhile.
                out = self._outbox
                out.append(frame)
                data = None
                if len(out) >= _OUTBOX_BATCH:
                    data = b"".join(out)
                    out.clear()
            pending.append(req)
            broken = None
            if data is not None:
                try:
                    send_all(sock, data)
                except (OSError, ValueError) as exc:
                    broken = exc
                else:
                    self.machine.last_send = time.monotonic()
        if broken is not None:
            self._broken(sock, ConnectionDropped("send failed: %s" % (broken,)))
        elif reader_needed and self._reader is None:
            # Nobody is reading: wake the session thread, also from the
            # short wait it takes while synchronous callers are active.
            with self._mx:
                self._session_wakeup.notify()

    def call(self, req):
        """Submit ``req`` and wait for its reply in this thread.

        ``req.result`` must be a fresh :class:`Waiter`.  Returns the decoded
        reply or raises the request's error.  Inside :meth:`bounded` the
        wait ends at that deadline with
        :class:`~kazoo.handlers.threading.KazooTimeoutError`; the request
        itself is not withdrawn (ZooKeeper has no way to), its reply is
        read and dropped later.
        """
        waiter = req.result
        mx = self._mx
        deadline = _bounds.deadline
        self.submit(req, False)
        me = threading.get_ident()
        while not waiter.done:
            park = _PARK
            if deadline is not None:
                park = deadline - time.monotonic()
                if park <= 0:
                    break
                if park > _PARK:
                    park = _PARK
            with mx:
                if waiter.done:
                    break
                sock = self._socket
                lead = self._reader is None and sock is not None and req.xid
                if lead:
                    self._reader = me
                    if waiter in self._followers:
                        self._followers.remove(waiter)
                elif waiter not in self._followers:
                    self._followers.append(waiter)
            if lead:
                try:
                    self._read_until(sock, waiter, deadline)
                except _Broken as exc:
                    self._broken(sock, exc.args[0])
                finally:
                    self._leave_role()
            else:
                waiter.park(park)
        if self._followers:
            with mx:
                if waiter in self._followers:
                    self._followers.remove(waiter)
                    if (self._session_parked and self._reader is None
                            and not self._followers):
                        # The session thread stood aside for us; nobody
                        # else is reading now.
                        self._session_wakeup.notify()
        self._last_sync = time.monotonic()
        if not waiter.done:
            raise KazooTimeoutError("no reply within the caller's deadline")
        return waiter.result()

    @staticmethod
    @contextmanager
    def bounded(deadline):
        """Bound this thread's synchronous calls by ``deadline``.

        A context manager: inside it every :meth:`call` made by the current
        thread (through the client's synchronous methods) waits for its
        reply no later than ``deadline`` (a :func:`time.monotonic` value,
        or None for no bound) and raises
        :class:`~kazoo.handlers.threading.KazooTimeoutError` after it.
        """
        outer = _bounds.deadline
        if outer is not None and (deadline is None or outer < deadline):
            deadline = outer
        _bounds.deadline = deadline
        try:
            yield
        finally:
            _bounds.deadline = outer

    def drop_connection(self):
        """Cut the current connection (kazoo's test hook _CONNECTION_DROP)."""
        sock = self._socket
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
        with self._send_lock:
            connected = self._socket is not None
        if not connected:
            return
        self.submit(req, force=True)
        deadline = time.monotonic() + timeout
        while not waiter.done and time.monotonic() < deadline:
            waiter.park(0.05)

    # -- internals -----------------------------------------------------------

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

    def _flush(self, sock):
        """Send the frames waiting in the outbox, in one write."""
        with self._send_lock:
            out = self._outbox
            if not out or self._socket is not sock:
                return
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            try:
                send_all(sock, data)
            except (OSError, ValueError) as exc:
                raise _Broken(ConnectionDropped("send failed: %s" % (exc,)))
            self.machine.last_send = time.monotonic()

    def _read_until(self, sock, waiter, deadline=None):
        """Read and handle frames until ``waiter`` is done or ``deadline``
        (a :func:`time.monotonic` value) passes (read role held)."""
        frames = self._frames
        handle = self.machine.receive
        spin = self.spin
        read_timeout = timeout = self.machine.read_timeout
        try:
            while not waiter.done:
                frame = frames.next_frame()
                if frame is None:
                    if self._outbox:
                        self._flush(sock)
                    if deadline is not None:
                        timeout = deadline - time.monotonic()
                        if timeout >= read_timeout:
                            timeout = read_timeout
                        elif timeout <= 0:
                            return
                    started = _now_ns()
                    got = frames.read_from(sock, timeout, spin.budget_us)
                    spin.observe(_now_ns() - started, frames.spin_off_cpu_ns)
                    if not got:
                        if timeout < read_timeout:
                            continue  # the caller's deadline, not the server
                        raise _Broken(
                            ConnectionDropped("no reply from the server within "
                                              "the read timeout")
                        )
                    continue
                handle(frame, _monotonic())
        except _Broken:
            raise
        except (ConnectionDropped, OSError, ValueError) as exc:
            raise _Broken(exc)
        except Exception as exc:
            # Whatever a frame did to the reader, the connection is no
            # longer trustworthy; the thread and the session survive.
            self.logger.exception("Unexpected error reading a frame")
            raise _Broken(ProtocolError("unexpected error reading a frame: %r"
                                        % (exc,)))

    def _read_available(self, sock, timeout):
        """Wait up to ``timeout`` for data, then handle every whole frame."""
        frames = self._frames
        handle = self.machine.receive
        try:
            if self._outbox:
                self._flush(sock)
            frames.read_from(sock, timeout, 0)
            frame = frames.next_frame()
            while frame is not None:
                handle(frame, _monotonic())
                frame = frames.next_frame()
            if self._outbox:
                self._flush(sock)
        except _Broken:
            raise
        except (ConnectionDropped, OSError, ValueError) as exc:
            raise _Broken(exc)
        except Exception as exc:
            self.logger.exception("Unexpected error reading a frame")
            raise _Broken(ProtocolError("unexpected error reading a frame: %r"
                                        % (exc,)))

    def _leave_role(self):
        with self._mx:
            self._reader = None
            closing = self._closing
            if closing:
                self._closing = []
            for waiter in self._followers:
                if not waiter.done:
                    waiter.wake()  # the next reader
                    break
            else:
                if self._pending or self._session_parked:
                    # Someone must read what comes next: pending replies,
                    # or watch events on an otherwise idle session.
                    self._session_wakeup.notify()
        for sock in closing:
            sock.close()

    def _broken(self, sock, error):
        """Close ``sock`` if it is still the current connection and fail what
        was in flight on it; the session thread reconnects."""
        with self._send_lock:
            if self._socket is not sock or sock is None:
                return
            self._socket = None
            pending = self.machine.connection_lost()
            self._outbox.clear()
            # shutdown() wakes a thread blocked reading this socket (close()
            # alone does not, on Linux).  Every send happens under
            # _send_lock, so no sender is inside the socket now.
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self._mx:
            if self._reader is None:
                close_now = True
            else:
                # A reader may still hold the descriptor number: closing now
                # could let a new connection reuse it under that reader.  The
                # reader closes it when it leaves the role.
                close_now = False
                self._closing.append(sock)
        if close_now:
            sock.close()
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
        with self._mx:
            self._session_wakeup.notify()
            for waiter in self._followers:
                waiter.wake()

    def _fail_queue(self, error):
        with self._send_lock:
            queued = list(self._queue)
            self._queue.clear()
        for req in queued:
            req.result.set_exception(error)

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

    def _hosts(self, errors=None):
        """``(host, address, port)`` for each address of each host, in the
        order to try them; names that do not resolve go to ``errors``."""
        hosts = []
        for host, port in self.client.hosts:
            try:
                for info in socket.getaddrinfo(host.strip(), port, 0, 0,
                                               socket.IPPROTO_TCP):
                    hosts.append((host, info[4][0], info[4][1]))
            except socket.gaierror as exc:
                self.logger.warning("Cannot resolve %s: %s", host, exc)
                if errors is not None:
                    errors[(host, port)] = exc
        if self.client.randomize_hosts:
            random.shuffle(hosts)
        preferred = self._preferred_host
        if preferred is not None:
            self._preferred_host = None
            hosts.sort(key=lambda h: (h[0], h[2]) != preferred)
        return hosts

    def _connect_round(self, retry):
        errors = {}
        self._round_errors = errors
        hosts = self._hosts(errors)
        if not hosts:
            self._failed_rounds.append(errors)
            raise ForceRetryError("No host resolved. Reconnecting")
        for host, address, port in hosts:
            if self.client._stopped.is_set():
                return _STOP
            status = self._session(host, address, port, retry)
            if status is _STOP:
                return _STOP
            if self._preferred_host is not None:
                return None  # a new round, starting with that host
        if self._round_errors is errors:  # no connection in this round
            self._failed_rounds.append(errors)
            failure = self._futile(errors)
            if failure is not None:
                return self._authentication_failed(failure)
        raise ForceRetryError("Reconnecting")

    def _connect_failed(self, host, port, error, permanent):
        """Record why connecting to ``host:port`` failed; warn once per
        server and reason until a connection is made."""
        if permanent:
            error.futile = True
        errors = self._round_errors
        if errors is not None:
            errors[(host, port)] = error
        message = str(error)
        if self._logged_failures.get((host, port)) != message:
            self._logged_failures[(host, port)] = message
            self.logger.warning("Connection to %s:%s failed: %s", host, port,
                                message)
        else:
            self.logger.debug("Connection to %s:%s failed again: %s", host,
                              port, message)

    def _futile(self, errors):
        """The error to stop with when retrying cannot help: no connection
        was made since start() and every server of the round failed for a
        reason that will not change (a certificate), else None."""
        if self._ever_connected or not errors:
            return None
        if all(getattr(e, "futile", False) for e in errors.values()):
            return errors[sorted(errors)[0]]
        return None

    def _session(self, host, address, port, retry):
        """Connect to one server and serve the session until the connection
        ends.  Returns _STOP when the client is done."""
        client = self.client
        if client._state != KeeperState.CONNECTING:
            client._session_callback(KeeperState.CONNECTING)
        self._lost_state = None
        self._lost_error = None
        self._drop_requested = None
        self._attempting = (host, port)
        try:
            sock = self._handshake(host, address, port)
        except _ClientStopped:
            return _STOP
        except SessionExpiredError:
            retry.reset()
            self.logger.warning("Session has expired")
            return self._expired()
        except _AUTH_FAILURES as exc:
            return self._authentication_failed(exc)
        except (OSError, ConnectionDropped, ProtocolError) as exc:
            self._connect_failed(host, port, *self.transport.explain(exc))
            return None
        finally:
            self._attempting = None
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
        with self._send_lock:
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
        with self._send_lock:
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
        with self._send_lock:
            if epoch != self._suspension or self._socket is not None:
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

    def _handshake(self, host, address, port):
        client = self.client
        timeout_s = client._session_timeout / 1000.0
        # A third of the session timeout at most, even with one host: a
        # handshake that stalls once must leave time for another attempt
        # before the session would expire.
        connect_timeout = timeout_s / max(3, len(client.hosts))
        sock = self.transport.connect(address, port, connect_timeout,
                                      client._stopped.is_set,
                                      server_name=host)
        try:
            frames = codec.FrameReader(zk.MAX_FRAME)
            machine = self.machine
            machine.session_timeout_ms = client._session_timeout
            machine.read_only = bool(client.read_only)
            sock.sendall(machine.connect_request())
            frame = self._read_one(sock, frames, connect_timeout)
            try:
                read_only = machine.receive_connect_response(
                    frame, time.monotonic())
            except AbandonedSession as exc:
                # The client already declared this session lost (its locks
                # are reported lost): end it on the server so its ephemeral
                # nodes go now, and open a fresh one.
                sock.sendall(exc.farewell)
                raise
            session_id = client._session_id
            negotiated = machine.negotiated_timeout
            # Sends wait at most the read timeout (a Python socket
            # timeout: the descriptor stays non-blocking, which measured
            # faster on loopback than a blocking send bounded by
            # SO_SNDTIMEO).  Reads wait in FrameReader.read_from.
            sock.settimeout(machine.read_timeout)
            self._authenticate_sasl(sock, frames, host, connect_timeout)
            for scheme, credential in list(client.auth_data):
                sock.sendall(machine.auth_frame(scheme, credential))
                machine.receive_auth_reply(
                    self._read_one(sock, frames, connect_timeout))
            self._restore_watches(sock, frames)
        except BaseException:
            sock.close()
            raise
        self._frames = frames
        self._connected_host = (host, port)
        self._round_errors = None
        self._failed_rounds.clear()
        self._ever_connected = True
        self._logged_failures = {}
        self.machine.last_send = self.machine.last_recv = time.monotonic()
        self._cancel_expiry_clock()
        failed = None
        with self._send_lock:
            self._suspension += 1
            self._socket = sock
            # Empty: the last connection's _broken failed what it had.
            stale = self.machine.connection_lost()
            self._outbox.clear()
            queued = list(self._queue)
            self._queue.clear()
            # Requests made while disconnected go out after SetWatches, in
            # the order they were made.
            out = []
            for req in queued:
                try:
                    frame = self.machine.encode(req)
                except Exception as exc:
                    req.result.set_exception(exc)
                    continue
                self._pending.append(req)
                out.append(frame)
            if out:
                try:
                    send_all(sock, b"".join(out))
                except (OSError, ValueError) as exc:
                    # Cut right after the handshake: these requests may
                    # or may not have reached the server, as for any
                    # connection loss.  Their callers must hear so; left
                    # in _pending they would wait forever.
                    failed = exc
                    self._socket = None
                    stale.extend(self._pending)
                    self._pending.clear()
        for req in stale:
            req.result.set_exception(ConnectionLoss())
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
                         host, port, session_id, negotiated)
        with self._mx:
            for waiter in self._followers:
                waiter.wake()
        return sock

    def _authenticate_sasl(self, sock, frames, host, timeout):
        """Run the session's SASL exchange, if it has ``sasl_options``:
        the machine says what to send, this moves the frames, each reply
        within ``timeout``."""
        machine = self.machine
        machine.sasl_options = self.client._sasl_options
        frame = machine.start_sasl(host)
        while frame is not None:
            sock.sendall(frame)
            frame = machine.receive_sasl_reply(
                self._read_one(sock, frames, timeout), time.monotonic())

    def _read_one(self, sock, frames, timeout):
        """The next frame of the handshake; waits at most ``timeout``, and
        gives up as soon as the client stops."""
        deadline = time.monotonic() + timeout
        stopped = self.client._stopped
        frame = frames.next_frame()
        while frame is None:
            if stopped.is_set():
                raise _ClientStopped()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConnectionDropped("timed out waiting for the server")
            frames.read_from(sock, min(remaining, _STOP_CHECK_INTERVAL), 0)
            frame = frames.next_frame()
        return frame

    def _restore_watches(self, sock, frames):
        """Re-register the session's watches on a new connection.

        One-shot watches travel with SetWatches and relativeZxid = the last
        zxid this client saw, so the server fires those whose node changed
        meanwhile.  Persistent watches go in SetWatches2 (ZooKeeper 3.6+).
        Replies (xid -8) are read by the normal reply path.
        """
        for frame in self.machine.set_watches_frames():
            sock.sendall(frame)

    def _serve(self, sock):
        """Pings, idle reads and connection checks while connected."""
        client = self.client
        mx = self._mx
        wakeup = self._session_wakeup
        me = threading.get_ident()
        machine = self.machine
        nap = _QUIET
        while self._socket is sock:
            now = time.monotonic()
            ping = machine.tick(now)
            if ping is not None:
                self._send_ping(sock, ping)
            if self._read_only and now >= self._next_rw_probe:
                self._probe_for_rw_server()
            wait = max(0.0, machine.next_deadline() - now)
            with mx:
                if self._socket is not sock:
                    break
                idle = now - self._last_sync >= _QUIET
                take = (self._reader is None and not self._followers
                        and (self._pending or idle))
                if take:
                    self._reader = me
                    nap = _QUIET
                else:
                    # Synchronous callers active: look again after a nap.
                    # Otherwise sleep until the reader leaves the role (it
                    # notifies us) or a ping is due.
                    self._session_parked = idle
                    if idle:
                        wakeup.wait(min(wait, 0.5))
                    else:
                        wakeup.wait(min(wait, nap))
                        nap = min(nap * 2, _NAP_MAX)
                    self._session_parked = False
                    continue
            try:
                self._read_available(sock, min(wait, 0.5) or 0.001)
            finally:
                self._leave_role()
            closing = self._close_waiter
            if client._stopped.is_set() and (closing is None or closing.done):
                break

    def _probe_for_rw_server(self):
        """While connected to a read-only server, look for a read-write one
        (the ``isro`` four-letter word answers ``rw``) with a growing delay
        between rounds, and move to it when found."""
        for host, address, port in self._hosts():
            if (host, port) == self._connected_host:
                continue
            try:
                with socket.create_connection((address, port), timeout=0.5) as probe:
                    probe.sendall(b"isro")
                    answer = probe.recv(16)
            except OSError:
                continue
            if answer == b"rw":
                self._preferred_host = (host, port)
                raise _Broken(ConnectionDropped(
                    "a read-write server is available: %s:%s" % (host, port)))
        self._rw_probe_delay = min(self._rw_probe_delay * 2, 60.0)
        self._next_rw_probe = time.monotonic() + self._rw_probe_delay

    def _send_ping(self, sock, ping):
        with self._send_lock:
            if self._socket is not sock:
                return
            try:
                sock.sendall(ping)
            except OSError as exc:
                error = exc
            else:
                self.machine.last_send = time.monotonic()
                return
        raise _Broken(ConnectionDropped("ping failed: %s" % (error,)))


class _OpenMarker(object):
    """Stands in for kazoo's wake-up socket while the engine is started."""

    @staticmethod
    def send(data):
        return len(data)


_STOP = object()
# How often a connection attempt looks whether the client was stopped.
_STOP_CHECK_INTERVAL = STOP_CHECK_INTERVAL
_FAILED_ROUNDS_KEPT = 8
