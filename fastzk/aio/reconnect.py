"""The connection task of the asyncio driver's
:class:`~fastzk.aio.driver.Connection`: it connects to the hosts in turn,
performs the handshake (ConnectRequest, SASL, auth replay, SetWatches),
serves the connection until it ends, and reconnects after a loss with a
growing, jittered delay."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from typing import Any, Callable, List, Optional, Tuple

from kazoo.exceptions import (
    AuthFailedError,
    ConnectionClosedError,
    ConnectionDropped,
    ConnectionLoss,
    SessionClosedRequireSaslError,
    SessionExpiredError,
)
from kazoo.retry import KazooRetry

from fastzk._core import codec
from fastzk.aio.timers import Timers
from fastzk.aio.wire import Wire
from fastzk.drivers.hosts import HostRounds
from fastzk.drivers.jitter import RANDOM as _random
from fastzk.drivers.tls import explain_failure
from fastzk.errors import ProtocolError
from fastzk.protocol.session import AbandonedSession, Request, SessionClosed

log = logging.getLogger("fastzk.aio")

__all__ = ["ConnectionTask"]

_AUTH_FAILURES = (AuthFailedError, SessionClosedRequireSaslError)


class ConnectionTask(Timers):
    """The task (:meth:`_run`) of a :class:`~fastzk.aio.driver.Connection`
    (a part of it, which sets the attributes below)."""

    hosts: List[Tuple[str, int]]
    randomize_hosts: bool
    ssl_context: Optional[ssl.SSLContext]
    auth_data: List[Tuple[str, Any]]
    sasl_options: Any
    on_reconnected: Optional[Callable[[], None]]
    retry: KazooRetry
    reply_batching: float
    rounds: HostRounds
    fatal_error: Optional[BaseException]
    connected_host: Optional[Tuple[str, int]]
    _connected: asyncio.Event
    _ended: asyncio.Event
    stopping: Callable[[], bool]
    submit: Callable[[Request], None]
    _out: List[bytes]
    _receive: Callable[[Wire, bytes, float], None]

    # -- the connection task -----------------------------------------------

    async def _run(self) -> None:
        retry = self.retry
        delay = retry.delay
        rounds = 0
        try:
            while not self._stopping:
                errors = self.rounds.new_round()
                # Names are resolved by the loop when connecting.
                order = self.rounds.begin([(h, h, p) for h, p in self.hosts],
                                          self.randomize_hosts)
                for host, _, port in order:
                    if self.stopping():
                        break
                    wire = await self._attempt(host, port)
                    if wire is None:
                        if self.fatal_error is not None:
                            return
                        continue
                    delay = retry.delay
                    rounds = 0
                    await self._serve(wire)
                    if self.stopping() or self.fatal_error is not None:
                        return
                failure = self.rounds.end(errors)
                if failure is not None:
                    # Every server failed for a reason retrying cannot
                    # change (a certificate), and none was ever reached.
                    self.fatal_error = failure
                    return
                rounds += 1
                if retry.max_tries >= 0 and rounds >= max(1, retry.max_tries):
                    log.warning("Failed connecting to Zookeeper within the "
                                "connection retry policy.")
                    return
                # A round without a connection: back off, with jitter so a
                # fleet of clients does not hit the servers at one instant.
                # A session is lost once a whole session timeout passes
                # without a server, so while one may still be resumed the
                # pause stays under a third of that timeout.
                cap = retry.max_delay
                if self.identity._session_id is not None:
                    cap = min(cap, self.machine.session_timeout_ms / 3000.0)
                await asyncio.sleep(delay * _random.uniform(
                    1.0 - retry.max_jitter, 1.0 + retry.max_jitter))
                delay = min(delay * retry.backoff, cap)
        except Exception:
            # A bug, not a fault of the network: say so rather than leave
            # the client silently disconnected.
            log.exception("The connection task failed; the client is closed")
            raise
        finally:
            self._cancel_timers()
            self._wire = None
            self.connected_host = None
            self._connected.clear()
            closed = ConnectionClosedError("Connection has been closed")
            lost = self.machine.connection_lost()
            for req in lost:
                if req.opcode == codec.CLOSE:
                    req.result.set(True)
                else:
                    req.result.set_exception(closed)
            self._fail_queue(closed)
            self.machine.states.closed()
            self._ended.set()

    async def _attempt(self, host: str, port: int) -> Optional[Wire]:
        """Connect to one server and complete the handshake; the wire, or
        None when it failed (:attr:`fatal_error` says when for good)."""
        machine = self.machine
        timeout = machine.session_timeout_ms / 1000.0 / max(3, len(self.hosts))
        wire = Wire(self, self.reply_batching)
        try:
            await asyncio.wait_for(self.loop.create_connection(
                lambda: wire, host, port, ssl=self.ssl_context,
                server_hostname=host if self.ssl_context else None), timeout)
            await self._handshake(wire, host, timeout)
        except SessionExpiredError:
            self._close_wire(wire)
            log.warning("Session has expired")
            self._session_expired()
            return None
        except _AUTH_FAILURES as exc:
            self._close_wire(wire)
            self.fatal_error = exc
            log.warning("AUTH_FAILED closing: %s", exc)
            self.machine.states.auth_failed()
            return None
        except ssl.SSLError as exc:
            # A certificate that does not verify, or one the server
            # refuses, fails the same way on every retry.
            self._close_wire(wire)
            self.rounds.failed(host, port, *explain_failure(exc))
            return None
        except (OSError, ConnectionDropped, ProtocolError,
                asyncio.TimeoutError) as exc:
            self._close_wire(wire)
            if isinstance(exc, asyncio.TimeoutError):
                exc = ConnectionDropped("timed out connecting to %s:%s"
                                        % (host, port))
            self.rounds.failed(host, port, exc, False)
            return None
        except BaseException:
            self._close_wire(wire)
            raise
        return wire

    @staticmethod
    def _port_of(wire: Wire) -> int:
        peer = wire.transport.get_extra_info("peername") if wire.transport else None
        return int(peer[1]) if peer else 0

    @staticmethod
    def _close_wire(wire: Wire) -> None:
        if wire.transport is not None:
            wire.transport.abort()

    async def _handshake(self, wire: Wire, host: str, timeout: float) -> None:
        machine = self.machine
        wire.write(machine.connect_request())
        frame = await wire.next_frame(timeout)
        try:
            read_only = machine.receive_connect_response(frame,
                                                         self.loop.time())
        except AbandonedSession as exc:
            # The client already reported this session lost: end it on the
            # server so its ephemeral nodes go now, and open a fresh one.
            wire.write(exc.farewell)
            self.identity.reset()
            raise
        machine.sasl_options = self.sasl_options
        # SASL comes before anything else: ZooKeeper takes the identity
        # only from an exchange that opens the connection.
        frame_out = machine.start_sasl(host)
        while frame_out is not None:
            wire.write(frame_out)
            frame_out = machine.receive_sasl_reply(
                await wire.next_frame(timeout), self.loop.time())
        for scheme, credential in list(self.auth_data):
            wire.write(machine.auth_frame(scheme, credential))
            machine.receive_auth_reply(await wire.next_frame(timeout))
        # From here on frames go to the machine.  SetWatches restores the
        # one-shot watches with relativeZxid = the last zxid seen, so the
        # server fires those whose node changed meanwhile; the requests
        # queued while disconnected follow, in the order they were made.
        leftover = wire.handshake or deque()
        wire.handshake = None
        self._wire = wire
        self.connected_host = (host, self._port_of(wire))
        self.rounds.connected()
        now = self.loop.time()
        machine.last_send = machine.last_recv = now
        # SetWatches first, in the write that _flush makes below.
        self._out.extend(machine.set_watches_frames())
        queued = list(self._queue)
        self._queue.clear()
        for req in queued:
            self.submit(req)
        self._flush()
        for frame in leftover:
            self._receive(wire, frame, now)
        if self._expiry_handle is not None:
            self._expiry_handle.cancel()
            self._expiry_handle = None
        self._schedule_tick()
        self._connected.set()
        if read_only:
            log.info("Connected to a read-only server %s", host)
        machine.states.connected(bool(read_only))
        if self.on_reconnected is not None:
            self.on_reconnected()

    async def _serve(self, wire: Wire) -> None:
        error = await asyncio.shield(wire.closed)
        self._wire = None
        self.connected_host = None
        self._connected.clear()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        self._close_wire(wire)
        lost = self.machine.connection_lost()
        if isinstance(error, _AUTH_FAILURES):
            self.fatal_error = error
        for req in lost:
            if req.opcode == codec.CLOSE:
                req.result.set(True)
            elif isinstance(error, _AUTH_FAILURES):
                req.result.set_exception(error)
            else:
                req.result.set_exception(ConnectionLoss())
        if isinstance(error, _AUTH_FAILURES):
            self.machine.states.auth_failed()
            return
        if self._stopping or isinstance(error, SessionClosed):
            self._stopping = True
            return
        log.info("Connection dropped: %s", error)
        self.machine.states.connecting()
        self._start_expiry_clock()
        # Reconnect after a short random delay.
        await asyncio.sleep(_random.uniform(0.0, 0.1))
