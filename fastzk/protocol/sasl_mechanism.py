"""The client side of a SASL mechanism, as ZooKeeper's SASL exchange uses
it, and the names ZooKeeper gives its SASL service."""

__all__ = ["DEFAULT_SERVICE", "DIGEST_MD5_HOST", "Mechanism"]

#: The server name of DIGEST-MD5 in ZooKeeper.  The server creates its
#: DIGEST-MD5 SaslServer for the fixed name ``zk-sasl-md5`` (its default
#: realm) rather than its host name, so the client's digest-uri is
#: ``zookeeper/zk-sasl-md5`` whatever host it connects to.
DIGEST_MD5_HOST = "zk-sasl-md5"
#: The SASL service (protocol) name of ZooKeeper.
DEFAULT_SERVICE = "zookeeper"


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
