"""ZooKeeper SASL authentication, client side, without I/O.

After the session handshake a client configured with kazoo's
``sasl_options`` authenticates by exchanging SASL tokens with the server:
each token travels in a ``GetSASLRequest {buffer token}`` record with opcode
:data:`~fastzk.protocol.constants.SASL` (102) and an ordinary positive xid,
and the server answers each with a ``SetSASLResponse {buffer token}``
record under the same xid.  A failed authentication is a reply whose
header carries ``AUTH_FAILED`` (or ``SESSION_CLOSED_REQUIRE_SASL_AUTH``),
after which the server closes the connection.

This module holds the pieces a driver needs, none of which touch a socket:

- :class:`DigestMD5`, the DIGEST-MD5 mechanism of RFC 2831, built in;
- :class:`Gssapi`, the GSSAPI (Kerberos V5) mechanism of RFC 4752, on the
  optional ``gssapi`` package;
- :func:`mechanism_for`, which builds either from kazoo's ``sasl_options``,
  and :func:`sasl_options_from_auth_data`, kazoo's conversion of a
  ``("sasl", "user:password")`` entry of ``auth_data``;
- :func:`encode_sasl_request` and :func:`decode_sasl_reply`, the frames;
- :class:`SaslExchange`, the request/reply state machine of one
  authentication on one connection.
"""

import hashlib
import hmac
import itertools
import os
import struct
import warnings
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Tuple,
)

from kazoo.exceptions import (
    EXCEPTIONS,
    AuthFailedError,
    ConfigurationError,
    SessionClosedRequireSaslError,
)

from fastzk.errors import ProtocolError
from fastzk.protocol.constants import (
    AUTH_FAILED,
    OK,
    REPLY_HEADER_SIZE,
    SASL,
    SESSION_CLOSED_REQUIRE_SASL_AUTH,
)

__all__ = [
    "DIGEST_MD5_HOST",
    "DEFAULT_SERVICE",
    "Mechanism",
    "DigestMD5",
    "Gssapi",
    "parse_digest_challenge",
    "normalize_sasl_options",
    "mechanism_for",
    "sasl_options_from_auth_data",
    "encode_sasl_request",
    "decode_sasl_reply",
    "SaslExchange",
]

#: The server name of DIGEST-MD5 in ZooKeeper.  The server creates its
#: DIGEST-MD5 SaslServer for the fixed name ``zk-sasl-md5`` (its default
#: realm) rather than its host name, so the client's digest-uri is
#: ``zookeeper/zk-sasl-md5`` whatever host it connects to.
DIGEST_MD5_HOST = "zk-sasl-md5"
#: The SASL service (protocol) name of ZooKeeper.
DEFAULT_SERVICE = "zookeeper"

#: The largest digest-challenge RFC 2831 allows.
_MAX_CHALLENGE = 2048
_GSSAPI_EXTRA = "GSSAPI needs the 'gssapi' package: pip install 'fastzk[gssapi]'"


class Mechanism(object):
    """A client SASL mechanism: the tokens of one authentication.

    A mechanism object serves one authentication on one connection; a
    reconnect needs a new one (see :func:`mechanism_for`).

    .. attribute:: name

        The SASL mechanism name, e.g. ``"DIGEST-MD5"``.

    .. attribute:: complete

        True once the mechanism has authenticated the server and has
        nothing more to ask.
    """

    name = ""

    def __init__(self) -> None:
        self.complete = False

    def initial_response(self) -> bytes:
        """Return the token of the first request.

        Mechanisms without an initial response (DIGEST-MD5) return
        ``b""``: ZooKeeper then starts with an empty token.
        """
        raise NotImplementedError

    def respond(self, challenge: bytes) -> bytes:
        """Answer the server's ``challenge`` with the next token.

        Returns ``b""`` when there is nothing to send.

        :raises kazoo.exceptions.AuthFailedError: if the challenge is
            malformed or fails to authenticate the server.
        """
        raise NotImplementedError


# -- DIGEST-MD5 (RFC 2831) ------------------------------------------------------

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


# -- GSSAPI (RFC 4752) ----------------------------------------------------------

#: The "no security layer" bit of RFC 4752's security layer bit mask.
_GSSAPI_NO_SECURITY_LAYER = 1


def _gssapi_error(message: str) -> AuthFailedError:
    return AuthFailedError("GSSAPI: " + message)


class Gssapi(Mechanism):
    """The GSSAPI SASL mechanism (RFC 4752, Kerberos V5), without a
    security layer, on the ``gssapi`` package.

    The exchange: GSS-API context tokens until the context is established
    (mutual authentication), then the server's wrapped security-layer
    offer, answered with a wrapped choice of "no security layer" and the
    authorization identity.

    :param service: the service part of the server's principal.
    :param host: the host part of the server's principal
                 (``service/host@REALM``).
    :param principal: the client principal whose credentials (from the
                      process' ticket cache or keytab) to use; by default
                      the cache's default principal.
    :param authzid: the authorization identity; by default the client
                    principal's name.
    :param context: an initiating ``gssapi.SecurityContext`` to use instead
                    of building one from the names above.
    """

    name = "GSSAPI"

    def __init__(
        self,
        service: str = DEFAULT_SERVICE,
        host: str = "",
        principal: Optional[str] = None,
        authzid: Optional[str] = None,
        context: Any = None,
    ) -> None:
        super().__init__()
        self.authzid = authzid
        self._context = context if context is not None else _gssapi_context(
            service, host, principal)

    def initial_response(self) -> bytes:
        """Return the first GSS-API context token."""
        return self._step(None)

    def respond(self, challenge: bytes) -> bytes:
        """Answer a context token, or the security-layer offer once the
        context is established.

        :raises kazoo.exceptions.AuthFailedError: if GSS-API fails or the
            server insists on a security layer.
        """
        if self.complete:
            raise _gssapi_error("a challenge came after the authentication completed")
        if not self._context.complete:
            return self._step(bytes(challenge))
        return self._choose_security_layer(bytes(challenge))

    def _step(self, token: Optional[bytes]) -> bytes:
        try:
            return self._context.step(token) or b""
        except Exception as exc:
            raise _gssapi_error("security context: %s" % (exc,)) from exc

    def _choose_security_layer(self, challenge: bytes) -> bytes:
        try:
            offer = self._context.unwrap(challenge).message
        except Exception as exc:
            raise _gssapi_error("cannot unwrap the server's security layer offer: %s"
                                % (exc,)) from exc
        if len(offer) != 4:
            raise _gssapi_error("the server's security layer offer is %d bytes, not 4"
                                % len(offer))
        if not offer[0] & _GSSAPI_NO_SECURITY_LAYER:
            raise _gssapi_error("the server requires a security layer; fastzk "
                                "supports authentication only")
        authzid = self.authzid
        if authzid is None:
            authzid = str(self._context.initiator_name)
        # No security layer, so a maximum message size of 0 (RFC 4752 3.1).
        answer = bytes((_GSSAPI_NO_SECURITY_LAYER, 0, 0, 0)) + authzid.encode("utf-8")
        try:
            token: bytes = self._context.wrap(answer, False).message
        except Exception as exc:
            raise _gssapi_error("cannot wrap the security layer answer: %s" % (exc,)) from exc
        self.complete = True
        return token


def _import_gssapi() -> Any:
    try:
        import gssapi  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigurationError(_GSSAPI_EXTRA) from None
    return gssapi


def _gssapi_context(service: str, host: str, principal: Optional[str]) -> Any:
    gssapi = _import_gssapi()
    if not host:
        raise ConfigurationError("GSSAPI needs the server's host name")
    try:
        target = gssapi.Name("%s@%s" % (service, host), gssapi.NameType.hostbased_service)
        creds = None
        if principal:
            creds = gssapi.Credentials(
                name=gssapi.Name(principal, gssapi.NameType.kerberos_principal),
                usage="initiate",
            )
        flags = (gssapi.RequirementFlag.mutual_authentication
                 | gssapi.RequirementFlag.out_of_sequence_detection)
        return gssapi.SecurityContext(name=target, creds=creds, usage="initiate",
                                      flags=flags)
    except gssapi.exceptions.GSSError as exc:
        raise _gssapi_error("no credentials for %s: %s"
                            % (principal or "the default principal", exc)) from exc


# -- sasl_options ---------------------------------------------------------------

#: The keys kazoo passes through to pure-sasl's SASLClient, beside the
#: mechanism properties.  Those without a meaning here (no security layer
#: to size or pick) are accepted and checked for consistency only.
_CLIENT_KEYS = frozenset((
    "mechanism", "service", "authorization_id", "callback", "qops",
    "mutual_auth", "max_buffer",
))
_MECHANISM_KEYS = {
    "DIGEST-MD5": frozenset(("username", "password", "principal")),
    "GSSAPI": frozenset(("principal",)),
}


def normalize_sasl_options(sasl_options: Mapping[str, Any]) -> Dict[str, Any]:
    """Check kazoo's ``sasl_options`` and return a normalized copy.

    The mechanism name is upper-cased and ``service`` defaults to
    ``"zookeeper"``, as kazoo does; a DIGEST-MD5 username or password
    missing from the options is asked of ``callback(name)`` if one is
    given, as pure-sasl does.  For GSSAPI the ``gssapi`` package must be
    importable.

    :raises kazoo.exceptions.ConfigurationError: for options that cannot
        work: no or an unknown mechanism, an unknown key, a missing
        username or password, ``qops`` without ``auth``, or GSSAPI without
        its package.
    """
    if not isinstance(sasl_options, Mapping):
        raise ConfigurationError("sasl_options must be a dict, not %s"
                                 % type(sasl_options).__name__)
    options = dict(sasl_options)
    mechanism = options.get("mechanism")
    if not mechanism or not isinstance(mechanism, str):
        raise ConfigurationError(
            "sasl_options needs a 'mechanism': one of %s" % ", ".join(sorted(_MECHANISM_KEYS)))
    mechanism = options["mechanism"] = mechanism.upper()
    if mechanism not in _MECHANISM_KEYS:
        raise ConfigurationError("unknown SASL mechanism %r: fastzk supports %s"
                                 % (sasl_options["mechanism"], ", ".join(sorted(_MECHANISM_KEYS))))
    unknown = set(options) - _CLIENT_KEYS - _MECHANISM_KEYS[mechanism]
    if unknown:
        raise ConfigurationError(
            "unknown sasl_options key(s) for %s: %s (accepted: %s)"
            % (mechanism, ", ".join(sorted(map(str, unknown))),
               ", ".join(sorted(_CLIENT_KEYS | _MECHANISM_KEYS[mechanism]))))
    options.setdefault("service", DEFAULT_SERVICE)
    qops = options.get("qops")
    if qops is not None and "auth" not in {
            q.decode() if isinstance(q, bytes) else q for q in qops}:
        raise ConfigurationError("sasl_options qops must include 'auth': fastzk "
                                 "has no SASL security layer")
    if mechanism == "DIGEST-MD5":
        _fill_digest_credentials(options)
    else:
        _import_gssapi()
    return options


def _fill_digest_credentials(options: Dict[str, Any]) -> None:
    callback = options.get("callback")
    for key in ("username", "password"):
        if options.get(key) is None and callback is not None:
            options[key] = callback(key)
        value = options.get(key)
        if value is None:
            raise ConfigurationError("DIGEST-MD5 sasl_options need a %r" % key)
        if isinstance(value, bytes):
            value = options[key] = value.decode("utf-8")
        if not isinstance(value, str):
            raise ConfigurationError("DIGEST-MD5 %s must be a str, not %s"
                                     % (key, type(value).__name__))


def mechanism_for(sasl_options: Mapping[str, Any], host: str) -> Mechanism:
    """Return a new :class:`Mechanism` for kazoo's ``sasl_options``.

    DIGEST-MD5 options (``username``, ``password``, optional
    ``authorization_id``) give a :class:`DigestMD5` whose digest-uri is
    ``<service>/zk-sasl-md5`` whatever ``host`` is, since ZooKeeper fixes
    that name; GSSAPI options (optional ``service``, ``principal``,
    ``authorization_id``) give a :class:`Gssapi` for the server principal
    ``<service>/<host>``.  Build a new one for each connection.

    :param sasl_options: kazoo's ``sasl_options`` dict.
    :param host: the host name of the server being connected to.
    :raises kazoo.exceptions.ConfigurationError: as
        :func:`normalize_sasl_options`.
    """
    options = normalize_sasl_options(sasl_options)
    if options["mechanism"] == "DIGEST-MD5":
        return DigestMD5(
            options["username"], options["password"], host=DIGEST_MD5_HOST,
            service=options["service"], authzid=options.get("authorization_id"),
        )
    return Gssapi(
        service=options["service"], host=host, principal=options.get("principal"),
        authzid=options.get("authorization_id"),
    )


def sasl_options_from_auth_data(
    auth_data: Optional[Iterable[Tuple[str, str]]],
    sasl_options: Optional[Mapping[str, Any]] = None,
) -> Tuple[Optional[Dict[str, Any]], List[Tuple[str, str]]]:
    """Turn the ``sasl`` entries of ``auth_data`` into ``sasl_options``,
    as kazoo's client does.

    A ``("sasl", "user:password")`` entry stands for DIGEST-MD5
    ``sasl_options`` of that user (with a :class:`DeprecationWarning`);
    the other entries are kept for ``add_auth`` after the handshake.

    :returns: ``(sasl_options, other_auth_data)``.
    :raises kazoo.exceptions.ConfigurationError: if there are ``sasl``
        entries beside ``sasl_options``, or more than one (kazoo's
        "Multiple SASL configurations provided"), or one without a colon.
    """
    options = dict(sasl_options) if sasl_options else None
    others: List[Tuple[str, str]] = []
    for scheme, auth in auth_data or ():
        if scheme != "sasl":
            others.append((scheme, auth))
            continue
        if options:
            raise ConfigurationError("Multiple SASL configurations provided")
        warnings.warn(
            "Passing SASL configuration as part of the auth_data is "
            "deprecated, please use the sasl_options configuration instead",
            DeprecationWarning,
            stacklevel=2,
        )
        username, colon, password = auth.partition(":")
        if not colon:
            raise ConfigurationError("a sasl entry of auth_data must be 'user:password'")
        options = {
            "username": username,
            "password": password,
            "mechanism": "DIGEST-MD5",
            "service": DEFAULT_SERVICE,
            "principal": DIGEST_MD5_HOST,
        }
    return options, others


# -- the wire -------------------------------------------------------------------

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
