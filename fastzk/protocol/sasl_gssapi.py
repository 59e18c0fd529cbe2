"""The GSSAPI SASL mechanism (RFC 4752, Kerberos V5), client side, on the
optional ``gssapi`` package (``pip install 'fastzk[gssapi]'``)."""

from typing import Any, Optional

from kazoo.exceptions import AuthFailedError, ConfigurationError

from fastzk.protocol.sasl_mechanism import DEFAULT_SERVICE, Mechanism

__all__ = ["GSSAPI_EXTRA", "Gssapi", "import_gssapi"]

#: What a GSSAPI configuration without the ``gssapi`` package reports.
GSSAPI_EXTRA = "GSSAPI needs the 'gssapi' package: pip install 'fastzk[gssapi]'"
#: The "no security layer" bit of RFC 4752's security layer bit mask.
_GSSAPI_NO_SECURITY_LAYER = 1
#: What a client lacking credentials can do about it.
_CREDENTIALS_HINT = ("get a ticket with kinit, or name a keytab holding the "
                     "principal's key in KRB5_CLIENT_KTNAME")


def _gssapi_error(message: str) -> AuthFailedError:
    return AuthFailedError("GSSAPI: " + message)


def _reason(exc: BaseException) -> str:
    """The Kerberos reason of a GSS-API error: its minor status (the
    mechanism's own message, e.g. "Server x/y@R not found in Kerberos
    database") when it has one, its major status otherwise."""
    statuses = getattr(exc, "get_all_statuses", None)
    try:
        minor = getattr(exc, "min_code", 0)
        if statuses is not None and minor:
            text = "; ".join(statuses(minor, False))
        elif statuses is not None:
            text = "; ".join(statuses(getattr(exc, "maj_code", 0), True))
        else:
            text = ""
    except Exception:
        text = ""
    return text.strip() or str(exc)


class Gssapi(Mechanism):
    """The GSSAPI SASL mechanism (RFC 4752, Kerberos V5), without a
    security layer, on the ``gssapi`` package.

    The exchange: GSS-API context tokens until the context is established
    (mutual authentication), then the server's wrapped security-layer
    offer, answered with a wrapped choice of "no security layer" and the
    authorization identity.

    The first context token is made at construction, so that missing
    credentials or a server principal the KDC does not know fail before
    anything is sent.

    :param service: the service part of the server's principal.
    :param host: the host part of the server's principal
                 (``service/host@REALM``): the host name the client
                 connects to, as written in the connection string.
    :param principal: the client principal whose credentials (from the
                      process' ticket cache, or its client keytab) to use;
                      by default the cache's default principal.
    :param authzid: the authorization identity; by default the client
                    principal's name.
    :param context: an initiating ``gssapi.SecurityContext`` to use instead
                    of building one from the names above.
    :raises kazoo.exceptions.AuthFailedError: if GSS-API cannot make the
        first token: no credentials, or no ticket for the server.
    :raises kazoo.exceptions.ConfigurationError: without the ``gssapi``
        package, or without ``host``.
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
        self.target = "%s/%s" % (service, host)
        self.principal = principal
        self._context = context if context is not None else _gssapi_context(
            service, host, principal)
        self._first = self._first_token()

    def initial_response(self) -> bytes:
        """Return the first GSS-API context token."""
        return self._first

    def respond(self, challenge: bytes) -> bytes:
        """Answer a context token, or the security-layer offer once the
        context is established.

        :raises kazoo.exceptions.AuthFailedError: if GSS-API fails or the
            server insists on a security layer.
        """
        if self.complete:
            raise _gssapi_error("a challenge came after the authentication completed")
        if not self._context.complete:
            try:
                return bytes(self._context.step(bytes(challenge)) or b"")
            except Exception as exc:
                raise _gssapi_error("the server's context token for %s failed: %s"
                                    % (self.target, _reason(exc))) from exc
        return self._choose_security_layer(bytes(challenge))

    def _first_token(self) -> bytes:
        try:
            return bytes(self._context.step(None) or b"")
        except Exception as exc:
            who = self.principal or "the default principal"
            raise _gssapi_error(
                "cannot get a ticket for the server principal %s as %s: %s"
                % (self.target, who, _reason(exc))) from exc

    def _choose_security_layer(self, challenge: bytes) -> bytes:
        try:
            offer = self._context.unwrap(challenge).message
        except Exception as exc:
            raise _gssapi_error("cannot unwrap the server's security layer offer: %s"
                                % (_reason(exc),)) from exc
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
            raise _gssapi_error("cannot wrap the security layer answer: %s"
                                % (_reason(exc),)) from exc
        self.complete = True
        return token


def import_gssapi() -> Any:
    """Import and return the ``gssapi`` package.

    :raises kazoo.exceptions.ConfigurationError: naming the ``gssapi``
        extra when the package is missing.
    """
    try:
        import gssapi  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise ConfigurationError(GSSAPI_EXTRA) from None
    return gssapi


def _gssapi_context(service: str, host: str, principal: Optional[str]) -> Any:
    gssapi = import_gssapi()
    if not host:
        raise ConfigurationError("GSSAPI needs the server's host name")
    try:
        target = gssapi.Name("%s@%s" % (service, host), gssapi.NameType.hostbased_service)
    except gssapi.exceptions.GSSError as exc:
        raise _gssapi_error("bad server principal %s/%s: %s"
                            % (service, host, _reason(exc))) from exc
    creds = None
    if principal:
        try:
            creds = gssapi.Credentials(
                name=gssapi.Name(principal, gssapi.NameType.kerberos_principal),
                usage="initiate",
            )
        except gssapi.exceptions.GSSError as exc:
            raise _gssapi_error("no Kerberos credentials for %s (%s): %s"
                                % (principal, _reason(exc), _CREDENTIALS_HINT)) from exc
    flags = (gssapi.RequirementFlag.mutual_authentication
             | gssapi.RequirementFlag.out_of_sequence_detection)
    return gssapi.SecurityContext(name=target, creds=creds, usage="initiate", flags=flags)
