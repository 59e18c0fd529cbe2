"""The asyncio client-side limit: the ZooKeeper wire format spoken by a
bare :class:`asyncio.Protocol`, with no client logic (no session
machine, no watches, no retries, no decoding beyond the reply header and
the last reply's names), so that what it measures is the event loop, the
server, the kernel and the loopback; what a client adds on the same loop
shows as the difference.  The asyncio counterpart of
``benchmarks/c/raw_rounds.c``.

:func:`connect` completes the handshake (a ConnectRequest, as
``raw_rounds.c``'s: protocol version 0, last zxid seen 0, a 30 s
timeout, session id 0, no password, not read-only), then
:meth:`BareSession.children` makes sequential getChildren round trips
and :meth:`BareSession.gathered` writes many at once and waits for all
their replies; :meth:`BareSession.watch_recursive` leaves a persistent
recursive watch and counts its notifications.  Frames are encoded with fastzk's codec (the bytes on the
wire do not depend on who encodes them, and the codec is not client
logic).
"""

import asyncio
import struct

from fastzk._core import codec

#: The session timeout asked for, as raw_rounds.c's.
SESSION_TIMEOUT_MS = 30000

_LEN = struct.Struct(">i")
_XID = struct.Struct(">i")
_ERR = struct.Struct(">i")

#: The xid of a ping reply (ZooKeeper's reserved xid -2).
_PING_XID = -2

#: The xid of a watch notification (ZooKeeper's reserved xid -1).
_EVENT_XID = -1

#: AddWatchMode PERSISTENT_RECURSIVE (ZooKeeper 3.6+).
_RECURSIVE = 1


class BareSession(asyncio.Protocol):
    """One session over one socket, replies counted in the order sent (a
    ZooKeeper guarantee: a session's replies come back in request order).
    """

    def __init__(self):
        self.transport = None
        self.session_id = None
        self.timeout_ms = None
        self._buffer = bytearray()
        self._handshake = None
        self._waiter = None
        self._expected = 0
        self._received = 0
        self._next_xid = 1
        self._last = None
        self._error = None
        self.lost = None
        #: Called with nothing for each watch notification received.
        self.on_event = None

    # -- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        self._handshake = asyncio.get_running_loop().create_future()
        transport.write(codec.encode_connect(0, SESSION_TIMEOUT_MS, 0,
                                             b"\x00" * 16, False))

    def data_received(self, data):
        buf = self._buffer
        buf += data
        pos = 0
        end = len(buf)
        while end - pos >= 4:
            (size,) = _LEN.unpack_from(buf, pos)
            if end - pos - 4 < size:
                break
            body = bytes(buf[pos + 4:pos + 4 + size])
            pos += 4 + size
            self._frame(body)
        if pos:
            del buf[:pos]

    def connection_lost(self, exc):
        self.lost = exc or ConnectionError("the server closed the session")
        for future in (self._handshake, self._waiter):
            if future is not None and not future.done():
                future.set_exception(self.lost)

    # -- frames -----------------------------------------------------------

    def _frame(self, body):
        if self.session_id is None:
            _, timeout, session_id, _, _ = codec.decode_connect_response(body)
            self.session_id, self.timeout_ms = session_id, timeout
            self._handshake.set_result(None)
            return
        (xid,) = _XID.unpack_from(body, 0)
        if xid == _PING_XID:
            return
        if xid == _EVENT_XID:
            if self.on_event is not None:
                self.on_event()
            return
        (err,) = _ERR.unpack_from(body, 12)
        if err and self._error is None:
            self._error = err
        self._received += 1
        if self._received == self._expected:
            self._last = body
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def _request(self, path):
        xid = self._next_xid
        self._next_xid = xid + 1
        return codec.encode_path_watch(xid, codec.GET_CHILDREN, path, False)

    async def _replies(self, count):
        self._expected = self._received + count
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter
        self._waiter = None
        if self._error is not None:
            err, self._error = self._error, None
            raise RuntimeError("the server answered error %d" % err)

    # -- rounds -----------------------------------------------------------

    async def children(self, path, n):
        """``n`` sequential getChildren round trips, each awaited."""
        write = self.transport.write
        for _ in range(n):
            write(self._request(path))
            await self._replies(1)

    async def gathered(self, path, n):
        """``n`` getChildren requests written at once, then all their
        replies awaited."""
        self.transport.write(b"".join(self._request(path) for _ in range(n)))
        await self._replies(n)

    async def watch_recursive(self, path):
        """Leave a persistent recursive watch on ``path`` (addWatch);
        each notification then calls :attr:`on_event`, undecoded."""
        xid = self._next_xid
        self._next_xid = xid + 1
        self.transport.write(codec.encode_add_watch(xid, path, _RECURSIVE))
        await self._replies(1)

    def last_children(self):
        """The names in the last reply waited for (a check that the
        requests read what they should)."""
        return codec.decode_children(self._last, 16)

    def close(self):
        """Send closeSession and close the socket (without waiting for
        the reply: the server ends the session either way)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(codec.encode_close(self._next_xid))
            self.transport.close()


def first_host(hosts):
    """``(host, port)`` of the first server in ``hosts``."""
    item = hosts.split("/", 1)[0].split(",")[0].strip()
    host, _, port = item.rpartition(":")
    return host.strip("[]"), int(port)


async def connect(hosts, timeout=15.0):
    """A :class:`BareSession` to the first server of ``hosts``, its
    handshake done.  The chroot of ``hosts`` is ignored."""
    host, port = first_host(hosts)
    loop = asyncio.get_running_loop()
    _, session = await asyncio.wait_for(
        loop.create_connection(BareSession, host, port), timeout)
    await asyncio.wait_for(session._handshake, timeout)
    return session
