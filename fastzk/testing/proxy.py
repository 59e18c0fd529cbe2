"""A fault-injecting TCP proxy for ZooKeeper client tests.

Clients connect to :attr:`TcpProxy.address` instead of the server.  The proxy
can cut every connection, freeze traffic (a partition that keeps the TCP
connections open), refuse new connections, add latency, and cut a
connection exactly at a given ZooKeeper request or reply.  It can also play
a hostile server: replace a reply by arbitrary bytes
(:meth:`TcpProxy.corrupt_reply`) or slip bytes into the reply stream
(:meth:`TcpProxy.inject_to_client`), optionally closing the connection
right after them (e.g. in the middle of a frame).

ZooKeeper framing: every frame is a 4-byte big-endian length then the body.
The first client frame of a connection is the ConnectRequest and the first
server frame the ConnectResponse; after that a request body starts with
``xid:int, type:int`` and a reply body with ``xid:int, zxid:long, err:int``.
A stream that does not look like frames (a four-letter word such as
``srvr``) is passed through unparsed.
"""

import collections
import errno
import select
import socket
import struct
import sys
import threading
import time
from types import TracebackType
from typing import (
    Callable,
    Deque,
    Dict,
    Iterable,
    List,
    Optional,
    Set,
    Tuple,
    Type,
    TypeVar,
    Union,
)

try:
    from .zkserver import free_port
except ImportError:  # loaded as a plain module, next to zkserver.py
    from zkserver import free_port  # type: ignore[no-redef,import-not-found]

__all__ = [
    "Hook",
    "TcpProxy",
    "encode_frame",
    "reply_err",
    "reply_xid",
    "reply_zxid",
    "request_opcode",
    "request_xid",
]

# Larger length prefixes are not ZooKeeper frames (e.g. "srvr" = 0x73727672).
MAX_FRAME = 64 * 1024 * 1024
# While frozen the proxy keeps reading and holds the bytes, up to this much
# per direction; beyond it TCP flow control pushes back on the sender.
MAX_HELD = 32 * 1024 * 1024
RECV_SIZE = 256 * 1024
CONNECT_TIMEOUT = 5.0
# After a graceful close ("close" mode) the proxy waits this long for the
# client to close its end before resetting the connection.
FIN_LINGER = 10.0

_INT = struct.Struct(">i")

# A frame body, or any buffer holding one.
_Body = Union[bytes, bytearray, memoryview]
#: A predicate on a frame body.
Predicate = Callable[[bytes], object]
_Proxy = TypeVar("_Proxy", bound="TcpProxy")


def request_xid(body: _Body) -> int:
    """xid of a request frame body (offset 0)."""
    xid: int = _INT.unpack_from(body, 0)[0]
    return xid


def request_opcode(body: _Body) -> Optional[int]:
    """Opcode of a request frame body (the int at offset 4), e.g. 2 for
    delete, 14 for multi, 11 for ping, -11 for closeSession."""
    if len(body) < 8:
        return None
    opcode: int = _INT.unpack_from(body, 4)[0]
    return opcode


def reply_xid(body: _Body) -> int:
    """xid of a reply frame body (offset 0): -1 watch event, -2 ping."""
    xid: int = _INT.unpack_from(body, 0)[0]
    return xid


def reply_zxid(body: _Body) -> int:
    """zxid of a reply frame body (the long at offset 4)."""
    zxid: int = struct.unpack_from(">q", body, 4)[0]
    return zxid


def reply_err(body: _Body) -> int:
    """Error code of a reply frame body (the int at offset 12)."""
    err: int = _INT.unpack_from(body, 12)[0]
    return err


def encode_frame(body: _Body) -> bytes:
    """``body`` with its 4-byte big-endian length prefix: a whole frame."""
    body = bytes(body)
    return _INT.pack(len(body)) + body


class Hook:
    """A one-shot frame hook returned by the ``cut_on_*`` methods.

    ``fired`` is a threading.Event set once the connection the hook cut is
    closed; ``frame`` is the body that triggered it; ``error`` holds an
    exception raised by the predicate (which then counts as no match).
    Predicates run on the proxy's threads and must not call the proxy.
    """

    def __init__(self, proxy: "TcpProxy", direction: str,
                 predicate: Predicate, include_handshake: bool) -> None:
        self._proxy = proxy
        self.direction = direction  # "request" or "reply"
        self.predicate = predicate
        self.include_handshake = include_handshake
        self.fired = threading.Event()
        self.frame: Optional[bytes] = None
        self.error: Optional[Exception] = None
        # For cut_on_reply_to: (connection, xid) pairs whose reply to drop.
        self.pending: Optional[Set[Tuple["_Connection", int]]] = None
        # For corrupt_reply: body -> bytes sent instead of the frame, and
        # what to do with the connection afterwards (None, "close", "reset").
        self.mutate: Optional[Callable[[bytes], bytes]] = None
        self.then: Optional[str] = None

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until the hook fired; return True if it did."""
        return self.fired.wait(timeout)

    def cancel(self) -> None:
        """Remove the hook if it has not fired yet."""
        self._proxy._remove_hook(self)

    def _matches(self, body: bytes) -> bool:
        try:
            return bool(self.predicate(body))
        except Exception as exc:  # a broken predicate must not kill the pump
            self.error = exc
            print("proxy hook predicate raised %r" % (exc,), file=sys.stderr)
            return False


class _Direction:
    """Bytes flowing one way through a connection."""

    def __init__(self, name: str) -> None:
        self.name = name  # "request" (client->server) or "reply"
        self.inbuf = bytearray()  # partial frame not yet complete
        # (due time, bytes) chunks waiting to be sent.
        self.queue: Deque[Tuple[float, bytes]] = collections.deque()
        self.queued = 0
        self.outbuf = bytearray()  # being written to the destination
        self.frames = 0
        self.raw = False
        self.eof = False
        self.shut = False  # SHUT_WR sent to the destination

    def idle(self) -> bool:
        return not self.queue and not self.outbuf


class _Connection:
    def __init__(self, proxy: "TcpProxy", client: socket.socket,
                 target: Tuple[str, int]) -> None:
        self.proxy = proxy
        self.client = client
        self.server: Optional[socket.socket] = None
        self.target = target
        self.up = _Direction("request")
        self.down = _Direction("reply")
        self.abort_requested = False
        self.cut_pending = False  # a hook fired: flush what came before, cut
        # How a pending cut ends the connection: "reset" (RST) or "close"
        # (FIN to the client after the flush, then wait for it to close).
        self.cut_mode = "reset"
        self.fin_done = False
        # (bytes, then) from inject_to_client, taken by the pump thread.
        self.injections: Deque[Tuple[bytes, Optional[str]]] = (
            collections.deque())
        self.fired_hooks: List[Hook] = []
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.thread = threading.Thread(
            target=self._run, name="TcpProxy-conn", daemon=True
        )

    def wake(self) -> None:
        try:
            self.wake_w.send(b"x")
        except OSError:
            pass

    def abort(self) -> None:
        self.abort_requested = True
        self.wake()

    # -- the pump ----------------------------------------------------------

    def _run(self) -> None:
        try:
            self._pump()
            if (self.cut_pending and self.cut_mode == "close"
                    and not self.abort_requested):
                self._fin_and_drain()
        except Exception as exc:
            if not isinstance(exc, OSError):
                print("proxy connection failed: %r" % (exc,), file=sys.stderr)
        finally:
            self._close(rst=not self.fin_done)
            self.proxy._connection_done(self)
            for hook in self.fired_hooks:
                hook.fired.set()

    def _pump(self) -> None:
        client = self.client
        client.setblocking(False)
        while True:
            if self.abort_requested:
                return
            if self.injections:
                self._take_injections()
            frozen = self.proxy._frozen
            now = time.monotonic()
            if self.server is None and not frozen:
                if self.up.eof:
                    return  # the client gave up before it was connected
                if not self._connect():
                    return
            server = self.server
            rlist = [self.wake_r]
            wlist: List[socket.socket] = []
            if not self.cut_pending:
                if not self.up.eof and self.up.queued < MAX_HELD:
                    rlist.append(client)
                if (server is not None and not self.down.eof
                        and self.down.queued < MAX_HELD):
                    rlist.append(server)
            timeout: Optional[float] = None
            if not frozen:
                for d, dst in ((self.up, server), (self.down, client)):
                    if dst is None:
                        continue
                    if d.outbuf:
                        wlist.append(dst)
                    elif d.queue:
                        wait = d.queue[0][0] - now
                        if wait <= 0:
                            wlist.append(dst)
                        elif timeout is None or wait < timeout:
                            timeout = wait
                if self._finished():
                    return
            r, w = _wait(rlist, wlist, timeout)
            if self.wake_r in r:
                try:
                    while self.wake_r.recv(4096):
                        pass
                except (BlockingIOError, InterruptedError):
                    pass
            # abort() may have set it from another thread during _wait.
            if self.abort_requested:
                return  # type: ignore[unreachable]
            if client in r and not self._read(client, self.up):
                return
            if server is not None and server in r:
                if not self._read(server, self.down):
                    return
            if self.proxy._frozen:
                continue
            for d, dst in ((self.up, server), (self.down, client)):
                if dst is not None and dst in w:
                    if not self._write(d, dst):
                        return

    def _finished(self) -> bool:
        """Flush half-closes; True when the connection is done."""
        if self.cut_pending:
            return self.up.idle() and self.down.idle()
        for d, dst in ((self.up, self.server), (self.down, self.client)):
            if d.eof and not d.shut and d.idle():
                if d.inbuf:  # an incomplete last frame: pass it on as is
                    d.queue.append((0, bytes(d.inbuf)))
                    d.queued += len(d.inbuf)
                    d.inbuf.clear()
                    continue
                d.shut = True
                # Connected: this runs only once _pump connected it.
                assert dst is not None
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    return True
        return self.up.shut and self.down.shut

    def _connect(self) -> bool:
        host, port = self.target
        try:
            server = socket.create_connection((host, port),
                                              timeout=CONNECT_TIMEOUT)
        except OSError:
            return False
        server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server.setblocking(False)
        self.server = server
        return True

    def _read(self, sock: socket.socket, d: _Direction) -> bool:
        try:
            data = sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False  # reset by the peer: reset the other side too
        if not data:
            d.eof = True
            return True
        self._feed(d, data)
        return True

    def _write(self, d: _Direction, dst: socket.socket) -> bool:
        now = time.monotonic()
        while d.queue and d.queue[0][0] <= now and len(d.outbuf) < RECV_SIZE:
            _, chunk = d.queue.popleft()
            d.queued -= len(chunk)
            d.outbuf += chunk
        if not d.outbuf:
            return True
        try:
            sent = dst.send(d.outbuf)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        del d.outbuf[:sent]
        self.proxy._count_bytes(d.name, sent)
        return True

    def _enqueue(self, d: _Direction, data: _Body) -> None:
        if not data:
            return
        d.queue.append((time.monotonic() + self.proxy._delay, bytes(data)))
        d.queued += len(data)

    def _feed(self, d: _Direction, data: bytes) -> None:
        if d.raw or self.cut_pending:
            if not self.cut_pending:
                self._enqueue(d, data)
            return
        d.inbuf += data
        forward = bytearray()
        while len(d.inbuf) >= 4:
            (length,) = _INT.unpack_from(d.inbuf, 0)
            if length < 0 or length > MAX_FRAME:
                d.raw = True
                forward += d.inbuf
                d.inbuf.clear()
                break
            if len(d.inbuf) < 4 + length:
                break
            body = bytes(d.inbuf[4:4 + length])
            handshake = d.frames == 0
            d.frames += 1
            if self.proxy._check_hooks(self, d.name, body, handshake):
                self._enqueue(d, forward)
                d.inbuf.clear()
                self.cut_pending = True
                return
            if d.name == "reply" and self.proxy._corrupters:
                replacement = self.proxy._check_corrupt(self, body, handshake)
                if replacement is not None:
                    data, then = replacement
                    forward += data
                    del d.inbuf[:4 + length]
                    if then:
                        self._enqueue(d, forward)
                        d.inbuf.clear()
                        self.cut_pending = True
                        self.cut_mode = then
                        return
                    continue
            forward += d.inbuf[:4 + length]
            del d.inbuf[:4 + length]
        self._enqueue(d, forward)

    def _take_injections(self) -> None:
        """Queue the bytes of inject_to_client (pump thread only).  The
        reply queue holds whole frames only, so they land between frames
        (unless the stream already went raw)."""
        while self.injections:
            data, then = self.injections.popleft()
            if self.cut_pending:
                continue
            self._enqueue(self.down, data)
            if then:
                self.cut_pending = True
                self.cut_mode = then

    def _fin_and_drain(self) -> None:
        """Graceful close towards the client: FIN after what was flushed,
        then discard what the client still sends until it closes (closing
        a socket with unread input would send an RST instead)."""
        if self.server is not None:
            try:
                self.server.close()
            except OSError:
                pass
            self.server = None
        client = self.client
        try:
            client.shutdown(socket.SHUT_WR)
        except OSError:
            return
        deadline = time.monotonic() + FIN_LINGER
        while not self.abort_requested:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            r, _ = _wait([client, self.wake_r], [], left)
            if self.wake_r in r:
                try:
                    while self.wake_r.recv(4096):
                        pass
                except (BlockingIOError, InterruptedError):
                    pass
            if client in r:
                try:
                    data = client.recv(RECV_SIZE)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    return
                if not data:
                    self.fin_done = True
                    return

    def _close(self, rst: bool) -> None:
        for sock in (self.client, self.server):
            if sock is None:
                continue
            if rst:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                except OSError:
                    pass
            try:
                sock.close()
            except OSError:
                pass
        self.wake_r.close()
        self.wake_w.close()


class TcpProxy:
    """Threaded TCP proxy on ``127.0.0.1:<free port>`` towards a target.

    Each connection is pumped by its own thread; :meth:`close` cuts them all
    and joins every thread.  Fault injection:

    - :meth:`cut` resets every current connection (RST), keeps accepting;
    - :meth:`freeze` / :meth:`unfreeze` hold all bytes both ways (and new
      connections, which reach the target only after :meth:`unfreeze`);
    - :meth:`reject` makes new connections be reset at once;
    - :meth:`delay` delays every forwarded chunk by a number of seconds;
    - :meth:`cut_on_request`, :meth:`cut_on_reply`, :meth:`cut_on_reply_to`
      cut a connection at a chosen ZooKeeper frame (one-shot hooks);
    - :meth:`corrupt_reply` replaces a chosen reply by arbitrary bytes and
      :meth:`inject_to_client` adds bytes to the reply stream (a hostile
      or broken server), optionally closing the connection after them.
    """

    def __init__(self, target_host: str = "127.0.0.1", target_port: int = 2181,
                 port: Optional[int] = None) -> None:
        self.host = "127.0.0.1"
        self.port = port if port else free_port()
        self._target = (target_host, target_port)
        self._lock = threading.RLock()
        self._connections: Set[_Connection] = set()
        self._frozen = False
        self._reject = False
        self._delay = 0.0
        self._hooks: List[Hook] = []
        self._corrupters: List[Hook] = []
        self._listener: Optional[socket.socket] = None
        self._accept_thread: Optional[threading.Thread] = None
        self._closed = False
        self._wake_r: Optional[socket.socket] = None
        self._wake_w: Optional[socket.socket] = None
        #: Number of client connections accepted (including rejected ones).
        self.connections_accepted = 0
        #: Number of connections cut by cut() or by a frame hook.
        self.connections_cut = 0
        #: Bytes delivered client->server and server->client.
        self.bytes_up = 0
        self.bytes_down = 0
        #: Number of server frames replaced by corrupt_reply hooks.
        self.frames_corrupted = 0
        #: Number of inject_to_client deliveries (one per connection).
        self.injections = 0

    # -- life cycle --------------------------------------------------------

    @property
    def address(self) -> str:
        """``"127.0.0.1:PORT"`` to give to clients."""
        return "%s:%d" % (self.host, self.port)

    @property
    def target(self) -> Tuple[str, int]:
        """The ``(host, port)`` new connections are forwarded to."""
        return self._target

    def start(self: _Proxy) -> _Proxy:
        """Listen and start accepting connections."""
        if self._listener is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(128)
        listener.setblocking(False)
        self._listener = listener
        self._closed = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="TcpProxy-accept", daemon=True
        )
        self._accept_thread.start()
        return self

    def close(self) -> None:
        """Stop listening, reset every connection, join every thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            listener = self._listener
            thread = self._accept_thread
            if self._wake_w is not None:
                self._wake_w.send(b"x")
        if thread is not None:
            thread.join(10)
        if listener is not None:
            listener.close()
        self._listener = None
        self._accept_thread = None
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._wake_r = self._wake_w = None
        self._abort_all(count=False)
        if thread is not None and thread.is_alive():
            raise RuntimeError("proxy accept thread did not stop")

    def __enter__(self: _Proxy) -> _Proxy:
        return self.start()

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException],
                 traceback: Optional[TracebackType]) -> None:
        self.close()

    def set_target(self, host: str, port: int) -> None:
        """Forward connections made from now on to ``host:port``."""
        self._target = (host, port)

    @property
    def active_connections(self) -> int:
        """Number of connections currently open through the proxy."""
        with self._lock:
            return len(self._connections)

    def _accept_loop(self) -> None:
        listener = self._listener
        wake_r = self._wake_r
        # start() sets both before it starts this thread.
        assert listener is not None and wake_r is not None
        while True:
            r, _ = _wait([listener, wake_r], [], None)
            if wake_r in r:
                return
            try:
                client, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    time.sleep(0.05)
                    continue
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections_accepted += 1
                if self._reject or self._closed:
                    _reset(client)
                    continue
                conn = _Connection(self, client, self._target)
                self._connections.add(conn)
                conn.thread.start()

    def _connection_done(self, conn: _Connection) -> None:
        with self._lock:
            self._connections.discard(conn)

    def _count_bytes(self, direction: str, n: int) -> None:
        with self._lock:
            if direction == "request":
                self.bytes_up += n
            else:
                self.bytes_down += n

    # -- fault injection ---------------------------------------------------

    def _abort_all(self, count: bool = True, timeout: float = 10.0) -> int:
        with self._lock:
            conns = list(self._connections)
        current = threading.current_thread()
        for conn in conns:
            conn.abort()
        for conn in conns:
            if conn.thread is not current:
                conn.thread.join(timeout)
                if conn.thread.is_alive():
                    raise RuntimeError("proxy connection thread did not stop")
        if count:
            with self._lock:
                self.connections_cut += len(conns)
        return len(conns)

    def cut(self) -> int:
        """Reset (RST) every current connection; new ones are accepted.

        Returns when the connections are closed; returns their number.
        """
        return self._abort_all()

    def freeze(self) -> None:
        """Stop forwarding in both directions.  Connections stay open and
        the bytes are held; new connections are accepted but not connected
        to the target until :meth:`unfreeze`."""
        self._frozen = True
        self._wake_all()

    def unfreeze(self) -> None:
        """Deliver the held bytes and resume forwarding."""
        self._frozen = False
        self._wake_all()

    @property
    def frozen(self) -> bool:
        """True between :meth:`freeze` and :meth:`unfreeze`."""
        return self._frozen

    def reject(self, enabled: bool = True) -> None:
        """While enabled, reset new connections as soon as they are accepted
        (existing connections are not touched)."""
        self._reject = bool(enabled)

    def delay(self, seconds: float) -> None:
        """Delay each forwarded chunk by ``seconds`` (0 to stop)."""
        self._delay = max(0.0, float(seconds))

    def _wake_all(self) -> None:
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            conn.wake()

    # -- frame hooks -------------------------------------------------------

    def cut_on_request(self, predicate: Predicate,
                       include_handshake: bool = False) -> Hook:
        """Cut the connection at the first client frame whose body satisfies
        ``predicate(body)``; that frame is not forwarded (the server never
        sees it), frames before it are.  One-shot.  The ConnectRequest is
        offered to the predicate only if ``include_handshake``.
        Returns a :class:`Hook`."""
        return self._add_hook(Hook(self, "request", predicate,
                                   include_handshake))

    def cut_on_reply(self, predicate: Predicate,
                     include_handshake: bool = False) -> Hook:
        """Cut the connection at the first server frame whose body satisfies
        ``predicate(body)``; that frame is dropped (the request it answers
        did run on the server).  One-shot.  The ConnectResponse is offered
        to the predicate only if ``include_handshake``.  Returns a Hook."""
        return self._add_hook(Hook(self, "reply", predicate,
                                   include_handshake))

    def cut_on_reply_to(self, request_predicate: Predicate) -> Hook:
        """Let the first request satisfying ``request_predicate(body)``
        through, then drop its reply (matched by xid on the same
        connection) and cut.  One-shot.  Returns a Hook."""
        hook = Hook(self, "reply_to", request_predicate, False)
        hook.pending = set()
        return self._add_hook(hook)

    def corrupt_reply(self, predicate: Predicate,
                      mutate: Callable[[bytes], bytes],
                      include_handshake: bool = False,
                      then: Optional[str] = None) -> Hook:
        """Replace the first server frame whose body satisfies
        ``predicate(body)`` by the bytes ``mutate(body)`` returns.

        The bytes go to the client verbatim in place of the whole frame,
        length prefix included: return ``encode_frame(new_body)`` for a
        well-framed reply, or anything else (a wrong or impossible length
        prefix, half a frame, nothing) to break the framing.  Frames after
        it are forwarded as usual unless ``then`` is ``"close"`` (after the
        bytes the client gets a FIN: the connection ends there, e.g. in the
        middle of a frame) or ``"reset"`` (an RST after the bytes).
        One-shot.  The ConnectResponse is offered to the predicate only if
        ``include_handshake``.  Both functions run on the proxy's threads
        and must not call the proxy; an exception in either counts as no
        match (see :attr:`Hook.error`).

        Returns a :class:`Hook`: ``frame`` is the original body, ``fired``
        is set once the replacement is queued for the client (with
        ``then``, once the connection is closed).
        """
        if then not in (None, "close", "reset"):
            raise ValueError("then must be None, 'close' or 'reset', not %r"
                             % (then,))
        hook = Hook(self, "corrupt", predicate, include_handshake)
        hook.mutate = mutate
        hook.then = then
        with self._lock:
            self._corrupters = self._corrupters + [hook]
        return hook

    def inject_to_client(self, data: _Body,
                         then: Optional[str] = None) -> int:
        """Send ``data`` to the client of every current connection, as if
        the server had sent it, at the next frame boundary of the reply
        stream.  ``then``: None (keep forwarding), ``"close"`` (FIN after
        the bytes) or ``"reset"`` (RST after the bytes).  Returns the
        number of connections it was given to."""
        if then not in (None, "close", "reset"):
            raise ValueError("then must be None, 'close' or 'reset', not %r"
                             % (then,))
        data = bytes(data)
        with self._lock:
            conns = list(self._connections)
            self.injections += len(conns)
        for conn in conns:
            conn.injections.append((data, then))
            conn.wake()
        return len(conns)

    def clear_hooks(self) -> None:
        """Remove every hook that has not fired."""
        with self._lock:
            self._hooks = []
            self._corrupters = []

    def _add_hook(self, hook: Hook) -> Hook:
        with self._lock:
            self._hooks = self._hooks + [hook]
        return hook

    def _remove_hook(self, hook: Hook) -> None:
        with self._lock:
            self._hooks = [h for h in self._hooks if h is not hook]
            self._corrupters = [h for h in self._corrupters if h is not hook]

    def _check_corrupt(self, conn: _Connection, body: bytes, handshake: bool
                       ) -> Optional[Tuple[bytes, Optional[str]]]:
        """Called by the pump for each complete server frame; returns
        ``(bytes, then)`` to send instead of it, or None."""
        with self._lock:
            for hook in self._corrupters:
                if handshake and not hook.include_handshake:
                    continue
                mutate = hook.mutate
                if mutate is None or not hook._matches(body):
                    continue  # (corrupt_reply sets mutate)
                try:
                    data = bytes(mutate(body))
                except Exception as exc:
                    hook.error = exc
                    print("proxy corrupt_reply mutate raised %r" % (exc,),
                          file=sys.stderr)
                    continue
                self._corrupters = [h for h in self._corrupters
                                    if h is not hook]
                hook.frame = body
                self.frames_corrupted += 1
                if hook.then:
                    self.connections_cut += 1
                    conn.fired_hooks.append(hook)
                else:
                    hook.fired.set()
                return data, hook.then
        return None

    def _check_hooks(self, conn: _Connection, direction: str, body: bytes,
                     handshake: bool) -> bool:
        """Called by the pump for each complete frame; True means cut."""
        if not self._hooks:
            return False
        with self._lock:
            for hook in self._hooks:
                if hook.direction == "reply_to":
                    pending = hook.pending
                    if handshake or pending is None:
                        continue  # (cut_on_reply_to sets pending)
                    if direction == "request":
                        if not pending and len(body) >= 8 \
                                and hook._matches(body):
                            pending.add((conn, request_xid(body)))
                        continue
                    if len(body) < 4 or \
                            (conn, reply_xid(body)) not in pending:
                        continue
                elif hook.direction != direction:
                    continue
                elif handshake and not hook.include_handshake:
                    continue
                elif not hook._matches(body):
                    continue
                self._hooks = [h for h in self._hooks if h is not hook]
                hook.frame = body
                self.connections_cut += 1
                conn.fired_hooks.append(hook)
                return True
        return False


def _wait(rlist: Iterable[socket.socket], wlist: Iterable[socket.socket],
          timeout: Optional[float]
          ) -> Tuple[Set[socket.socket], Set[socket.socket]]:
    """select() without its FD_SETSIZE limit (a test process may hold
    more than 1024 descriptors)."""
    poller = select.poll()
    masks: Dict[socket.socket, int] = {}
    for sock in rlist:
        masks[sock] = masks.get(sock, 0) | select.POLLIN
    for sock in wlist:
        masks[sock] = masks.get(sock, 0) | select.POLLOUT
    by_fd: Dict[int, socket.socket] = {}
    for sock, mask in masks.items():
        by_fd[sock.fileno()] = sock
        poller.register(sock, mask)
    ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
    readable: Set[socket.socket] = set()
    writable: Set[socket.socket] = set()
    for fd, event in poller.poll(ms):
        sock = by_fd[fd]
        # Errors and hang-ups count as readable: recv() then reports them.
        if event & (select.POLLIN | select.POLLERR | select.POLLHUP
                    | select.POLLNVAL):
            readable.add(sock)
        if event & (select.POLLOUT | select.POLLERR):
            writable.add(sock)
    return readable, writable


def _reset(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()
