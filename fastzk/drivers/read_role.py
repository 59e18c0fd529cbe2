"""Who reads a session's socket: the reading half of a
:class:`~fastzk.drivers.channel.Channel`.

A thread that calls synchronously reads its own reply: it sends, takes the
*read role* if nobody holds it, and reads frames until its reply is in,
completing any other request whose reply comes first (leader/follower).
That saves the two thread hand-offs per request a dedicated I/O thread
costs.  A caller that finds the role taken parks until its reply is in, or
until the reader leaves and promotes it.  The session thread reads when
nobody else will (see :mod:`fastzk.drivers.engine`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Deque, List, Optional

from kazoo.exceptions import ConnectionDropped
from kazoo.handlers.threading import KazooTimeoutError

from fastzk.drivers.waiter import Waiter, current_deadline
from fastzk.errors import ProtocolError
from fastzk.protocol.session import ConnectionBroken, Request, SessionMachine
from fastzk.drivers.spin import AdaptiveSpin

__all__ = ["ReadRole"]

_now_ns = time.perf_counter_ns
_monotonic = time.monotonic

# A parked caller re-checks the read role at least this often: a safety net,
# the channel wakes it explicitly.
_PARK = 0.05


class ReadRole(object):
    """The reading half of a :class:`~fastzk.drivers.channel.Channel`:
    synchronous calls that read their own reply, and the reads of whoever
    holds the read role.

    Internal: only a base of :class:`~fastzk.drivers.channel.Channel`,
    whose constructor sets the attributes declared here and documents them.
    """

    # The channel's, set by its constructor.
    machine: SessionMachine
    spin: AdaptiveSpin
    logger: logging.Logger
    _broken: Callable[[Any, BaseException], None]
    socket: Any
    frames: Any
    mx: threading.Lock
    wakeup: threading.Condition
    pending: Deque[Request]
    outbox: List[bytes]
    reader: Optional[int]
    followers: List[Waiter]
    closing: List[Any]
    last_sync: float
    session_parked: bool

    if TYPE_CHECKING:
        # The channel's sending half.
        def submit(self, req: Request, reader_needed: bool = True,
                   force: bool = False) -> None: ...

        def flush(self, sock: Any) -> None: ...

    # -- a synchronous call --------------------------------------------------

    def call(self, req: Request) -> Any:
        """Submit ``req`` and wait for its reply in this thread.

        ``req.result`` must be a fresh :class:`~fastzk.drivers.waiter.Waiter`.
        Returns the decoded reply or raises the request's error.  Inside
        :func:`~fastzk.drivers.waiter.bounded` the wait ends at that
        deadline with :class:`~kazoo.handlers.threading.KazooTimeoutError`;
        the request itself is not withdrawn (ZooKeeper has no way to), its
        reply is read and dropped later.
        """
        waiter: Waiter = req.result
        mx = self.mx
        followers = self.followers
        deadline = current_deadline()
        self.submit(req, False)
        me = threading.get_ident()
        while not waiter.done:
            park = _PARK
            if deadline is not None:
                park = deadline - _monotonic()
                if park <= 0:
                    break
                if park > _PARK:
                    park = _PARK
            with mx:
                # Set meanwhile by the thread reading the reply.
                if waiter.done:
                    break  # type: ignore[unreachable]
                sock = self.socket
                lead = self.reader is None and sock is not None and req.xid
                if lead:
                    self.reader = me
                    if waiter in followers:
                        followers.remove(waiter)
                elif waiter not in followers:
                    followers.append(waiter)
            if lead:
                try:
                    self.read_until(sock, waiter, deadline)
                except ConnectionBroken as exc:
                    self._broken(sock, exc.args[0])
                finally:
                    self.leave_role()
            else:
                waiter.park(park)
        if followers:
            with mx:
                if waiter in followers:
                    followers.remove(waiter)
                    if (self.session_parked and self.reader is None
                            and not followers):
                        # The session thread stood aside for us; nobody
                        # else is reading now.
                        self.wakeup.notify()
        self.last_sync = _monotonic()
        if not waiter.done:
            raise KazooTimeoutError("no reply within the caller's deadline")
        return waiter.result()

    # -- reading (read role held) ----------------------------------------------

    def read_until(self, sock: Any, waiter: Waiter,
                   deadline: Optional[float] = None) -> None:
        """Read and handle frames until ``waiter`` is done or ``deadline``
        (a :func:`time.monotonic` value) passes.

        :raises ConnectionBroken: the connection failed.
        """
        frames = self.frames
        handle = self.machine.receive
        spin = self.spin
        read_timeout = timeout = self.machine.read_timeout
        try:
            while not waiter.done:
                frame = frames.next_frame()
                if frame is None:
                    if self.outbox:
                        self.flush(sock)
                    if deadline is not None:
                        timeout = deadline - _monotonic()
                        if timeout >= read_timeout:
                            timeout = read_timeout
                        elif timeout <= 0:
                            return
                    if spin.ceiling_us:
                        started = _now_ns()
                        got = frames.read_from(sock, timeout, spin.budget_us)
                        spin.observe(_now_ns() - started,
                                     frames.spin_off_cpu_ns)
                    else:
                        got = frames.read_from(sock, timeout)
                    if not got:
                        if timeout < read_timeout:
                            continue  # the caller's deadline, not the server
                        raise ConnectionBroken(
                            ConnectionDropped("no reply from the server within "
                                              "the read timeout"))
                    continue
                handle(frame, _monotonic())
        except ConnectionBroken:
            raise
        except (ConnectionDropped, OSError, ValueError) as exc:
            raise ConnectionBroken(exc)
        except Exception as exc:
            raise self._unexpected(exc)

    def read_available(self, sock: Any, timeout: float) -> int:
        """Wait up to ``timeout`` for data, then handle every whole frame;
        returns how many there were.

        :raises ConnectionBroken: the connection failed.
        """
        frames = self.frames
        handle = self.machine.receive
        try:
            if self.outbox:
                self.flush(sock)
            frames.read_from(sock, timeout, 0)
            frame = frames.next_frame()
            count = 0
            while frame is not None:
                handle(frame, _monotonic())
                count += 1
                frame = frames.next_frame()
            if self.outbox:
                self.flush(sock)
            return count
        except ConnectionBroken:
            raise
        except (ConnectionDropped, OSError, ValueError) as exc:
            raise ConnectionBroken(exc)
        except Exception as exc:
            raise self._unexpected(exc)

    def _unexpected(self, exc: Exception) -> ConnectionBroken:
        # Whatever a frame did to the reader, the connection is no longer
        # trustworthy; the thread and the session survive.
        self.logger.exception("Unexpected error reading a frame")
        return ConnectionBroken(ProtocolError(
            "unexpected error reading a frame: %r" % (exc,)))

    def leave_role(self) -> None:
        """Give up the read role: promote the next follower, or wake the
        session thread when someone must read what comes next."""
        with self.mx:
            self.reader = None
            closing = self.closing
            if closing:
                self.closing = []
            for waiter in self.followers:
                if not waiter.done:
                    waiter.wake()  # the next reader
                    break
            else:
                if self.pending or self.session_parked:
                    # Pending replies, or watch events on an idle session.
                    self.wakeup.notify()
        for sock in closing:
            sock.close()
