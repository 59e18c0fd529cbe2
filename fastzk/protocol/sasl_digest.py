"""The DIGEST-MD5 SASL mechanism (RFC 2831), client side, as ZooKeeper
uses it: quality of protection ``auth``, no security layer."""

import hashlib
import hmac
import os
from typing import Dict, List, Mapping, Optional, Tuple

from kazoo.exceptions import AuthFailedError, ConfigurationError

from fastzk.protocol.sasl_mechanism import DEFAULT_SERVICE, DIGEST_MD5_HOST, Mechanism

__all__ = ["DigestMD5", "parse_digest_challenge"]

#: The largest digest-challenge RFC 2831 allows.
_MAX_CHALLENGE = 2048
_LWS = b" \t\r\n"
_SEPARATORS = frozenset(b'()<>@,;:\\"/[]?={} \t')
#: Directives a digest-challenge may carry at most once (RFC 2831 2.1.1).
_SINGLE_DIRECTIVES = ("nonce", "qop", "stale", "maxbuf", "charset", "algorithm", "cipher")


def _digest_error(message: str) -> AuthFailedError:
    return AuthFailedError("DIGEST-MD5: " + message)


def _skip_lws(data: bytes, pos: int) -> int:
    n = len(data)
    while pos < n and data[pos] in _LWS:
        pos += 1
    return pos


def _read_token(data: bytes, pos: int) -> Tuple[bytes, int]:
    start = pos
    n = len(data)
    while pos < n and data[pos] not in _SEPARATORS and 32 < data[pos] < 127:
        pos += 1
    return data[start:pos], pos


def _read_quoted(data: bytes, pos: int) -> Tuple[bytes, int]:
    """Read the quoted-string opening at ``pos`` (on its ``"``)."""
    out = bytearray()
    pos += 1
    n = len(data)
    while pos < n:
        c = data[pos]
        if c == 0x5C:  # backslash: the next octet stands for itself
            if pos + 1 >= n:
                break
            out.append(data[pos + 1])
            pos += 2
        elif c == 0x22:
            return bytes(out), pos + 1
        else:
            out.append(c)
            pos += 1
    raise _digest_error("unterminated quoted string in the server's challenge")


def parse_digest_challenge(data: bytes) -> Dict[str, List[bytes]]:
    """Parse a DIGEST-MD5 challenge into its directives.

    The challenge is a comma-separated list of ``name=value`` directives,
    each value a token or a quoted string (with ``\\`` escapes); empty list
    elements and linear white space around the separators are allowed.

    :returns: each directive's lower-cased name mapped to the list of its
              values in order (``realm`` may appear several times).
    :raises kazoo.exceptions.AuthFailedError: if the challenge does not
        follow that grammar.
    """
    data = bytes(data)
    directives: Dict[str, List[bytes]] = {}
    pos, n = 0, len(data)
    while True:
        while True:
            pos = _skip_lws(data, pos)
            if pos < n and data[pos] == 0x2C:
                pos += 1
                continue
            break
        if pos >= n:
            return directives
        name, pos = _read_token(data, pos)
        if not name:
            raise _digest_error(
                "malformed challenge: a directive name was expected at offset %d" % pos
            )
        pos = _skip_lws(data, pos)
        if pos >= n or data[pos] != 0x3D:
            raise _digest_error("malformed challenge: directive %r has no value" % name.decode())
        pos = _skip_lws(data, pos + 1)
        if pos < n and data[pos] == 0x22:
            value, pos = _read_quoted(data, pos)
        else:
            value, pos = _read_token(data, pos)
        pos = _skip_lws(data, pos)
        if pos < n and data[pos] != 0x2C:
            raise _digest_error(
                "malformed challenge: unexpected %r at offset %d" % (chr(data[pos]), pos)
            )
        directives.setdefault(name.decode("ascii").lower(), []).append(value)


def _quote(value: bytes) -> bytes:
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _hash_bytes(value: str, utf8: bool, what: str) -> bytes:
    """Encode ``value`` for hashing as RFC 2831 2.1.2.1 says.

    With ``charset=utf-8`` a value whose characters all fit ISO 8859-1 is
    hashed in ISO 8859-1, any other in UTF-8; without it, ISO 8859-1 only.
    """
    try:
        return value.encode("iso-8859-1")
    except UnicodeEncodeError:
        if utf8:
            return value.encode("utf-8")
        raise _digest_error(
            "the %s has characters outside ISO 8859-1 and the server does not "
            "accept UTF-8 (its challenge has no charset=utf-8)" % what
        ) from None


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


def _hex_md5(data: bytes) -> bytes:
    return hashlib.md5(data).hexdigest().encode("ascii")


def _single(directives: Mapping[str, List[bytes]], name: str) -> Optional[bytes]:
    values = directives.get(name)
    if not values:
        return None
    return values[0]


def _read_digest_challenge(challenge: bytes) -> Tuple[bytes, Optional[str], bool]:
    """Check a digest-challenge for what this client supports.

    :returns: ``(nonce, realm, utf8)``: the nonce, the first realm offered
              (``None`` if none is) and whether ``charset=utf-8`` is set.
    """
    if not challenge:
        raise _digest_error(
            "the server sent an empty challenge (is SASL authentication "
            "configured on the server, with DIGEST-MD5?)"
        )
    if len(challenge) > _MAX_CHALLENGE:
        raise _digest_error("the server's challenge is longer than %d bytes" % _MAX_CHALLENGE)
    directives = parse_digest_challenge(challenge)
    if "rspauth" in directives:
        raise _digest_error("the server sent rspauth before any response")
    for name in _SINGLE_DIRECTIVES:
        if len(directives.get(name, ())) > 1:
            raise _digest_error("the server's challenge has %d %s directives"
                                % (len(directives[name]), name))
    nonce = _single(directives, "nonce")
    if not nonce:
        raise _digest_error("the server's challenge has no nonce")
    algorithm = _single(directives, "algorithm")
    if algorithm is None or algorithm.lower() != b"md5-sess":
        raise _digest_error("the server's challenge does not offer algorithm=md5-sess")
    charset = _single(directives, "charset")
    if charset is not None and charset.lower() != b"utf-8":
        raise _digest_error("the server's challenge has an unknown charset %r"
                            % charset.decode("latin-1"))
    # No qop directive means qop=auth; "stale", "maxbuf" and "cipher" do not
    # matter without a security layer.
    qops = [q.strip().lower() for q in (_single(directives, "qop") or b"auth").split(b",")]
    if b"auth" not in qops:
        raise _digest_error(
            "the server requires a SASL security layer (qop %s); fastzk "
            "supports qop=auth only" % b",".join(qops).decode("latin-1")
        )
    utf8 = charset is not None
    realms = directives.get("realm")
    realm = realms[0].decode("utf-8" if utf8 else "iso-8859-1", "replace") if realms else None
    return nonce, realm, utf8


class DigestMD5(Mechanism):
    """The DIGEST-MD5 SASL mechanism (RFC 2831), quality of protection
    ``auth`` (authentication only, no security layer), as ZooKeeper uses it.

    The exchange: the server's digest-challenge (realm, nonce, qop,
    charset, algorithm=md5-sess), the client's digest-response, then the
    server's ``rspauth``, which proves that the server knows the password
    too; a wrong ``rspauth`` fails the authentication.

    :param username: the user name (the JAAS ``user_<name>`` of the
                     server's DigestLoginModule).
    :param password: the user's password.
    :param host: the server name of the digest-uri; ZooKeeper servers
                 expect :data:`DIGEST_MD5_HOST`.
    :param service: the service name of the digest-uri.
    :param authzid: an authorization identity to send, if any.
    :param cnonce: the client nonce; by default 16 random bytes from
                   :func:`os.urandom`, hex-encoded.  A fixed value is for
                   tests only.
    """

    name = "DIGEST-MD5"

    def __init__(
        self,
        username: str,
        password: str,
        host: str = DIGEST_MD5_HOST,
        service: str = DEFAULT_SERVICE,
        authzid: Optional[str] = None,
        cnonce: Optional[bytes] = None,
    ) -> None:
        super().__init__()
        for what, value in (("username", username), ("password", password),
                            ("host", host), ("service", service)):
            if not isinstance(value, str):
                raise TypeError("DIGEST-MD5 %s must be a str, not %s"
                                % (what, type(value).__name__))
        if not username:
            raise ConfigurationError("DIGEST-MD5 needs a non-empty username")
        if authzid is not None and not isinstance(authzid, str):
            raise TypeError("DIGEST-MD5 authzid must be a str or None")
        self.username = username
        self._password = password
        self.digest_uri = "%s/%s" % (service, host)
        self.authzid = authzid or None
        self._cnonce = cnonce
        self._rspauth: Optional[bytes] = None

    def initial_response(self) -> bytes:
        """Return ``b""``: DIGEST-MD5 starts with the server's challenge."""
        return b""

    def respond(self, challenge: bytes) -> bytes:
        """Answer the digest-challenge, then check the server's ``rspauth``.

        :returns: the digest-response to the first challenge, ``b""`` after
                  a verified ``rspauth`` (the mechanism is then complete).
        :raises kazoo.exceptions.AuthFailedError: on a malformed or
            unsupported challenge, or a wrong ``rspauth``.
        """
        if self.complete:
            raise _digest_error("a challenge came after the authentication completed")
        if self._rspauth is None:
            return self._digest_response(bytes(challenge))
        self._check_rspauth(bytes(challenge))
        return b""

    def _digest_response(self, challenge: bytes) -> bytes:
        nonce, realm, utf8 = _read_digest_challenge(challenge)
        cnonce = self._cnonce if self._cnonce is not None else os.urandom(16).hex().encode("ascii")
        return self._build_response(nonce, cnonce, realm, utf8)

    def _build_response(self, nonce: bytes, cnonce: bytes, realm: Optional[str],
                        utf8: bool) -> bytes:
        nc = b"00000001"
        qop = b"auth"
        user_key = b":".join((
            _hash_bytes(self.username, utf8, "username"),
            _hash_bytes(realm or "", utf8, "realm"),
            _hash_bytes(self._password, utf8, "password"),
        ))
        a1 = _md5(user_key) + b":" + nonce + b":" + cnonce
        authzid = self.authzid.encode("utf-8") if self.authzid else None
        if authzid:
            a1 += b":" + authzid
        digest_uri = self.digest_uri.encode("utf-8" if utf8 else "iso-8859-1")
        ha1 = _hex_md5(a1)
        tail = b":".join((nonce, nc, cnonce, qop))

        def kd_response(a2: bytes) -> bytes:
            return _hex_md5(ha1 + b":" + tail + b":" + _hex_md5(a2))

        response = kd_response(b"AUTHENTICATE:" + digest_uri)
        self._rspauth = kd_response(b":" + digest_uri)
        self._password = ""
        wire = "utf-8" if utf8 else "iso-8859-1"
        parts = [b"charset=utf-8"] if utf8 else []
        parts.append(b"username=" + _quote(self.username.encode(wire)))
        if realm is not None:
            parts.append(b"realm=" + _quote(realm.encode(wire)))
        parts += [
            b"nonce=" + _quote(nonce),
            b"nc=" + nc,
            b"cnonce=" + _quote(cnonce),
            b"digest-uri=" + _quote(digest_uri),
            b"response=" + response,
            b"qop=" + qop,
        ]
        if authzid:
            parts.append(b"authzid=" + _quote(authzid))
        return b",".join(parts)

    def _check_rspauth(self, challenge: bytes) -> None:
        directives = parse_digest_challenge(challenge) if challenge else {}
        rspauth = directives.get("rspauth")
        if not rspauth:
            raise _digest_error("the server's final message has no rspauth")
        expected = self._rspauth or b""
        if len(rspauth) != 1 or not hmac.compare_digest(rspauth[0].lower(), expected):
            raise _digest_error(
                "the server's rspauth is wrong: the server did not prove it "
                "knows the password"
            )
        self.complete = True
