"""What the session machine does while a connection opens.

:class:`SessionOpening` is the part of
:class:`~fastzk.protocol.session.SessionMachine` that runs before requests
flow: the ConnectRequest and the interpretation of the ConnectResponse (a
new, resumed or expired session, the negotiated timeout, a session the
client already gave up), the SASL exchange, the AuthPackets of
``auth_data`` and the SetWatches/SetWatches2 batches that restore the
session's watches.  No I/O: the driver moves the frames.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Protocol

from kazoo.exceptions import (
    AuthFailedError,
    ConfigurationError,
    ConnectionDropped,
    SessionClosedRequireSaslError,
    SessionExpiredError,
)

from fastzk._core import codec
from fastzk.errors import ProtocolError
from fastzk.protocol.sasl import SaslExchange, mechanism_for
from fastzk.protocol import watches as _watches

__all__ = ["AbandonedSession", "Identity", "SessionOpening"]

MAX_XID = 2147483647
# The xid of the closeSession sent to end a session the client gave up.
_FAREWELL_XID = 1


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


class SessionOpening(object):
    """The handshake of each connection of one session.

    :param identity: where the session id, password, protocol version and
                     last zxid seen are kept (the kazoo client).
    :param session_timeout_ms: the session timeout to ask the server for.
    :param read_only: whether to accept a read-only server.
    """

    #: The session's watches (restored by :meth:`set_watches_frames`).
    watches: _watches.WatchRegistry

    def __init__(self, identity: Identity, session_timeout_ms: int,
                 read_only: bool = False) -> None:
        self.identity = identity
        self.session_timeout_ms = session_timeout_ms
        self.read_only = read_only
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
        self.xid = xid = (self.xid % MAX_XID) + 1
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

    def declare_lost(self) -> None:
        """The client gave the session up (no server for a whole session
        timeout, or the server said it expired): a server that still
        re-attaches it is told to close it."""
        self.abandoned_session = self.identity._session_id
        self.xid = 0

    def reset_xids(self) -> None:
        """Start a new session's xids from 1."""
        self.xid = 0


def _auth_body(scheme: str, credential: Any) -> bytes:
    # AuthPacket: int type (0), ustring scheme, buffer auth.
    from kazoo.protocol.serialization import Auth

    return bytes(Auth(0, scheme, credential).serialize())
