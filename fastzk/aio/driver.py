"""The asyncio driver of the :class:`~fastzk.protocol.session.SessionMachine`.

One :class:`Connection` runs one client's session on the event loop, with
no threads: an :class:`asyncio.Protocol` feeds the bytes it receives to a
:class:`~fastzk._core.codec.FrameReader` and the frames to the machine,
which completes each request's future; loop timers send the pings, enforce
the read timeout and, while disconnected, the client-side expiry clock.  A
task (:meth:`Connection._run`) connects to the hosts in turn, performs the
handshake (ConnectRequest, SASL, auth replay, SetWatches) and reconnects
after a loss with a growing, jittered delay.

The parts: :class:`Connection` here (the client's side, sending and
receiving), the task (:mod:`fastzk.aio.reconnect`), the timers
(:mod:`fastzk.aio.timers`) and the protocol (:mod:`fastzk.aio.wire`).

Writes are corked: frames submitted during one pass of the event loop go
out in one ``transport.write`` at its end, so a burst of concurrent
requests (``asyncio.gather``) costs one system call, while the replies are
still matched one by one in the FIFO of requests in flight.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from kazoo.exceptions import ConnectionClosedError
from kazoo.protocol.states import KazooState
from kazoo.retry import KazooRetry

from fastzk._core import codec
from fastzk.aio.reconnect import ConnectionTask
from fastzk.aio.wire import Wire
from fastzk.drivers.hosts import HostRounds
from fastzk.protocol.session import ConnectionBroken, Request, SessionMachine

log = logging.getLogger("fastzk.aio")

__all__ = ["Connection", "Identity", "ReplyFuture"]

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


class ReplyFuture(asyncio.Future[Any]):
    """The :class:`asyncio.Future` of one request's reply, and its
    completion for the session machine: :meth:`set` and
    :meth:`set_exception` leave a future its awaiting task cancelled as it
    is, where a plain future would raise
    :exc:`asyncio.InvalidStateError`."""

    __slots__ = ()

    def set(self, value: Any = None) -> None:
        """Complete the future with ``value`` (unless it is done)."""
        if not self.done():
            self.set_result(value)

    def set_exception(self, exception: Any) -> None:
        """Fail the future with ``exception`` (unless it is done)."""
        if not self.done():
            super().set_exception(exception)


class Connection(ConnectionTask):
    """The connection machinery of one :class:`~fastzk.aio.AsyncClient`.

    :param loop: the event loop it runs on (every call comes from it).
    :param hosts: ``[(host, port), ...]`` to connect to.
    :param identity: the session's identity.
    :param machine: the session's protocol state.
    :param on_state: called with each new :class:`KazooState`.
    :param ssl_context: TLS, or None for plain TCP.
    :param reply_batching: the pause of reply batching, in seconds (see
                           :class:`~fastzk.aio.wire.Wire`); 0 for none.
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
                 retry: Optional[KazooRetry] = None,
                 reply_batching: float = 0.0) -> None:
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
        self.reply_batching = reply_batching
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
        self._wire: Optional[Wire] = None
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
        machine = self.machine
        frame = machine.send(req)
        if frame is None:
            return
        out = self._out
        if not out and len(machine.pending) <= 1:
            # No reply outstanding: nobody else will write in this pass of
            # the loop that could join this frame, so send it now.
            wire.write(frame)
            machine.last_send = self.loop.time()
            return
        # Replies are outstanding: frames submitted in this pass go out
        # together at its end (one write for a gathered burst).  The server
        # answers in order, so waiting cannot reorder anything.
        out.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    async def stop(self) -> None:
        """Close the session (closeSession) and end the connection task."""
        task = self._task
        if task is None:
            return
        self._stopping = True
        wire = self._wire
        if wire is not None and not task.done():
            close = Request(codec.CLOSE, codec.encode_close, 9,
                            ReplyFuture(loop=self.loop))
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

    def _receive(self, wire: Wire, frame: bytes, now: float) -> None:
        try:
            self.machine.receive(frame, now)
        except ConnectionBroken as exc:
            self._drop(wire, exc.args[0])

    def _drop(self, wire: Wire, error: BaseException) -> None:
        """End the connection of ``wire`` because of ``error``."""
        if not wire.closed.done():
            wire.closed.set_result(error)
        transport = wire.transport
        if transport is not None:
            transport.abort()

    # -- state -------------------------------------------------------------

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
