"""The asyncio driver of the :class:`~fastzk.protocol.session.SessionMachine`.

One :class:`Connection` runs one client's session on the event loop, with
no threads: an :class:`asyncio.Protocol` feeds the bytes it receives to a
:class:`~fastzk._core.codec.FrameReader` and the frames to the machine,
which completes each request's future; loop timers send the pings, enforce
the read timeout and, while disconnected, the client-side expiry clock.  A
task (:meth:`Connection._run`) connects to the hosts in turn, performs the
handshake (ConnectRequest, SASL, auth replay, SetWatches) and reconnects
after a loss with a growing, jittered delay.

Writes are corked: frames submitted during one pass of the event loop go
out in one ``transport.write`` at its end, so a burst of concurrent
requests (``asyncio.gather``) costs one system call, while the replies are
still matched one by one in the FIFO of requests in flight.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple, cast

from kazoo.exceptions import (
    AuthFailedError,
    ConnectionClosedError,
    ConnectionDropped,
    ConnectionLoss,
    SessionClosedRequireSaslError,
    SessionExpiredError,
)
from kazoo.protocol.states import KazooState
from kazoo.retry import KazooRetry

from fastzk._core import codec
from fastzk.drivers.hosts import HostRounds
from fastzk.drivers.tls import explain_failure
from fastzk.errors import ProtocolError
from fastzk.protocol import constants as zk
from fastzk.protocol.session import (
    AbandonedSession,
    ConnectionBroken,
    Request,
    SessionClosed,
    SessionMachine,
)

log = logging.getLogger("fastzk.aio")

__all__ = ["Connection", "FutureResult", "Identity"]

_AUTH_FAILURES = (AuthFailedError, SessionClosedRequireSaslError)
_NO_PASSWORD = b"\x00" * 16


class Identity(object):
    """The session's identity between connections (what the machine reads
    and updates: kazoo's client attributes of the same names)."""

    def __init__(self, client_id: Optional[Tuple[int, bytes]] = None) -> None:
        self.last_zxid = 0
        self._session_id: Optional[int] = None
        self._session_passwd: Any = _NO_PASSWORD
        self._protocol_version: Any = 0
        if client_id is not None:
            self._session_id, self._session_passwd = client_id

    def reset(self) -> None:
        """Forget the session (it expired): the next connection opens a
        new one."""
        self.last_zxid = 0
        self._session_id = None
        self._session_passwd = _NO_PASSWORD
        self._protocol_version = 0


class FutureResult(object):
    """The completion of one request: sets an :class:`asyncio.Future`
    (a future its awaiting task cancelled is left alone)."""

    __slots__ = ("future",)

    def __init__(self, future: "asyncio.Future[Any]") -> None:
        self.future = future

    def set(self, value: Any = None) -> None:
        if not self.future.done():
            self.future.set_result(value)

    def set_exception(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class _Wire(asyncio.Protocol):
    """The byte stream of one connection, split into frames."""

    def __init__(self, owner: "Connection") -> None:
        self.owner = owner
        self.frames = codec.FrameReader(zk.MAX_FRAME)
        self.transport: Optional[asyncio.Transport] = None
        # During the handshake frames queue here for _next_frame.
        self.handshake: Optional[Deque[bytes]] = deque()
        self.waiter: Optional["asyncio.Future[None]"] = None
        self.closed: "asyncio.Future[Optional[BaseException]]" = (
            owner.loop.create_future())

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without being
        # its subclasses.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        frames = self.frames
        try:
            frames.feed(data)
            frame = frames.next_frame()
            while frame is not None:
                queue = self.handshake
                if queue is not None:
                    queue.append(frame)
                    self._wake()
                else:
                    self.owner._receive(self, frame)
                    if self.closed.done():
                        return
                frame = frames.next_frame()
        except ProtocolError as exc:
            self.owner._drop(self, exc)

    def eof_received(self) -> Optional[bool]:
        return False

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if not self.closed.done():
            self.closed.set_result(exc or ConnectionDropped(
                "socket connection broken (closed by server)"))
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next_frame(self, timeout: float) -> bytes:
        """The next handshake frame, within ``timeout`` seconds."""
        loop = self.owner.loop
        deadline = loop.time() + timeout
        queue = self.handshake
        assert queue is not None
        while not queue:
            if self.closed.done():
                error = self.closed.result()
                raise ConnectionDropped(
                    "socket connection broken (closed by server)"
                ) from error
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ConnectionDropped("timed out waiting for the server")
            self.waiter = loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self.waiter), remaining)
            except asyncio.TimeoutError:
                pass
            finally:
                self.waiter = None
        return queue.popleft()

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None:
            transport.write(data)


class Connection(object):
    """The connection machinery of one :class:`~fastzk.aio.AsyncClient`.

    :param loop: the event loop it runs on (every call comes from it).
    :param hosts: ``[(host, port), ...]`` to connect to.
    :param identity: the session's identity.
    :param machine: the session's protocol state.
    :param on_state: called with each new :class:`KazooState`.
    :param ssl_context: TLS, or None for plain TCP.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 hosts: List[Tuple[str, int]], identity: Identity,
                 machine: SessionMachine, on_state: Callable[[str], None],
                 ssl_context: Optional[ssl.SSLContext] = None,
                 randomize_hosts: bool = True,
                 auth_data: Optional[List[Tuple[str, Any]]] = None,
                 sasl_options: Any = None,
                 on_reconnected: Optional[Callable[[], None]] = None,
                 on_expired: Optional[Callable[[], None]] = None,
                 retry: Optional[KazooRetry] = None) -> None:
        self.loop = loop
        self.hosts = hosts
        self.identity = identity
        self.machine = machine
        self.on_state = on_state
        self.ssl_context = ssl_context
        self.randomize_hosts = randomize_hosts
        self.auth_data: List[Tuple[str, Any]] = list(auth_data or ())
        self.sasl_options = sasl_options
        self.on_reconnected = on_reconnected
        self.on_expired = on_expired
        #: Paces reconnects (kazoo's connection_retry).
        self.retry = retry if retry is not None else KazooRetry(
            max_tries=-1, delay=0.1, backoff=2, max_jitter=0.4,
            max_delay=60.0)
        self._reported = KazooState.LOST
        machine.states.notify = self._state_changed
        #: ``(host, port)`` of the server connected to, or None.
        self.connected_host: Optional[Tuple[str, int]] = None
        #: The connection attempts: host order, why they failed.
        self.rounds = HostRounds(log)
        #: The error that ended the connection task for good, or None.
        self.fatal_error: Optional[BaseException] = None
        self._wire: Optional[_Wire] = None
        self._queue: Deque[Request] = deque()  # submitted while disconnected
        self._out: List[bytes] = []
        self._flush_scheduled = False
        self._tick_handle: Optional[asyncio.TimerHandle] = None
        self._expiry_handle: Optional[asyncio.TimerHandle] = None
        self._task: Optional["asyncio.Task[None]"] = None
        self._stopping = False
        self._connected = asyncio.Event()
        self._ended = asyncio.Event()

    # -- the client's side -------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the connection task runs (between start and stop)."""
        return self._task is not None and not self._task.done()

    def stopping(self) -> bool:
        """Whether :meth:`stop` was called (or the session closed)."""
        return self._stopping

    def start(self) -> None:
        """Start connecting (in a task of the loop)."""
        self._stopping = False
        self.fatal_error = None
        self.rounds.reset()
        self._connected.clear()
        self._ended.clear()
        self._task = self.loop.create_task(self._run())

    async def wait_connected(self, timeout: Optional[float]) -> bool:
        """Wait until connected, the task gave up, or ``timeout``."""
        if self._connected.is_set():
            return True
        connected = self.loop.create_task(self._connected.wait())
        ended = self.loop.create_task(self._ended.wait())
        try:
            await asyncio.wait((connected, ended), timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            connected.cancel()
            ended.cancel()
        return self._connected.is_set()

    def submit(self, req: Request) -> None:
        """Send ``req`` now, or queue it until connected; failures reach
        ``req.result``."""
        wire = self._wire
        if wire is None:
            if not self.running:
                req.result.set_exception(
                    ConnectionClosedError("Connection has been closed"))
            else:
                self._queue.append(req)
            return
        frame = self.machine.send(req)
        if frame is not None:
            self._write(frame)

    async def stop(self) -> None:
        """Close the session (closeSession) and end the connection task."""
        task = self._task
        if task is None:
            return
        self._stopping = True
        wire = self._wire
        if wire is not None and not task.done():
            future: "asyncio.Future[Any]" = self.loop.create_future()
            close = Request(codec.CLOSE, codec.encode_close, 9,
                            FutureResult(future))
            self.submit(close)
            try:
                await asyncio.wait_for(asyncio.shield(wire.closed),
                                       self.machine.read_timeout)
            except (asyncio.TimeoutError, Exception):
                pass
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
        self._task = None

    # -- sending -----------------------------------------------------------

    def _write(self, frame: bytes) -> None:
        wire = self._wire
        if not self._out and len(self.machine.pending) <= 1 and wire is not None:
            # No reply outstanding: nobody else will write in this pass of
            # the loop that could join this frame, so send it now.
            wire.write(frame)
            self.machine.last_send = self.loop.time()
            return
        # Replies are outstanding: frames written in this pass go out
        # together at its end (one write for a gathered burst).  The server
        # answers in order, so waiting cannot reorder anything.
        self._out.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if not out:
            return
        self._out = []
        wire = self._wire
        if wire is None:
            return
        wire.write(out[0] if len(out) == 1 else b"".join(out))
        self.machine.last_send = self.loop.time()

    # -- receiving ---------------------------------------------------------

    def _receive(self, wire: _Wire, frame: bytes) -> None:
        try:
            self.machine.receive(frame, self.loop.time())
        except ConnectionBroken as exc:
            self._drop(wire, exc.args[0])

    def _drop(self, wire: _Wire, error: BaseException) -> None:
        """End the connection of ``wire`` because of ``error``."""
        if not wire.closed.done():
            wire.closed.set_result(error)
        transport = wire.transport
        if transport is not None:
            transport.abort()

    # -- timers ------------------------------------------------------------

    def _schedule_tick(self) -> None:
        self._tick_handle = self.loop.call_at(self.machine.next_deadline(),
                                              self._tick)

    def _tick(self) -> None:
        wire = self._wire
        if wire is None:
            return
        try:
            ping = self.machine.tick(self.loop.time())
        except ConnectionBroken as exc:
            self._drop(wire, exc.args[0])
            return
        if ping is not None:
            self._flush()
            wire.write(ping)
            self.machine.last_send = self.loop.time()
        self._schedule_tick()

    def _cancel_timers(self) -> None:
        for handle in (self._tick_handle, self._expiry_handle):
            if handle is not None:
                handle.cancel()
        self._tick_handle = self._expiry_handle = None

    def _start_expiry_clock(self) -> None:
        """Declare the session lost once a whole session timeout has passed
        since the server was last heard from (the server expires it then;
        a partitioned client otherwise hears of it only when it reaches a
        server again)."""
        deadline = self.machine.expiry_deadline()
        if deadline is None or self._expiry_handle is not None:
            return
        self._expiry_handle = self.loop.call_at(deadline, self._expire_locally)

    def _expire_locally(self) -> None:
        self._expiry_handle = None
        if self._wire is not None or self._stopping:
            return
        log.warning("No server reached for a whole session timeout: session "
                    "0x%x considered expired", self.identity._session_id or 0)
        self.machine.declare_lost()
        self._session_expired()

    def _session_expired(self) -> None:
        self.identity.reset()
        self.machine.reset_xids()
        self._fail_queue(SessionExpiredError())
        self.machine.states.expired()
        if self.on_expired is not None:
            self.on_expired()

    def _fail_queue(self, error: BaseException) -> None:
        queued = list(self._queue)
        self._queue.clear()
        for req in queued:
            req.result.set_exception(type(error)(*error.args))

    @property
    def state(self) -> str:
        """The session's :class:`~kazoo.protocol.states.KazooState`."""
        return self.machine.states.kazoo_state

    def _state_changed(self, keeper_state: str) -> None:
        seen = self.machine.states.kazoo_state
        if seen != self._reported:
            self._reported = seen
            self.on_state(seen)

    @property
    def connect_errors(self) -> Dict[Tuple[str, int], BaseException]:
        """The error of the latest failed attempt on each server since the
        last connection."""
        return self.rounds.connect_errors()

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
                await asyncio.sleep(delay * random.uniform(
                    1.0 - retry.max_jitter, 1.0 + retry.max_jitter))
                delay = min(delay * retry.backoff, cap)
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

    async def _attempt(self, host: str, port: int) -> Optional[_Wire]:
        """Connect to one server and complete the handshake; the wire, or
        None when it failed (:attr:`fatal_error` says when for good)."""
        machine = self.machine
        timeout = machine.session_timeout_ms / 1000.0 / max(3, len(self.hosts))
        wire = _Wire(self)
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
    def _port_of(wire: _Wire) -> int:
        peer = wire.transport.get_extra_info("peername") if wire.transport else None
        return int(peer[1]) if peer else 0

    @staticmethod
    def _close_wire(wire: _Wire) -> None:
        if wire.transport is not None:
            wire.transport.abort()

    async def _handshake(self, wire: _Wire, host: str, timeout: float) -> None:
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
        for frame_sw in machine.set_watches_frames():
            self._write(frame_sw)
        queued = list(self._queue)
        self._queue.clear()
        for req in queued:
            self.submit(req)
        self._flush()
        for frame in leftover:
            self._receive(wire, frame)
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

    async def _serve(self, wire: _Wire) -> None:
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
        await asyncio.sleep(random.uniform(0.0, 0.1))
