"""The frames of ZooKeeper's SASL exchange and its state machine, without
I/O.

Each token travels in a ``GetSASLRequest {buffer token}`` record with
opcode :data:`~fastzk.protocol.constants.SASL` (102) and an ordinary
positive xid; the server answers each with a ``SetSASLResponse {buffer
token}`` record under the same xid.  A failed authentication is a reply
whose header carries ``AUTH_FAILED`` (or
``SESSION_CLOSED_REQUIRE_SASL_AUTH``), after which the server closes the
connection.
"""

import itertools
import struct
from typing import Callable, Optional, Tuple

from kazoo.exceptions import EXCEPTIONS, AuthFailedError, SessionClosedRequireSaslError

from fastzk.errors import ProtocolError
from fastzk.protocol.constants import (
    AUTH_FAILED,
    OK,
    REPLY_HEADER_SIZE,
    SASL,
    SESSION_CLOSED_REQUIRE_SASL_AUTH,
)
from fastzk.protocol.sasl_mechanism import Mechanism

__all__ = ["SaslExchange", "decode_sasl_reply", "encode_sasl_request"]

_REQUEST_HEADER = struct.Struct(">iiii")  # length, xid, opcode, token length
_REPLY_HEADER = struct.Struct(">iqi")
_INT = struct.Struct(">i")


def encode_sasl_request(xid: int, token: bytes) -> bytes:
    """Encode a SASL request: ``RequestHeader {xid, SASL}`` and a
    ``GetSASLRequest {buffer token}``, with its length prefix.

    :rtype: bytes
    """
    token = bytes(token)
    try:
        return _REQUEST_HEADER.pack(12 + len(token), xid, SASL, len(token)) + token
    except struct.error:
        raise ValueError("xid must be a 32-bit int, not %r" % (xid,)) from None


def decode_sasl_reply(frame: bytes) -> Tuple[int, int, int, Optional[bytes]]:
    """Decode a reply to a SASL request: a ``ReplyHeader`` and a
    ``SetSASLResponse {buffer token}``.

    :param frame: the frame body, without its length prefix.
    :returns: ``(xid, zxid, err, token)``; ``token`` is ``None`` for a
              null buffer, and for an error reply without a body.
    :raises fastzk.errors.ProtocolError: on a truncated or malformed frame.
    """
    frame = bytes(frame)
    n = len(frame)
    if n < REPLY_HEADER_SIZE:
        raise ProtocolError("truncated SASL reply: %d bytes, a reply header is %d"
                            % (n, REPLY_HEADER_SIZE))
    xid, zxid, err = _REPLY_HEADER.unpack_from(frame, 0)
    if n == REPLY_HEADER_SIZE and err != OK:
        return xid, zxid, err, None
    if n < REPLY_HEADER_SIZE + 4:
        raise ProtocolError("truncated SASL reply: no SetSASLResponse token")
    (length,) = _INT.unpack_from(frame, REPLY_HEADER_SIZE)
    start = REPLY_HEADER_SIZE + 4
    if length == -1:
        token = None
    elif length < 0:
        raise ProtocolError("negative SASL token length %d" % length)
    elif start + length > n:
        raise ProtocolError("truncated SASL token: %d bytes announced, %d present"
                            % (length, n - start))
    else:
        token = frame[start:start + length]
        start += length
    if start != n:
        raise ProtocolError("%d stray bytes after the SASL token" % (n - start))
    return xid, zxid, err, token


class SaslExchange(object):
    """One SASL authentication on one connection, without I/O.

    The driver sends :meth:`first_request` right after the handshake
    (before ``auth_data``, SetWatches and any queued request), then feeds
    each reply frame to :meth:`receive` and sends what it returns, until
    it returns ``None``: :attr:`done` is then true.  Nothing else may be
    sent meanwhile.

    :param mechanism: a fresh mechanism, from :func:`mechanism_for`.
    :param next_xid: returns the xid of each request; by default 1, 2, 3...
                     (what kazoo uses).  Each must be positive.

    .. attribute:: done

        True once the server has accepted the authentication.

    .. attribute:: zxid

        The zxid of the last reply (ZooKeeper sends 0).
    """

    def __init__(self, mechanism: Mechanism,
                 next_xid: Optional[Callable[[], int]] = None) -> None:
        self.mechanism = mechanism
        self.done = False
        self.zxid = 0
        self._next_xid = next_xid if next_xid is not None else itertools.count(1).__next__
        self._xid: Optional[int] = None
        self._last_sent = False

    def first_request(self) -> bytes:
        """Return the frame of the first request (the initial response)."""
        if self._xid is not None or self.done:
            raise RuntimeError("the SASL exchange has already started")
        return self._request(self.mechanism.initial_response())

    def receive(self, reply_frame: bytes) -> Optional[bytes]:
        """Take the server's reply to the outstanding request.

        :param reply_frame: the reply's frame body (no length prefix).
        :returns: the frame of the next request, or ``None`` when the
                  authentication has succeeded.
        :raises kazoo.exceptions.AuthFailedError: if the server refused the
            authentication (its reply's error code), or the mechanism
            rejects the server's token (for DIGEST-MD5, a wrong
            ``rspauth``); other server error codes raise kazoo's exception
            for them, e.g. ``SessionClosedRequireSaslError``.
        :raises fastzk.errors.ProtocolError: on a malformed reply or one
            for another xid.
        """
        if self._xid is None:
            raise RuntimeError("no SASL request is outstanding")
        xid, zxid, err, token = decode_sasl_reply(reply_frame)
        if xid != self._xid:
            raise ProtocolError("SASL reply for xid %d, expected %d" % (xid, self._xid))
        self._xid = None
        if zxid > 0:
            self.zxid = zxid
        if err != OK:
            raise self._refused(err)
        if self._last_sent:
            self.done = True
            return None
        answer = self.mechanism.respond(token or b"")
        if self.mechanism.complete and not answer:
            self.done = True
            return None
        return self._request(answer)

    def _request(self, token: bytes) -> bytes:
        xid = self._next_xid()
        if xid <= 0:
            raise ValueError("SASL requests need a positive xid, not %d" % xid)
        frame = encode_sasl_request(xid, token)
        self._xid = xid
        # A complete mechanism with a last token to send: the server's reply
        # to it ends the exchange.
        self._last_sent = self.mechanism.complete
        return frame

    def _refused(self, err: int) -> Exception:
        name = self.mechanism.name
        exc: Exception
        if err == AUTH_FAILED:
            exc = AuthFailedError(
                "SASL %s authentication failed: the server refused it (wrong "
                "credentials, or a mechanism the server does not offer)" % name)
        elif err == SESSION_CLOSED_REQUIRE_SASL_AUTH:
            exc = SessionClosedRequireSaslError(
                "SASL %s authentication failed and the server requires SASL: "
                "it closed the session" % name)
        else:
            exc_type = EXCEPTIONS.get(err, AuthFailedError)
            exc = exc_type("SASL %s request failed with error code %d" % (name, err))
        return exc
