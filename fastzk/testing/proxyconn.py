"""One connection through the fault-injecting proxy: the thread that
pumps bytes both ways, splits them into ZooKeeper frames, runs the proxy's
frame hooks on each, and applies the faults (hold, delay, cut, inject).
"""

import collections
import select
import socket
import struct
import sys
import threading
import time
from typing import (
    TYPE_CHECKING,
    Deque,
    Dict,
    Iterable,
    List,
    Optional,
    Set,
    Tuple,
)

try:
    from .proxyframes import _INT, _Body
except ImportError:  # loaded as a plain module, next to proxyframes.py
    from proxyframes import (  # type: ignore[no-redef,import-not-found]
        _INT,
        _Body,
    )

if TYPE_CHECKING:
    from .proxy import TcpProxy
    from .proxyhooks import Hook

__all__: List[str] = []

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
