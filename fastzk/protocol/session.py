"""The ZooKeeper session as a state machine with no I/O.

:class:`SessionMachine` knows the protocol of one session and nothing of
sockets, threads or clocks: a driver feeds it the frames it reads, sends
the bytes it is handed, and tells it the time.  It owns

- the handshake: the ConnectRequest to send, the interpretation of the
  ConnectResponse (a new, resumed or expired session, the negotiated
  timeout), the SASL exchange, auth replay and the SetWatches/SetWatches2
  batches that restore the watches on a new connection;
- xid assignment and the FIFO of requests in flight: ZooKeeper answers a
  session's requests in order, so each reply must match the head of the
  FIFO (anything else is a :class:`~fastzk.errors.ProtocolError`);
- decoding replies into results or kazoo exceptions, which complete each
  request's result object;
- the watch registry and the routing of watch events;
- the deadlines: when a ping is due, when the server has been silent for
  the read timeout, and when a disconnected client must consider its
  session lost (a whole session timeout after the server was last heard).

A reply or event that breaks the connection raises
:class:`ConnectionBroken`, carrying the error the requests in flight fail
with; the driver drops the connection and reconnects.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import (
    Any,
    Callable,
    Deque,
    List,
    Mapping,
    Optional,
    Protocol,
)

from kazoo.exceptions import (
    EXCEPTIONS,
    AuthFailedError,
    ConfigurationError,
    ConnectionDropped,
    ConnectionLoss,
    NoNodeError,
    SessionClosedRequireSaslError,
    SessionExpiredError,
)

from fastzk._core import codec
from fastzk.childview import ChildrenView
from fastzk.errors import ProtocolError
from fastzk.protocol import constants as zk
from fastzk.protocol.sasl import SaslExchange, mechanism_for
from fastzk import watches as _watches

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

# How replies are decoded (Request.kind).
R_VOID = 0  # delete, setWatches, addWatch, removeWatches, check
R_STAT = 1  # setData, exists
R_DATA_STAT = 2  # getData
R_CHILDREN = 3  # getChildren
R_CHILDREN_STAT = 4  # getChildren2
R_STRING = 5  # create, sync
R_STRING_STAT = 6  # create2
R_MULTI = 7
R_KAZOO = 8  # a kazoo request object decodes its own reply
R_CLOSE = 9

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
_MAX_XID = 2147483647
# The xid of the closeSession sent to end a session the client gave up.
_FAREWELL_XID = 1


class ConnectionBroken(Exception):
    """The current connection is unusable; ``args[0]`` says why (the
    error the requests in flight fail with, or :class:`SessionClosed`)."""


class SessionClosed(Exception):
    """The server confirmed closeSession."""


class AbandonedSession(ConnectionDropped):  # type: ignore[misc]
    """The server re-attached a session the client already declared lost.

    ``farewell`` is the closeSession frame that ends it on the server (so
    its ephemeral nodes go now); the driver sends it, then drops the
    connection and opens a fresh session."""

    def __init__(self, message: str, farewell: bytes) -> None:
        super().__init__(message)
        self.farewell = farewell


class Identity(Protocol):
    """Where the machine keeps the session's identity between connections
    (kazoo's client attributes of the same names)."""

    last_zxid: int
    _session_id: Optional[int]
    _session_passwd: Any
    _protocol_version: Any


class Completion(Protocol):
    """The result object of one request."""

    def set(self, value: Any = None) -> None: ...

    def set_exception(self, error: BaseException) -> None: ...


class _Stopped(Protocol):
    def is_set(self) -> bool: ...


class Request(object):
    """One request: what to send, how to read its reply, whom to tell.

    :param opcode: the ZooKeeper opcode.
    :param frame: a function of the xid returning the encoded frame.
    :param kind: how the reply decodes (one of the ``R_*`` values).
    :param result: completed with the decoded reply or its exception.
    :param path: the node path, for watches.
    :param watcher: the watch function the request leaves, if any.
    """

    __slots__ = (
        "xid",
        "opcode",
        "frame",
        "kind",
        "path",
        "watcher",
        "result",
        "kazoo_request",
        "watch_kind",
        "view_token",
    )

    def __init__(self, opcode: int, frame: Callable[[int], bytes], kind: int,
                 result: Any, path: Optional[str] = None,
                 watcher: Any = None) -> None:
        self.xid = 0
        self.opcode = opcode
        self.frame = frame
        self.kind = kind
        self.result = result
        self.path = path
        self.watcher = watcher
        self.kazoo_request: Any = None
        # For addWatch and removeWatches: the registry kind(s) to add or
        # drop when the server confirms.
        self.watch_kind: Any = None
        # For a watched getChildren feeding the ChildrenView: its token.
        self.view_token: Any = None


def _never_stopped() -> bool:
    return False


class SessionMachine(object):
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
    """

    def __init__(self, identity: Identity, session_timeout_ms: int,
                 read_only: bool = False,
                 dispatch_watch: Optional[Callable[[int, str, Any], None]] = None,
                 on_auth_failed: Optional[Callable[[], None]] = None,
                 unchroot: Optional[Callable[[Any], Any]] = None,
                 stopped: Optional[_Stopped] = None) -> None:
        self.identity = identity
        self.session_timeout_ms = session_timeout_ms
        self.read_only = read_only
        self._dispatch_watch = dispatch_watch or _ignore_watch
        self._on_auth_failed = on_auth_failed or _ignore
        self._unchroot = unchroot
        self._stopped = stopped.is_set if stopped is not None else _never_stopped
        self.watches = _watches.WatchRegistry()
        self.children_view = ChildrenView()
        self.pending: Deque[Request] = deque()
        self.xid = 0
        self.negotiated_timeout: Optional[int] = None
        self.read_timeout = 10.0
        self.ping_interval = 3.0
        self.last_send = 0.0
        self.last_recv = 0.0
        self.connected_read_only = False
        # The session the client declared lost while no server was
        # reachable (see declare_lost).
        self.abandoned_session: Optional[int] = None
        self._sent_session = 0
        #: kazoo's ``sasl_options``, normalized
        #: (:func:`~fastzk.protocol.sasl.normalize_sasl_options`), or None
        #: for no SASL authentication.
        self.sasl_options: Optional[Mapping[str, Any]] = None
        self._sasl: Optional[SaslExchange] = None

    # -- the handshake -----------------------------------------------------

    def connect_request(self) -> bytes:
        """The ConnectRequest that opens a connection (resuming the
        session, if there is one)."""
        identity = self.identity
        self._sent_session = identity._session_id or 0
        return codec.encode_connect(identity.last_zxid, self.session_timeout_ms,
                                    self._sent_session, identity._session_passwd,
                                    bool(self.read_only))

    def receive_connect_response(self, frame: bytes, now: float) -> bool:
        """Take the server's ConnectResponse; True when it is read-only.

        :raises SessionExpiredError: the server has no such session.
        :raises ConnectionDropped: the abandoned session expired on the
                                   server too (a fresh one follows).
        :raises AbandonedSession: the server re-attached a session the
                                  client declared lost.
        :raises ProtocolError: the frame is not a ConnectResponse.
        """
        proto, negotiated, session_id, passwd, read_only = (
            codec.decode_connect_response(frame))
        identity = self.identity
        sent = self._sent_session
        if negotiated <= 0:
            if sent and sent == self.abandoned_session:
                # Already reported lost by the client; the server agrees.
                self.abandoned_session = None
                raise ConnectionDropped("the abandoned session expired")
            raise SessionExpiredError("Session has expired")
        if session_id == self.abandoned_session or (
                sent and identity._session_id != sent):
            self.abandoned_session = None
            raise AbandonedSession("re-attached to a session declared lost; "
                                   "closed it", codec.encode_close(_FAREWELL_XID))
        identity._session_id = session_id
        identity._session_passwd = passwd
        identity._protocol_version = proto
        self.negotiated_timeout = negotiated
        # The Java client's rule: 2/3 of the session timeout without a
        # frame ends the connection; ping after a third of that idle.
        self.read_timeout = negotiated * 2.0 / 3.0 / 1000.0
        self.ping_interval = self.read_timeout / 3.0
        self.connected_read_only = bool(read_only)
        self.xid = 0
        self.last_send = self.last_recv = now
        return bool(read_only)

    # -- SASL --------------------------------------------------------------

    @property
    def sasl_pending(self) -> bool:
        """True while a SASL exchange is under way on this connection:
        nothing else may be sent until it ends."""
        return self._sasl is not None

    def start_sasl(self, host: str) -> Optional[bytes]:
        """Begin the SASL authentication of a new connection to ``host``.

        Called right after :meth:`receive_connect_response`, before any
        AuthPacket, SetWatches or request: ZooKeeper takes the SASL
        identity only from an exchange that comes first.  Every connection
        needs its own exchange with a fresh mechanism.

        :returns: the frame of the first SASL request, or None when the
                  session does not use SASL.
        :raises AuthFailedError: the mechanism cannot start (e.g. GSSAPI
                                 without credentials).
        """
        self._sasl = None
        options = self.sasl_options
        if options is None:
            return None
        try:
            mechanism = mechanism_for(options, host)
        except (AuthFailedError, ConfigurationError) as exc:
            raise AuthFailedError(self._sasl_failure(exc)) from exc
        exchange = SaslExchange(mechanism, self._next_xid)
        frame = exchange.first_request()
        self._sasl = exchange
        return frame

    def receive_sasl_reply(self, frame: bytes, now: float) -> Optional[bytes]:
        """Take the server's reply to the outstanding SASL request.

        :returns: the frame of the next SASL request, or None when the
                  server accepted the authentication (:attr:`sasl_pending`
                  is then False and the handshake goes on).
        :raises AuthFailedError: the server refused the authentication, or
                                 its answer failed to authenticate it.
        :raises SessionClosedRequireSaslError: the same, on a server that
                                               requires SASL.
        :raises ProtocolError: the frame is not the expected reply.
        """
        exchange = self._sasl
        if exchange is None:
            raise ProtocolError("a SASL reply with no SASL exchange under way")
        self.last_recv = now
        try:
            answer = exchange.receive(frame)
        except (AuthFailedError, SessionClosedRequireSaslError) as exc:
            self._sasl = None
            raise type(exc)(self._sasl_failure(exc)) from exc
        except BaseException:
            self._sasl = None
            raise
        if exchange.zxid > 0:
            self.identity.last_zxid = exchange.zxid
        if answer is None:
            self._sasl = None
        return answer

    def _sasl_failure(self, exc: BaseException) -> str:
        """The message of a failed SASL authentication: what failed, with
        the mechanism and the user."""
        options = self.sasl_options or {}
        mechanism = options.get("mechanism", "SASL")
        who = options.get("username") or options.get("principal")
        reason = str(exc)
        if reason.startswith("SASL "):
            message = reason
        else:
            message = "SASL %s authentication failed: %s" % (mechanism, reason)
        if who:
            message += " (user %r)" % (who,)
        return message

    def _next_xid(self) -> int:
        self.xid = xid = (self.xid % _MAX_XID) + 1
        return xid

    @staticmethod
    def auth_frame(scheme: str, credential: Any) -> bytes:
        """The AuthPacket frame for one ``(scheme, credential)``."""
        return codec.encode_raw(codec.AUTH_XID, codec.AUTH,
                                _auth_body(scheme, credential))

    @staticmethod
    def receive_auth_reply(frame: bytes) -> None:
        """Take the reply to an AuthPacket of the handshake.

        :raises AuthFailedError: the server refused the credential.
        """
        xid, zxid, err = codec.decode_reply_header(frame)
        if err:
            raise AuthFailedError()

    def set_watches_frames(self) -> List[bytes]:
        """The SetWatches/SetWatches2 frames that restore this session's
        watches on a new connection (each under the server's 128 KiB
        packet limit).

        One-shot watches travel with SetWatches and relativeZxid = the last
        zxid this client saw, so the server fires those whose node changed
        meanwhile.  Persistent watches go in SetWatches2 (ZooKeeper 3.6+).
        Their replies (xid -8) go through :meth:`receive`.
        """
        data, exist, child, persistent, recursive = self.watches.paths()
        return codec.encode_set_watches(self.identity.last_zxid, data, exist,
                                        child, persistent, recursive)

    # -- requests ----------------------------------------------------------

    def encode(self, req: Request) -> bytes:
        """Give ``req`` its xid and return its frame (the caller appends it
        to :attr:`pending` once it is on its way)."""
        opcode = req.opcode
        if opcode == zk.AUTH:
            req.xid = zk.AUTH_XID
            return req.frame(zk.AUTH_XID)
        self.xid = xid = (self.xid % _MAX_XID) + 1
        req.xid = xid
        if req.watcher is not None and opcode in _ONE_SHOT_KIND:
            kind = _ONE_SHOT_KIND[opcode]
            path = req.path
            if path is not None and self.watches.covered(kind, path):
                # Registered on the client only (see WatchRegistry.covered).
                return codec.encode_path_watch(xid, opcode, path, False)
        return req.frame(xid)

    def connection_lost(self) -> List[Request]:
        """Forget the current connection; returns the requests that were
        in flight on it (the driver fails them)."""
        lost = list(self.pending)
        self.pending.clear()
        self.children_view.reset()
        return lost

    def declare_lost(self) -> None:
        """The client gave the session up (no server for a whole session
        timeout, or the server said it expired): a server that still
        re-attaches it is told to close it."""
        self.abandoned_session = self.identity._session_id
        self.xid = 0

    def reset_xids(self) -> None:
        """Start a new session's xids from 1."""
        self.xid = 0

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


def _auth_body(scheme: str, credential: Any) -> bytes:
    # AuthPacket: int type (0), ustring scheme, buffer auth.
    from kazoo.protocol.serialization import Auth

    return bytes(Auth(0, scheme, credential).serialize())
