"""The :class:`asyncio.Protocol` of one connection of the asyncio driver:
the bytes it receives split into frames, queued during the handshake and
then handed to the connection as they come."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Deque, Optional, cast

from kazoo.exceptions import ConnectionDropped

from fastzk._core import codec
from fastzk.errors import ProtocolError
from fastzk.protocol import constants as zk
from fastzk.protocol.session import ConnectionBroken

if TYPE_CHECKING:
    from fastzk.aio.reconnect import ConnectionTask

__all__ = ["Wire"]

#: Reply batching applies while at least this many replies are
#: outstanding after a read: a pipelined burst, where the replies to come
#: wait behind one another at the server anyway.
BATCH_MIN_PENDING = 64

#: ... and when the read carried fewer frames than this: the server is
#: writing replies one or two at a time, each costing the loop a wake-up.
BATCH_MAX_FRAMES = 16


class Wire(asyncio.Protocol):
    """The byte stream of one connection, split into frames.

    :param owner: the connection it belongs to.
    :param batching: reply batching, in seconds (0 for none): while a
                     pipelined burst is in flight (:data:`BATCH_MIN_PENDING`
                     replies outstanding) and a read brought only a few of
                     them, reading pauses this long, so that the next read
                     takes what arrived meanwhile in one wake-up of the
                     loop instead of one each.
    """

    def __init__(self, owner: "ConnectionTask", batching: float = 0.0) -> None:
        self.owner = owner
        self.batching = batching
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
        owner = self.owner
        receive = owner.machine.receive
        count = 0
        try:
            frames.feed(data)
            frame = frames.next_frame()
            # The frames of one read arrived together.
            now = owner.loop.time()
            while frame is not None:
                queue = self.handshake
                if queue is not None:
                    queue.append(frame)
                    self._wake()
                else:
                    receive(frame, now)
                count += 1
                frame = frames.next_frame()
        except ConnectionBroken as exc:
            owner._drop(self, exc.args[0])
            return
        except ProtocolError as exc:
            owner._drop(self, exc)
            return
        if (count < BATCH_MAX_FRAMES and self.batching
                and len(owner.machine.pending) >= BATCH_MIN_PENDING):
            transport = self.transport
            if transport is not None:
                transport.pause_reading()
                owner.loop.call_later(self.batching, self._resume)

    def _resume(self) -> None:
        transport = self.transport
        if transport is not None and not self.closed.done():
            transport.resume_reading()

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
