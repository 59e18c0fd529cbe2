"""The connection a session's threads share: sending, and who reads.

A :class:`Channel` holds the current connection of the thread driver (its
socket and frame reader) and moves requests over it: it encodes each one
with the session machine, pipelines it (replies come back in request order
on a session, a ZooKeeper guarantee, so the requests in flight form a FIFO)
and hands the frames it reads to the machine.  Who reads the socket, and
how a synchronous call waits for its reply, is its reading half,
:class:`~fastzk.drivers.read_role.ReadRole`.
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

from fastzk._core import codec
from fastzk.drivers.read_role import ReadRole
from fastzk.drivers.waiter import Waiter
from fastzk.protocol.session import ConnectionBroken, Request, SessionMachine
from fastzk.drivers.spin import AdaptiveSpin

__all__ = ["Channel"]

send_all = codec.send_all
_monotonic = time.monotonic

# Frames an outbox holds before the submitting thread sends them itself.
_OUTBOX_BATCH = 32

Refusal = Callable[[], Optional[BaseException]]


class Channel(ReadRole):
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
