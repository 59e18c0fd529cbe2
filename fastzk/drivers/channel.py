"""The connection a session's threads share: sending, and who reads.

A :class:`Channel` holds the current connection of the thread driver (its
socket and frame reader) and moves requests over it: it encodes each one
with the session machine, pipelines it (replies come back in request order
on a session, a ZooKeeper guarantee, so the requests in flight form a FIFO)
and hands the frames it reads to the machine.

Who reads the socket
--------------------
A thread that calls synchronously reads its own reply: it sends, takes the
*read role* if nobody holds it, and reads frames until its reply is in,
completing any other request whose reply comes first (leader/follower).
That saves the two thread hand-offs per request a dedicated I/O thread
costs.  A caller that finds the role taken parks until its reply is in, or
until the reader leaves and promotes it.  The session thread reads when
nobody else will (see :mod:`fastzk.engine`).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, List, Optional

from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionDropped,
    ConnectionLoss,
)
from kazoo.handlers.threading import KazooTimeoutError

from fastzk._core import codec
from fastzk.drivers.waiter import Waiter, current_deadline
from fastzk.errors import ProtocolError
from fastzk.protocol.session import ConnectionBroken, Request, SessionMachine
from fastzk.spin import AdaptiveSpin

__all__ = ["Channel"]

_now_ns = time.perf_counter_ns
send_all = codec.send_all
_monotonic = time.monotonic

# Frames an outbox holds before the submitting thread sends them itself.
_OUTBOX_BATCH = 32
# A parked caller re-checks the read role at least this often: a safety net,
# the channel wakes it explicitly.
_PARK = 0.05

Refusal = Callable[[], Optional[BaseException]]


class Channel(object):
    """The current connection of one session, for the threads that use it.

    :param machine: the session's protocol state.
    :param spin: how long a reader busy-polls before sleeping.
    :param refuses: returns the error a request fails with at once in the
                    session's state (expired, closed...), or None; asked on
                    every submit, so it must be cheap.
    :param refusal: returns the error for a request made while no
                    connection is up, or None to queue it for the next one.
    :param broken: ``broken(sock, error)``: the connection on ``sock``
                   failed with ``error`` (see :meth:`detach`).
    :param logger: where unexpected reader errors go.
    """

    def __init__(self, machine: SessionMachine, spin: AdaptiveSpin,
                 refuses: Refusal, refusal: Refusal,
                 broken: Callable[[Any, BaseException], None],
                 logger: logging.Logger) -> None:
        self.machine = machine
        self.spin = spin
        self._refuses = refuses
        self._refusal = refusal
        self._broken = broken
        self.logger = logger
        #: The connected socket, or None while disconnected.
        self.socket: Any = None
        #: The frame reader of :attr:`socket`.
        self.frames: Any = None
        #: Held around every send, and around connecting and detaching.
        self.send_lock = threading.Lock()
        #: Guards the read role (:attr:`reader`, :attr:`followers`).
        self.mx = threading.Lock()
        #: Wakes the session thread when someone must read.
        self.wakeup = threading.Condition(self.mx)
        self.pending = machine.pending
        #: Requests submitted while disconnected, sent after the handshake.
        self.queue: Deque[Request] = deque()
        # Frames encoded while replies were outstanding, not sent yet (see
        # submit); guarded by send_lock, cleared with the connection.
        self.outbox: List[bytes] = []
        #: The thread id holding the read role, or None.
        self.reader: Optional[int] = None
        #: Synchronous callers waiting for the read role or their reply.
        self.followers: List[Waiter] = []
        # Broken sockets a reader still holds (closed when it leaves).
        self.closing: List[Any] = []
        #: When the last synchronous call returned.
        self.last_sync = 0.0
        #: Whether the session thread stands aside for synchronous callers.
        self.session_parked = False

    # -- sending -------------------------------------------------------------

    def submit(self, req: Request, reader_needed: bool = True,
               force: bool = False) -> None:
        """Send ``req`` now, or queue it until the session is connected.

        Raises nothing: failures reach ``req.result``.  With
        ``reader_needed`` (an asynchronous call, whose caller will not read
        the reply itself) a parked session thread is woken to read it.
        With ``force`` the session's state is not asked (closeSession).
        """
        if not force:
            error = self._refuses()
            if error is not None:
                req.result.set_exception(error)
                return
        with self.send_lock:
            sock = self.socket
            if sock is None:
                error = self._refusal()
                if force:
                    error = ConnectionClosedError("Connection has been closed")
                if error is not None:
                    req.result.set_exception(error)
                else:
                    self.queue.append(req)
                return
            frame = self.machine.send(req)
            if frame is None:
                return
            data: Optional[bytes] = frame
            if len(self.pending) > 1:
                # Replies are outstanding, so a reader is or will be at the
                # socket: it sends this frame with whatever else queues up
                # meanwhile, in one write, when it next reads (Nagle's
                # rule, RFC 896, at the request level).  Little is lost:
                # the server answers a session's requests in order, so this
                # reply cannot come before the outstanding ones anyway.
                # A long burst goes out every _OUTBOX_BATCH frames, to keep
                # the server busy meanwhile.
                out = self.outbox
                out.append(frame)
                data = None
                if len(out) >= _OUTBOX_BATCH:
                    data = b"".join(out)
                    out.clear()
            failure = None
            if data is not None:
                try:
                    send_all(sock, data)
                except (OSError, ValueError) as exc:
                    failure = exc
                else:
                    self.machine.last_send = _monotonic()
        if failure is not None:
            self._broken(sock, ConnectionDropped("send failed: %s" % (failure,)))
        elif reader_needed and self.reader is None:
            # Nobody is reading: wake the session thread, also from the
            # short wait it takes while synchronous callers are active.
            with self.mx:
                self.wakeup.notify()

    def send(self, sock: Any, frame: bytes) -> None:
        """Send one frame now (a ping), if ``sock`` is still connected.

        :raises ConnectionBroken: the send failed.
        """
        with self.send_lock:
            if self.socket is not sock:
                return
            try:
                sock.sendall(frame)
            except OSError as exc:
                error = exc
            else:
                self.machine.last_send = _monotonic()
                return
        raise ConnectionBroken(ConnectionDropped("ping failed: %s" % (error,)))

    def flush(self, sock: Any) -> None:
        """Send the frames waiting in the outbox, in one write.

        :raises ConnectionBroken: the send failed.
        """
        with self.send_lock:
            out = self.outbox
            if not out or self.socket is not sock:
                return
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            try:
                send_all(sock, data)
            except (OSError, ValueError) as exc:
                raise ConnectionBroken(ConnectionDropped("send failed: %s" % (exc,)))
            self.machine.last_send = _monotonic()

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
                    started = _now_ns()
                    got = frames.read_from(sock, timeout, spin.budget_us)
                    spin.observe(_now_ns() - started, frames.spin_off_cpu_ns)
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

    def read_available(self, sock: Any, timeout: float) -> None:
        """Wait up to ``timeout`` for data, then handle every whole frame.

        :raises ConnectionBroken: the connection failed.
        """
        frames = self.frames
        handle = self.machine.receive
        try:
            if self.outbox:
                self.flush(sock)
            frames.read_from(sock, timeout, 0)
            frame = frames.next_frame()
            while frame is not None:
                handle(frame, _monotonic())
                frame = frames.next_frame()
            if self.outbox:
                self.flush(sock)
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

    # -- connecting and disconnecting ------------------------------------------

    def detach(self, sock: Any) -> Optional[List[Request]]:
        """Close ``sock`` if it is still the current connection; returns the
        requests that were in flight on it (for the caller to fail), or
        None when ``sock`` was no longer current."""
        with self.send_lock:
            if self.socket is not sock or sock is None:
                return None
            self.socket = None
            pending = self.machine.connection_lost()
            self.outbox.clear()
            # shutdown() wakes a thread blocked reading this socket (close()
            # alone does not, on Linux).  Every send happens under
            # send_lock, so no sender is inside the socket now.
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self.mx:
            if self.reader is None:
                close_now = True
            else:
                # A reader may still hold the descriptor number: closing now
                # could let a new connection reuse it under that reader.  The
                # reader closes it when it leaves the role.
                close_now = False
                self.closing.append(sock)
        if close_now:
            sock.close()
        return pending

    def attach(self, sock: Any, frames: Any) -> Optional[BaseException]:
        """Make ``sock`` (read by ``frames``) the current connection, and
        send on it the requests queued while disconnected, in the order
        they were made.

        :returns: None, or the error of that send, in which case ``sock``
                  is not attached and those requests fail with
                  :class:`~kazoo.exceptions.ConnectionLoss`: they may or
                  may not have reached the server, as for any connection
                  loss, and their callers must hear so.
        """
        failed: Optional[BaseException] = None
        with self.send_lock:
            self.frames = frames
            self.socket = sock
            # Empty: the last connection's detach took what it had.
            stale = self.machine.connection_lost()
            self.outbox.clear()
            queued = list(self.queue)
            self.queue.clear()
            out = []
            for req in queued:
                frame = self.machine.send(req)
                if frame is not None:
                    out.append(frame)
            if out:
                try:
                    send_all(sock, b"".join(out))
                except (OSError, ValueError) as exc:
                    failed = exc
                    self.socket = None
                    stale.extend(self.pending)
                    self.pending.clear()
        for req in stale:
            req.result.set_exception(ConnectionLoss())
        return failed

    def wake_all(self) -> None:
        """Wake the session thread and every parked caller (to look at
        the connection again)."""
        with self.mx:
            self.wakeup.notify()
            for waiter in self.followers:
                waiter.wake()

    def drain_queue(self) -> List[Request]:
        """Take the requests queued while disconnected."""
        with self.send_lock:
            queued = list(self.queue)
            self.queue.clear()
        return queued
