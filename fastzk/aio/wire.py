"""The :class:`asyncio.Protocol` of one connection of the asyncio driver:
the bytes it receives split into frames, queued during the handshake and
then handed to the connection as they come."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Deque, Optional, cast

from kazoo.exceptions import ConnectionDropped

from fastzk._core import codec
from fastzk.drivers import batching
from fastzk.errors import ProtocolError
from fastzk.protocol import constants as zk
from fastzk.protocol.session import ConnectionBroken

if TYPE_CHECKING:
    from fastzk.aio.reconnect import ConnectionTask

__all__ = ["Wire"]


class Wire(asyncio.Protocol):
    """The byte stream of one connection, split into frames.

    :param owner: the connection it belongs to.
    :param pause: the pause of reply batching, in seconds (0 for none):
                  after a read of fewer than
                  :data:`~fastzk.drivers.batching.MAX_FRAMES` frames with
                  :data:`~fastzk.drivers.batching.MIN_PENDING` replies still
                  outstanding, reading stops this long (see
                  :mod:`fastzk.drivers.batching`).
    """

    def __init__(self, owner: "ConnectionTask", pause: float = 0.0) -> None:
        self.owner = owner
        self.pause = pause
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
        if (count < batching.MAX_FRAMES and self.pause
                and len(owner.machine.pending) >= batching.MIN_PENDING):
            transport = self.transport
            if transport is not None:
                transport.pause_reading()
                owner.loop.call_later(self.pause, self._resume)

    def _resume(self) -> None:
        transport = self.transport
        if transport is not None and not self.closed.done():
            transport.resume_reading()

    def eof_received(self) -> Optional[bool]:
        return False

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        # The transport is gone: what is written from now on is dropped
        # (uvloop's closed transports raise RuntimeError on write).
        self.transport = None
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
