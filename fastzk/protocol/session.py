"""The ZooKeeper session as a state machine with no I/O.

:class:`SessionMachine` knows the protocol of one session and nothing of
sockets, threads or clocks: a driver feeds it the frames it reads, sends
the bytes it is handed, and tells it the time.  It owns

- the handshake (its base class,
  :class:`~fastzk.protocol.opening.SessionOpening`): the ConnectRequest to
  send, the interpretation of the ConnectResponse, the SASL exchange, auth
  replay and the SetWatches/SetWatches2 batches that restore the watches
  on a new connection;
- xid assignment and the FIFO of requests in flight: ZooKeeper answers a
  session's requests in order, so each reply must match the head of the
  FIFO (anything else is a :class:`~fastzk.errors.ProtocolError`);
- decoding replies into results or kazoo exceptions, which complete each
  request's result object;
- the watch registry and the routing of watch events;
- the deadlines: when a ping is due, when the server has been silent for
  the read timeout, and when a disconnected client must consider its
  session lost (a whole session timeout after the server was last heard);
- the session's states (:attr:`SessionMachine.states`, see
  :mod:`fastzk.protocol.states`), which the drivers move as connections
  open and end.

A reply or event that breaks the connection raises
:class:`ConnectionBroken`, carrying the error the requests in flight fail
with; the driver drops the connection and reconnects.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, Callable, Deque, List, Optional, Protocol

from kazoo.exceptions import (
    EXCEPTIONS,
    AuthFailedError,
    ConnectionDropped,
    ConnectionLoss,
    NoNodeError,
    SessionClosedRequireSaslError,
)

from fastzk._core import codec
from fastzk.protocol.childview import ChildrenView
from fastzk.errors import ProtocolError
from fastzk.protocol import constants as zk
from fastzk.protocol.opening import (
    MAX_XID,
    AbandonedSession,
    Identity,
    SessionOpening,
)
from fastzk.protocol.states import SessionStates
from fastzk.protocol.request import (
    R_CHILDREN,
    R_CHILDREN_STAT,
    R_CLOSE,
    R_DATA_STAT,
    R_KAZOO,
    R_MULTI,
    R_STAT,
    R_STRING,
    R_STRING_STAT,
    R_VOID,
    Request,
)
from fastzk.protocol import watches as _watches

log = logging.getLogger("fastzk.engine")

__all__ = [
    "AbandonedSession",
    "ConnectionBroken",
    "Identity",
    "Request",
    "SessionClosed",
    "SessionMachine",
    "R_VOID", "R_STAT", "R_DATA_STAT", "R_CHILDREN", "R_CHILDREN_STAT",
    "R_STRING", "R_STRING_STAT", "R_MULTI", "R_KAZOO", "R_CLOSE",
]

_NONODE = NoNodeError.code
# The registry kind of the watch each read leaves (exists on a missing node
# leaves an exist watch, but DATA and EXIST are covered alike).
_ONE_SHOT_KIND = {
    zk.EXISTS: _watches.DATA,
    zk.GET_DATA: _watches.DATA,
    zk.GET_CHILDREN: _watches.CHILD,
    zk.GET_CHILDREN2: _watches.CHILD,
}
# Watch event types that end a ChildrenView entry.
_ENDS_CHILDREN_VIEW = (zk.EVENT_NODE_CHILDREN_CHANGED, zk.EVENT_NODE_DELETED)
# Events that carry nothing for a watcher here: state notifications and
# the *WatchRemoved types.
_NOTHING_TO_FIRE = frozenset((zk.EVENT_NONE, zk.EVENT_DATA_WATCH_REMOVED,
                              zk.EVENT_CHILD_WATCH_REMOVED,
                              zk.EVENT_PERSISTENT_WATCH_REMOVED))


class ConnectionBroken(Exception):
    """The current connection is unusable; ``args[0]`` says why (the
    error the requests in flight fail with, or :class:`SessionClosed`)."""


class SessionClosed(Exception):
    """The server confirmed closeSession."""


class _Stopped(Protocol):
    def is_set(self) -> bool: ...


def _never_stopped() -> bool:
    return False


class SessionMachine(SessionOpening):
    """The protocol state of one client session, across its connections.

    :param identity: where the session id, password, protocol version and
                     last zxid seen are kept (the kazoo client).
    :param session_timeout_ms: the session timeout to ask the server for.
    :param read_only: whether to accept a read-only server.
    :param dispatch_watch: called with ``(event_type, path, funcs)`` for
                           each watch event that fires watchers.
    :param on_auth_failed: called when the server refuses authentication.
    :param unchroot: applied to a decoded multi reply of a kazoo request.
    :param stopped: an object whose ``is_set()`` says the client stopped
                    (no watch is registered then).
    :param on_state: called with each new KeeperState of the session.
    """

    def __init__(self, identity: Identity, session_timeout_ms: int,
                 read_only: bool = False,
                 dispatch_watch: Optional[Callable[[int, str, Any], None]] = None,
                 on_auth_failed: Optional[Callable[[], None]] = None,
                 unchroot: Optional[Callable[[Any], Any]] = None,
                 stopped: Optional[_Stopped] = None,
                 on_state: Optional[Callable[[str], None]] = None) -> None:
        super().__init__(identity, session_timeout_ms, read_only)
        #: Where the session is (CONNECTING, CONNECTED, EXPIRED_SESSION...).
        self.states = SessionStates(on_state or _ignore)
        self._dispatch_watch = dispatch_watch or _ignore_watch
        self._on_auth_failed = on_auth_failed or _ignore
        self._unchroot = unchroot
        self._stopped = stopped.is_set if stopped is not None else _never_stopped
        self.watches = _watches.WatchRegistry()
        self.children_view = ChildrenView()
        self.pending: Deque[Request] = deque()

    # -- requests ----------------------------------------------------------

    def encode(self, req: Request) -> bytes:
        """Give ``req`` its xid and return its frame (:meth:`send` also
        puts it in flight)."""
        opcode = req.opcode
        frame = req.frame
        if opcode == zk.AUTH:
            assert frame is not None  # an AuthPacket is no read
            req.xid = zk.AUTH_XID
            return frame(zk.AUTH_XID)
        self.xid = xid = (self.xid % MAX_XID) + 1
        req.xid = xid
        watcher = req.watcher
        if watcher is not None and opcode in _ONE_SHOT_KIND:
            path = req.path
            if path is not None and self.watches.covered(
                    _ONE_SHOT_KIND[opcode], path):
                # Registered on the client only (see WatchRegistry.covered).
                return codec.encode_path_watch(xid, opcode, path, False)
        if frame is not None:
            return frame(xid)
        # A read of req.path (getData, exists, getChildren, getChildren2):
        # it asks the server for a watch when it leaves one, for a watcher
        # or for the children view.
        path = req.path
        assert path is not None  # every read names its node
        return codec.encode_path_watch(
            xid, opcode, path,
            watcher is not None or req.view_token is not None)

    def send(self, req: Request) -> Optional[bytes]:
        """Put ``req`` in flight: give it its xid and append it to
        :attr:`pending`; returns the frame to send, or None when it cannot
        be encoded (then the error completes ``req.result``).  The driver
        sends the frames in the order this returns them."""
        try:
            frame = self.encode(req)
        except Exception as exc:
            req.result.set_exception(exc)
            return None
        self.pending.append(req)
        return frame

    def connection_lost(self) -> List[Request]:
        """Forget the current connection; returns the requests that were
        in flight on it (the driver fails them)."""
        lost = list(self.pending)
        self.pending.clear()
        self.children_view.reset()
        return lost

    # -- deadlines ---------------------------------------------------------

    def next_deadline(self) -> float:
        """When :meth:`tick` next has something to do: a ping to send or
        the read timeout to enforce."""
        ping_at = self.last_send + self.ping_interval
        silent_at = self.last_recv + self.read_timeout
        return ping_at if ping_at < silent_at else silent_at

    def tick(self, now: float) -> Optional[bytes]:
        """Enforce the deadlines at ``now``; returns a ping frame to send
        when one is due, else None.

        :raises ConnectionBroken: nothing was received for the read timeout.
        """
        if now - self.last_recv > self.read_timeout:
            raise ConnectionBroken(ConnectionDropped(
                "outstanding heartbeat ping not received"))
        if now - self.last_send >= self.ping_interval:
            return codec.encode_ping()
        return None

    def expiry_deadline(self) -> Optional[float]:
        """While disconnected: when the server may have expired the session
        (a whole negotiated timeout after it was last heard from), or None
        before any session was negotiated."""
        timeout_ms = self.negotiated_timeout
        if not timeout_ms:
            return None
        return self.last_recv + timeout_ms / 1000.0

    # -- frames from the server --------------------------------------------

    def receive(self, frame: bytes, now: float) -> None:
        """Handle one frame read on an established connection: complete
        the request it answers, or route the watch event it carries.

        :raises ConnectionBroken: the frame breaks the protocol, the
                                  session closed, or authentication failed.
        """
        # The server is alive when whole frames arrive: bytes of a frame
        # that never completes (a hostile length prefix) do not count.
        self.last_recv = now
        xid, zxid, err = codec.decode_reply_header(frame)
        if err == zk.SESSION_CLOSED_REQUIRE_SASL_AUTH:
            self._require_sasl(xid)
        if xid == zk.WATCH_XID:
            self._receive_event(frame)
            return
        if xid == zk.PING_XID or xid == zk.SET_WATCHES_XID:
            if err and xid == zk.SET_WATCHES_XID:
                log.warning("SetWatches failed with error %s", err)
            return
        try:
            if xid == zk.AUTH_XID:
                req = self._pending_auth()
            else:
                req = self.pending.popleft()
        except IndexError:
            raise ConnectionBroken(ProtocolError(
                "reply xid %d with no request pending" % xid))
        if req.xid != xid:
            req.result.set_exception(ConnectionLoss("xid mismatch"))
            raise ConnectionBroken(ProtocolError(
                "xids do not match, expected %r received %r" % (req.xid, xid)))
        # Only a reply that matched its request may move last_zxid: the
        # server refuses a reconnect from a client claiming a zxid it never
        # issued.
        if zxid > 0:
            self.identity.last_zxid = zxid
        result = req.result
        if err:
            self._receive_error(req, xid, err)
            return
        kind = req.kind
        value: Any
        try:
            if kind == R_CHILDREN:
                value = codec.decode_children(frame, 16)
            elif kind == R_DATA_STAT:
                value = codec.decode_data_stat(frame, 16)
            elif kind == R_STAT:
                value = codec.decode_stat(frame, 16)
            elif kind == R_VOID:
                value = True
            elif kind == R_STRING:
                value = codec.decode_string(frame, 16)
            elif kind == R_CHILDREN_STAT:
                value = codec.decode_children_stat(frame, 16)
            elif kind == R_STRING_STAT:
                value = codec.decode_string_stat(frame, 16)
            elif kind == R_MULTI:
                value = codec.decode_multi(frame, 16)
            elif kind == R_KAZOO:
                value = self._decode_kazoo(req, frame)
            elif kind == R_CLOSE:
                result.set(True)
                raise ConnectionBroken(SessionClosed())
            else:
                value = True
        except ProtocolError as exc:
            result.set_exception(ConnectionLoss(str(exc)))
            raise ConnectionBroken(exc)
        if req.watcher is not None or req.watch_kind is not None:
            self._register_watch(req, True)
        elif req.view_token is not None and req.path is not None:
            self.children_view.store(req.view_token, req.path, value)
        result.set(value)

    def _require_sasl(self, xid: int) -> None:
        """The server requires SASL authentication and closes the
        connection: whatever waits on it fails, and so would every
        reconnect of this client."""
        reason = ("this client has no sasl_options" if self.sasl_options is None
                  else "this connection is not authenticated")
        error = SessionClosedRequireSaslError(
            "the server requires SASL authentication and closed the "
            "connection: %s" % reason)
        if self.pending and self.pending[0].xid == xid:
            self.pending.popleft().result.set_exception(error)
        raise ConnectionBroken(error)

    def _pending_auth(self) -> Request:
        """Take the oldest AuthPacket in flight, wherever it is.

        ZooKeeper answers an AuthPacket as soon as it reads it
        (ZooKeeperServer.processPacket replies at once instead of passing
        it down the request pipeline), so its reply may come before the
        replies to requests sent earlier: it matches the first AuthPacket
        of the FIFO, not necessarily its head.

        :raises IndexError: no AuthPacket is in flight.
        """
        pending = self.pending
        for req in pending:
            if req.xid == zk.AUTH_XID:
                pending.remove(req)
                return req
        raise IndexError("no AuthPacket in flight")

    def _receive_error(self, req: Request, xid: int, err: int) -> None:
        result = req.result
        if xid == zk.AUTH_XID:
            result.set_exception(AuthFailedError())
            self._on_auth_failed()
            raise ConnectionBroken(AuthFailedError())
        if err == _NONODE and req.opcode == zk.EXISTS:
            self._register_watch(req, False)
            result.set(None)
            return
        exc_class = EXCEPTIONS.get(err)  # .get: no defaultdict factory
        if exc_class is None:
            result.set_exception(ConnectionLoss(
                "server sent unknown error code %d" % err))
            raise ConnectionBroken(ProtocolError("unknown error code %d" % err))
        result.set_exception(exc_class())

    def _decode_kazoo(self, req: Request, frame: bytes) -> Any:
        request = req.kazoo_request
        if not hasattr(request, "deserialize"):
            return True
        try:
            value = request.deserialize(bytes(frame), 16)
        except Exception as exc:
            raise ProtocolError("undecodable reply to %s: %s"
                                % (type(request).__name__, exc))
        if request.type == zk.MULTI and self._unchroot is not None:
            value = self._unchroot(value)
        return value

    def _register_watch(self, req: Request, exists: bool) -> None:
        op = req.opcode
        path = req.path
        # Every request that sets or removes a watch names its node.
        assert path is not None
        if op == zk.REMOVE_WATCHES:
            for kind in req.watch_kind:
                self.watches.discard(kind, path)
            return
        watcher = req.watcher
        if watcher is None or self._stopped():
            return
        if op == zk.ADD_WATCH:
            kind = req.watch_kind
        elif op == zk.GET_CHILDREN or op == zk.GET_CHILDREN2:
            kind = _watches.CHILD
        elif op == zk.EXISTS and not exists:
            kind = _watches.EXIST
        else:
            kind = _watches.DATA
        self.watches.add(kind, path, watcher)

    def _receive_event(self, frame: bytes) -> None:
        event_type, state, path = codec.decode_watch_event(frame, 16)
        if event_type in _ENDS_CHILDREN_VIEW and path is not None:
            self.children_view.invalidate(path)
        if event_type not in _watches.EVENT_TYPES or path is None:
            if event_type not in _NOTHING_TO_FIRE:
                raise ConnectionBroken(ProtocolError(
                    "watch event of unknown type %d" % event_type))
            return
        funcs = self.watches.fire(event_type, path)
        if funcs:
            self._dispatch_watch(event_type, path, funcs)


def _ignore(*args: Any) -> None:
    pass


def _ignore_watch(event_type: int, path: str, funcs: Any) -> None:
    pass
