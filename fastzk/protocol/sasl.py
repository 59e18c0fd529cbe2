"""ZooKeeper SASL authentication, client side, without I/O.

After the session handshake a client configured with kazoo's
``sasl_options`` authenticates by exchanging SASL tokens with the server:
each token travels in a ``GetSASLRequest {buffer token}`` record with opcode
:data:`~fastzk.protocol.constants.SASL` (102) and an ordinary positive xid,
and the server answers each with a ``SetSASLResponse {buffer token}``
record under the same xid.  A failed authentication is a reply whose
header carries ``AUTH_FAILED`` (or ``SESSION_CLOSED_REQUIRE_SASL_AUTH``),
after which the server closes the connection.

This module turns kazoo's options into a mechanism; it also re-exports
the pieces a driver needs, none of which touch a socket:

- :class:`DigestMD5`, the DIGEST-MD5 mechanism of RFC 2831, built in
  (:mod:`fastzk.protocol.sasl_digest`);
- :class:`Gssapi`, the GSSAPI (Kerberos V5) mechanism of RFC 4752, on the
  optional ``gssapi`` package (:mod:`fastzk.protocol.sasl_gssapi`);
- :func:`mechanism_for`, which builds either from kazoo's ``sasl_options``,
  and :func:`sasl_options_from_auth_data`, kazoo's conversion of a
  ``("sasl", "user:password")`` entry of ``auth_data``;
- :func:`encode_sasl_request` and :func:`decode_sasl_reply`, the frames;
- :class:`SaslExchange`, the request/reply state machine of one
  authentication on one connection (the frames and the exchange in
  :mod:`fastzk.protocol.sasl_exchange`).
"""

import warnings
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from kazoo.exceptions import ConfigurationError

from fastzk.protocol.sasl_digest import DigestMD5, parse_digest_challenge
from fastzk.protocol.sasl_exchange import SaslExchange, decode_sasl_reply, encode_sasl_request
from fastzk.protocol.sasl_gssapi import Gssapi, import_gssapi
from fastzk.protocol.sasl_mechanism import DEFAULT_SERVICE, DIGEST_MD5_HOST, Mechanism

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
        import_gssapi()
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
