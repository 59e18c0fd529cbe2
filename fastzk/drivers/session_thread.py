"""The thread that keeps a client connected.

:class:`SessionThread` is the loop of the thread driver's session thread:
it connects to the hosts in turn (after a short random delay on
reconnect), opens each connection (:mod:`fastzk.drivers.handshake`), then
pings when nothing was sent for a third of the read timeout and reads
events and replies while no caller does.  When a connection ends it fails
what was in flight, moves the session's state (``machine.states``, which
tells the client through its ``_session_callback``) and reconnects, or
opens a new session after an expiry, or stops.  While disconnected it runs
the client-side expiry clock.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Optional, Tuple

from kazoo.exceptions import (
    AuthFailedError,
    ConnectionClosedError,
    ConnectionDropped,
    ConnectionLoss,
    SessionClosedRequireSaslError,
    SessionExpiredError,
)
from kazoo.protocol.states import KeeperState
from kazoo.retry import ForceRetryError, KazooRetry, RetryFailedError

from fastzk._core import codec
from fastzk.errors import ProtocolError
from fastzk.protocol.session import (
    ConnectionBroken as _Broken,
    SessionClosed as _SessionClosed,
)
from fastzk.drivers import batching
from fastzk.drivers.expiry_clock import ExpiryClock
from fastzk.drivers.handshake import open_connection
from fastzk.drivers.hosts import resolve
from fastzk.drivers.jitter import RANDOM as _random
from fastzk.drivers.transport import TransportStopped
from fastzk.drivers.waiter import Waiter

if TYPE_CHECKING:
    from fastzk.drivers.engine import Engine

__all__ = ["SessionThread", "STOP"]

# Authentication failures that end the session thread: retrying the same
# credentials on the same servers cannot succeed.
_AUTH_FAILURES = (AuthFailedError, SessionClosedRequireSaslError)

# The session thread leaves the socket to synchronous callers while one has
# been active within this many seconds.  While they stay active it looks
# again after a nap that doubles up to _NAP_MAX (a busy caller would
# otherwise cost it a wake-up every _QUIET), so it takes over reading at
# most _NAP_MAX after the callers stop.
_QUIET = 0.002
_NAP_MAX = 0.016

#: Returned by the loop's steps when the client is done.
STOP = object()
_STOP = STOP


class SessionThread(object):
    """The session thread's work for one :class:`~fastzk.drivers.engine.Engine`.

    :param engine: the engine it serves (its client, session machine,
                   channel, host rounds and transport).
    """

    def __init__(self, engine: "Engine") -> None:
        self.engine = engine
        self.client = engine.client
        self.machine = engine.machine
        self.channel = engine.channel
        self.hosts = engine.hosts
        self.watches = engine.machine.watches
        self.logger = engine.logger
        #: The exception that ended the thread for good since
        #: :meth:`reset`, or None (see ``Engine.fatal_error``).
        self.fatal_error: Optional[BaseException] = None
        #: The state a closeSession reply means: EXPIRED_SESSION when the
        #: client asked the server to expire the session, else CLOSED.
        self.drop_requested: Optional[str] = None
        #: The Waiter of a closeSession the client is waiting for.
        self.close_waiter: Optional[Waiter] = None
        #: ``(host, port)`` of the server connected last.
        self.connected_host: Optional[Tuple[str, int]] = None
        # How the last connection ended: the state it leaves the session
        # in, and the error that ended it.
        self._lost_state: Optional[str] = None
        self._lost_error: Optional[BaseException] = None
        #: Gives the session up after a whole session timeout without a
        #: server.
        self.expiry_clock = ExpiryClock(self.machine, self.channel,
                                        self._given_up)
        self._read_only = False
        self._next_rw_probe = 0.0
        self._rw_probe_delay = 0.5

    def reset(self) -> None:
        """The client starts anew."""
        self.close_waiter = None
        self.fatal_error = None

    def broken(self, sock: Any, error: BaseException) -> None:
        """Close ``sock`` if it is still the current connection and fail what
        was in flight on it; the session thread reconnects."""
        pending = self.channel.detach(sock)
        if pending is None:
            return
        if isinstance(error, _SessionClosed):
            if self.drop_requested is not None:
                state = self.drop_requested
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

    def _fail_queue(self, error: BaseException) -> None:
        for req in self.channel.drain_queue():
            req.result.set_exception(error)

    def _authentication_failed(self, error: BaseException) -> object:
        """The server refused this client's authentication: report
        AUTH_FAILED (kazoo's LOST), fail what waited, and stop, as kazoo
        does."""
        self.fatal_error = error
        self.logger.warning("AUTH_FAILED closing: %s", error)
        self.machine.states.auth_failed()
        self._fail_queue(type(error)(*error.args))
        return _STOP

    def _expired(self) -> Optional[object]:
        """The session is gone: tell the client, fail what waited for it,
        and go on with a new session unless the client said not to."""
        client = self.client
        self.expiry_clock.stop()
        self.machine.reset_xids()
        states = self.machine.states
        states.expired()
        self._fail_queue(SessionExpiredError())
        if not client._stopped.is_set() and client._reconnect_on_expiry:
            states.connecting()
            return None
        return _STOP

    def _given_up(self) -> None:
        """The expiry clock gave the session up (see
        :mod:`fastzk.drivers.expiry_clock`)."""
        client = self.client
        if client._stopped.is_set():
            return
        self.logger.warning(
            "No server reached for a whole session timeout: session 0x%x "
            "considered expired", self.machine.abandoned_session or 0)
        states = self.machine.states
        states.expired()
        self._fail_queue(SessionExpiredError())
        if client._reconnect_on_expiry:
            states.connecting()

    # -- the session thread ---------------------------------------------------

    def run(self) -> None:
        retry = self.engine.retry_sleeper.copy()
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
            self.engine.connection_stopped.set()
            self.machine.states.closed()

    def _connect_round(self, retry: KazooRetry) -> Optional[object]:
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

    def _session(self, host: str, address: str, port: int,
                 retry: KazooRetry) -> Optional[object]:
        """Connect to one server and serve the session until the connection
        ends.  Returns _STOP when the client is done."""
        client = self.client
        states = self.machine.states
        states.connecting()
        self._lost_state = None
        self._lost_error = None
        self.drop_requested = None
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
            self.hosts.failed(host, port, *self.engine.transport.explain(exc))
            return None
        finally:
            self.hosts.attempting = None
        retry.reset()
        try:
            self._serve(sock)
        except _Broken as exc:
            self.broken(sock, exc.args[0])
        else:
            self.broken(sock, _SessionClosed())
        state, error = self._ending()
        if state == KeeperState.CLOSED:
            return _STOP
        if state == KeeperState.AUTH_FAILED and error is not None:
            return self._authentication_failed(error)
        if state == KeeperState.EXPIRED_SESSION:
            return self._expired()
        if client._stopped.is_set():
            return _STOP
        states.connecting()
        self.expiry_clock.start()
        # Reconnect after a short random delay so a fleet of clients does
        # not hit the next server at the same instant.
        time.sleep(_random.uniform(0.0, 0.1))
        return None

    def _ending(self) -> Tuple[Optional[str], Optional[BaseException]]:
        """How the last connection ended (set by :meth:`broken`): the state
        it leaves the session in, and the error that ended it."""
        return self._lost_state, self._lost_error

    def _connect(self, host: str, address: str, port: int) -> Any:
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
            self.engine.transport, machine, host, address, port, timeout,
            client._stopped.is_set, client._sasl_options, client.auth_data)
        self.connected_host = (host, port)
        self.hosts.connected()
        machine.last_send = machine.last_recv = time.monotonic()
        self.expiry_clock.stop()
        failed = self.channel.attach(sock, frames)
        if failed is not None:
            sock.close()
            self.expiry_clock.start()  # the server was heard from just now
            raise ConnectionDropped("sending the requests queued while "
                                    "disconnected failed: %s" % (failed,))
        self._read_only = bool(read_only)
        self._next_rw_probe = time.monotonic() + 0.5
        self._rw_probe_delay = 0.5
        machine.states.connected(bool(read_only))
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

    def _serve(self, sock: Any) -> None:
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
                count = channel.read_available(sock, min(wait, 0.5) or 0.001)
            finally:
                channel.leave_role()
            if (count < batching.MAX_FRAMES and client.reply_batching
                    and len(channel.pending) >= batching.MIN_PENDING):
                # A pipelined burst read a reply or two at a time (see
                # fastzk.drivers.batching); the role is free meanwhile.
                self._pause(client.reply_batching)
            closing = self.close_waiter
            if client._stopped.is_set() and (closing is None or closing.done):
                break

    def _pause(self, seconds: float) -> None:
        """The pause of reply batching (its own method, for the tests)."""
        time.sleep(seconds)

    def _probe_for_rw_server(self) -> None:
        """While connected to a read-only server, look for a read-write one
        (the ``isro`` four-letter word answers ``rw``) with a growing delay
        between rounds, and move to it when found."""
        for host, address, port in resolve(self.client.hosts):
            if (host, port) == self.connected_host:
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
