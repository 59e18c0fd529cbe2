"""How a driver opens the byte stream a session runs over.

A :class:`Transport` makes one connection to one server address and hands
back the connected socket; the driver then sends on it and reads it by
descriptor (the compiled frame reader polls and reads the descriptor
itself).  :class:`PlainTransport` is TCP.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from typing import Callable, Optional, Protocol, Tuple

from kazoo.exceptions import ConnectionDropped

__all__ = ["PlainTransport", "Transport", "TransportStopped"]

# How often a connection attempt looks whether it should give up.
STOP_CHECK_INTERVAL = 0.05
_HAS_POLL = hasattr(select, "poll")


class TransportStopped(Exception):
    """The attempt was given up because ``stopped()`` became true."""


class Transport(Protocol):
    """Opens connections to ZooKeeper servers."""

    def connect(self, address: str, port: int, timeout: float,
                stopped: Callable[[], bool],
                server_name: Optional[str] = None) -> socket.socket:
        """A connection to ``address:port`` made within ``timeout`` seconds.

        :param stopped: polled while waiting; once it returns True the
                        attempt ends with :class:`TransportStopped`.
        :param server_name: the host name ``address`` was resolved from.
        :raises OSError: the connection failed or timed out.
        """
        ...

    def explain(self, exc: BaseException) -> Tuple[BaseException, bool]:
        """What a failed connection attempt (``exc``, raised by
        :meth:`connect` or by the session handshake over its socket)
        means: the exception to report, and whether retrying is futile."""
        ...


class PlainTransport(object):
    """TCP, with Nagle's algorithm off (requests are small and each waits
    for its reply)."""

    def connect(self, address: str, port: int, timeout: float,
                stopped: Callable[[], bool],
                server_name: Optional[str] = None) -> socket.socket:
        """Like :func:`socket.create_connection`, but given up as soon as
        ``stopped()`` is true (a client stopped at its start deadline waits
        for this attempt to end).

        :returns: the connected socket, non-blocking with a Python timeout
                  of ``timeout`` seconds on its sends.
        """
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            err = sock.connect_ex((address, port))
            if err in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
                _wait_writable(sock, time.monotonic() + timeout, stopped)
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
            sock.settimeout(timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            sock.close()
            raise
        return sock

    def explain(self, exc: BaseException) -> Tuple[BaseException, bool]:
        """``exc``, retryable; a connection the server closed before its
        handshake reply says that a secure client port does so too."""
        if isinstance(exc, ConnectionDropped) and "closed by server" in str(
                exc):
            return (ConnectionDropped(
                "the server closed the connection before answering the "
                "session handshake (a secure client port does so: connect "
                "to it with use_ssl=True)"), False)
        return exc, False


def _wait_writable(sock: socket.socket, deadline: float,
                   stopped: Callable[[], bool]) -> None:
    while True:
        if stopped():
            raise TransportStopped()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out")
        wait = min(remaining, STOP_CHECK_INTERVAL)
        if _HAS_POLL:
            poller = select.poll()
            poller.register(sock, select.POLLOUT)
            if poller.poll(wait * 1000.0):
                return
        elif select.select([], [sock], [sock], wait) != ([], [], []):
            return
