"""The loop timers of the asyncio driver's :class:`~fastzk.aio.driver.Connection`:
the tick that sends the pings and enforces the read timeout, and, while
disconnected, the client-side expiry clock, with what an expiry does."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Callable, Deque, Optional

from kazoo.exceptions import SessionExpiredError

from fastzk.protocol.session import ConnectionBroken, Request, SessionMachine

if TYPE_CHECKING:
    from fastzk.aio.driver import Identity
    from fastzk.aio.wire import Wire

log = logging.getLogger("fastzk.aio")

__all__ = ["Timers"]


class Timers(object):
    """The timers of a :class:`~fastzk.aio.driver.Connection` (a part of
    it, which sets the attributes below)."""

    loop: asyncio.AbstractEventLoop
    machine: SessionMachine
    identity: "Identity"
    on_expired: Optional[Callable[[], None]]
    _wire: Optional["Wire"]
    _queue: Deque[Request]
    _tick_handle: Optional[asyncio.TimerHandle]
    _expiry_handle: Optional[asyncio.TimerHandle]
    _stopping: bool
    _drop: Callable[["Wire", BaseException], None]
    _flush: Callable[[], None]

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
