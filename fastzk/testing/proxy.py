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

The frames and their field readers are in :mod:`fastzk.testing.proxyframes`,
the hooks in :mod:`fastzk.testing.proxyhooks`, one connection's pump in
:mod:`fastzk.testing.proxyconn`; every name stays importable from here.
"""

import errno
import socket
import threading
import time
from types import TracebackType
from typing import List, Optional, Set, Tuple, Type, TypeVar

try:
    from .proxyconn import (
        CONNECT_TIMEOUT,
        FIN_LINGER,
        MAX_FRAME,
        MAX_HELD,
        RECV_SIZE,
        _Connection,
        _reset,
        _wait,
    )
    from .proxyframes import (
        Predicate,
        encode_frame,
        reply_err,
        reply_xid,
        reply_zxid,
        request_opcode,
        request_xid,
    )
    from .proxyhooks import Hook, _FrameHooks
    from .zkserver import free_port
except ImportError:  # loaded as a plain module, next to zkserver.py
    from proxyconn import (  # type: ignore[no-redef,import-not-found]
        CONNECT_TIMEOUT,
        FIN_LINGER,
        MAX_FRAME,
        MAX_HELD,
        RECV_SIZE,
        _Connection,
        _reset,
        _wait,
    )
    from proxyframes import (  # type: ignore[no-redef,import-not-found]
        Predicate,
        encode_frame,
        reply_err,
        reply_xid,
        reply_zxid,
        request_opcode,
        request_xid,
    )
    from proxyhooks import (  # type: ignore[no-redef,import-not-found]
        Hook,
        _FrameHooks,
    )
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


_Proxy = TypeVar("_Proxy", bound="TcpProxy")


class TcpProxy(_FrameHooks):
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
