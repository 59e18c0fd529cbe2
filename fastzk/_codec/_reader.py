"""Frame splitting of the pure-Python codec.

Part of :mod:`fastzk._codec` (import the codec from there), beside
the compiled twin's ``reader.pxi``: :class:`FrameReader`, which reads a
socket and cuts its byte stream into frames.
"""

import math
import operator
import select
import socket
import ssl
import time
from _socket import socket as _CSocket

from kazoo.exceptions import ConnectionDropped

from fastzk._codec import _primitives
from fastzk.errors import ProtocolError
from fastzk.protocol import constants as zk

# The struct is assigned, not imported by name: CPython (3.11 to 3.13)
# compiles ``name.method(...)`` as a method call unless an import bound
# ``name``, and then as an attribute load making a bound method per call.
_I = _primitives._I

#: Largest frame body a :class:`FrameReader` accepts by default
#: (:data:`fastzk.protocol.constants.MAX_FRAME`).
DEFAULT_MAX_FRAME = zk.MAX_FRAME

# Initial capacity of a FrameReader's buffer and the free space it wants
# before a socket read.
_INITIAL_BUFFER = 256 * 1024
_MIN_READ = 64 * 1024

_HAS_POLL = hasattr(select, "poll")
_POLL_READ = (
    select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP
    if _HAS_POLL
    else 0
)
_POLLNVAL = getattr(select, "POLLNVAL", 0)
_POLL_WRITE = select.POLLOUT if _HAS_POLL else 1
_POLL_MAX_MS = 0x7FFFFFFF


class FrameReader(object):
    """Split a byte stream into ZooKeeper frames.

    Keeps a growable receive buffer: bytes come in through :meth:`feed` or
    :meth:`read_from` and whole frames go out through :meth:`next_frame`.
    Not thread-safe: one thread at a time may use a reader.

    :param max_frame: the largest frame body accepted; a bigger (or
                      negative) length prefix raises
                      :class:`~fastzk.errors.ProtocolError`.
    """

    __slots__ = ("max_frame", "_buf", "_view", "_start", "_end", "_poller", "_busy")

    #: Off-CPU nanoseconds of the last busy-poll: always 0, this
    #: implementation never busy-polls.
    spin_off_cpu_ns = 0

    def __init__(self, max_frame=DEFAULT_MAX_FRAME):
        max_frame = operator.index(max_frame)
        if max_frame < 0 or max_frame > 0x7FFFFFFF:
            raise ValueError("max_frame must be in [0, 2**31 - 1]")
        self.max_frame = max_frame
        self._buf = bytearray(_INITIAL_BUFFER)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0
        self._poller = None  # (fd, select.poll object)
        self._busy = False

    def buffered(self):
        """Return the number of bytes received but not yet returned as frames.

        :rtype: int
        """
        return self._end - self._start

    def _reserve(self, want):
        """Make room for ``want`` more bytes after ``_end``."""
        if self._busy:
            raise RuntimeError("FrameReader used by two threads at once")
        cap = len(self._buf)
        if cap - self._end >= want:
            return
        pending = self._end - self._start
        if pending + want <= cap:
            # Slide the partial frame to the front (it is smaller than a frame,
            # and this happens at most once per buffer's worth of traffic).
            view = self._view
            view[:pending] = view[self._start : self._end]
        else:
            size = cap
            while size < pending + want:
                size *= 2
            buf = bytearray(size)
            buf[:pending] = self._view[self._start : self._end]
            self._view.release()
            self._buf = buf
            self._view = memoryview(buf)
        self._start = 0
        self._end = pending

    def feed(self, data):
        """Append ``data`` (a bytes-like object) to the buffer."""
        with memoryview(data) as view:
            if view.format != "B" or view.ndim != 1:
                view = view.cast("B")
            n = len(view)
            self._reserve(n)
            end = self._end
            self._view[end : end + n] = view
            self._end = end + n

    def next_frame(self):
        """Return the next complete frame body, or ``None`` if incomplete.

        :rtype: bytes or None
        :raises ProtocolError: for a negative or too large length prefix.
        """
        start = self._start
        avail = self._end - start
        if avail < 4:
            return None
        (length,) = _I.unpack_from(self._buf, start)
        if length < 0 or length > self.max_frame:
            raise ProtocolError(
                "invalid frame length %d (max %d)" % (length, self.max_frame)
            )
        if avail < 4 + length:
            return None
        stop = start + 4 + length
        frame = bytes(self._view[start + 4 : stop])
        if stop == self._end:
            self._start = self._end = 0
        else:
            self._start = stop
        return frame

    def _want(self):
        """How many free bytes a socket read should have room for."""
        avail = self._end - self._start
        if avail >= 4:
            (length,) = _I.unpack_from(self._buf, self._start)
            if 0 <= length <= self.max_frame and 4 + length - avail > _MIN_READ:
                return 4 + length - avail
        return _MIN_READ

    def _wait(self, fd, timeout_ms):
        """Poll ``fd`` for input; True when readable (or in error)."""
        if _HAS_POLL:
            poller = self._poller
            if poller is None or poller[0] != fd:
                p = select.poll()
                p.register(fd, _POLL_READ)
                self._poller = poller = (fd, p)
            events = poller[1].poll(timeout_ms)
            if events and events[0][1] & _POLLNVAL:
                raise ConnectionDropped("socket is closed")
            return bool(events)
        r, _, x = select.select(
            [fd], [], [fd], None if timeout_ms < 0 else timeout_ms / 1000.0
        )
        return bool(r or x)

    def block_reads(self, sock, timeout):
        """Let :meth:`read_from` wait inside one ``recv()``, in the compiled
        implementation.  This one reads through the socket object, which
        polls before each read whatever the descriptor's mode: there is
        nothing to gain, so it leaves ``sock`` alone and returns False.

        :rtype: bool
        :raises TypeError: when ``sock`` is not a :class:`socket.socket`.
        :raises ValueError: when ``timeout`` is not in (0, 1e6] seconds.
        """
        if not isinstance(sock, _CSocket):
            raise TypeError("sock must be a socket.socket, not %s"
                            % type(sock).__name__)
        if not (isinstance(timeout, (int, float)) and 0 < timeout <= 1e6):
            raise ValueError("timeout must be in (0, 1e6] seconds")
        return False

    def read_from(self, sock, timeout, spin_us=0):
        """Read whatever ``sock`` has into the buffer.

        Waits at most ``timeout`` seconds (``None``: forever) for at least
        one byte.  A plain socket may be blocking or not; its mode is left
        alone.

        An :class:`ssl.SSLSocket` must be non-blocking (its ``recv_into``
        raising :exc:`ssl.SSLWantReadError` when no whole record is in, as
        :class:`fastzk.drivers.tls.TlsSocket` does): it is read through its
        ``recv_into``, and polled only when its ``pending()`` says the TLS
        layer holds no decrypted bytes.

        :param spin_us: how long the compiled implementation busy-polls
                        a plain socket before blocking; this one cannot
                        release the GIL to spin, and ignores it.
        :returns: the number of bytes read, 0 on timeout.
        :rtype: int
        :raises kazoo.exceptions.ConnectionDropped: when the server closed
                the connection or the socket failed.
        :raises ssl.SSLError: the TLS layer failed (an alert from the
                server, for one).
        :raises TypeError: when ``sock`` is not a :class:`socket.socket`.
        """
        if not isinstance(sock, _CSocket):
            raise TypeError("sock must be a socket.socket, not %s"
                            % type(sock).__name__)
        self._reserve(self._want())
        self._busy = True
        try:
            if isinstance(sock, ssl.SSLSocket):
                return self._read_tls(sock, timeout)
            return self._read(sock, timeout)
        finally:
            self._busy = False

    def _read_tls(self, sock, timeout):
        if timeout is None or timeout >= 1e9:
            deadline = None
        else:
            deadline = time.monotonic() + (timeout if timeout > 0 else 0.0)
        events = _POLL_READ
        with self._view[self._end :] as view:
            while True:
                if not sock.pending():
                    fd = sock.fileno()
                    if fd < 0:
                        raise ConnectionDropped("socket is closed")
                    if not self._wait_tls(fd, events, deadline):
                        return 0
                try:
                    n = sock.recv_into(view)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError) as exc:
                    # Part of a record, or the TLS layer must write first.
                    events = _POLL_READ
                    if isinstance(exc, ssl.SSLWantWriteError):
                        events |= _POLL_WRITE
                    if deadline is not None and time.monotonic() >= deadline:
                        return 0
                    continue
                except ssl.SSLZeroReturnError:
                    raise ConnectionDropped("connection closed by server")
                if n == 0:
                    raise ConnectionDropped("connection closed by server")
                self._end += n
                return n

    @staticmethod
    def _wait_tls(fd, events, deadline):
        """Wait until ``fd`` has ``events`` (poll flags): True, or False at
        ``deadline`` (a :func:`time.monotonic` value, None: none)."""
        while True:
            if deadline is None:
                ms = -1
            else:
                ms = min(_POLL_MAX_MS, max(
                    0, math.ceil((deadline - time.monotonic()) * 1000.0)))
            if _HAS_POLL:
                poller = select.poll()
                poller.register(fd, events)
                ready = poller.poll(ms)
                if ready and ready[0][1] & _POLLNVAL:
                    raise ConnectionDropped("socket is closed")
            else:
                wait = None if ms < 0 else ms / 1000.0
                writers = [fd] if events & _POLL_WRITE else []
                ready = any(select.select([fd], writers, [fd], wait))
            if ready:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def _read(self, sock, timeout):
        if timeout is None or timeout >= 1e9:
            deadline = None
        else:
            deadline = time.monotonic() + (timeout if timeout > 0 else 0.0)
        try:
            fd = sock.fileno()
        except OSError as exc:
            raise ConnectionDropped("socket error: %s" % (exc,)) from exc
        if fd < 0:
            raise ConnectionDropped("socket is closed")
        with self._view[self._end :] as view:
            while True:
                if deadline is None:
                    ms = -1
                else:
                    ms = min(
                        _POLL_MAX_MS,
                        max(0, math.ceil((deadline - time.monotonic()) * 1000.0)),
                    )
                if not self._wait(fd, ms):
                    if deadline is None or time.monotonic() < deadline:
                        continue
                    return 0
                try:
                    n = sock.recv_into(view)
                except (BlockingIOError, InterruptedError, socket.timeout):
                    if deadline is not None and time.monotonic() >= deadline:
                        return 0
                    continue
                except (OSError, ValueError) as exc:
                    raise ConnectionDropped("socket error: %s" % (exc,)) from exc
                if n == 0:
                    raise ConnectionDropped("connection closed by server")
                self._end += n
                return n
