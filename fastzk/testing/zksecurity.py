"""How a test server secures its clients: TLS, SASL DIGEST-MD5, Kerberos.

Each class here is the security part of a
:class:`~fastzk.testing.zkserver.ZooKeeperServer`'s configuration: the
``zoo.cfg`` entries it adds (:meth:`config`) and, for SASL, the JAAS
login configuration the server reads (:meth:`jaas`) and the JVM options
that go with it (:meth:`jvm_options`).
"""

import os
import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Union

from fastzk.testing.zkinstall import SASL_PROVIDER

__all__ = [
    "CLIENT_AUTH_MODES",
    "ServerAuth",
    "ServerKerberos",
    "ServerSasl",
    "ServerTls",
    "TLS_PROTOCOLS",
]


TLS_PROTOCOLS = ("TLSv1.2", "TLSv1.3")
CLIENT_AUTH_MODES = ("need", "want", "none")
# ZooKeeper offers TLS 1.3 only when its protocol, its enabled protocols and
# its cipher suites all say so; these are the TLS 1.3 suites of Java 17.
TLS13_CIPHER_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384")


@dataclass(frozen=True)
class ServerTls:
    """TLS on a server's secure client port (Netty, PEM stores).

    :param keystore: PEM file with the server's private key in PKCS#8
        followed by its certificate chain (``ssl.keyStore.location``), e.g.
        :attr:`fastzk.testing.certs.TlsFiles.server_pem`.
    :param truststore: PEM file with the CA certificates that client
        certificates must chain to (``ssl.trustStore.location``).
    :param client_auth: ``"need"`` (a client certificate is required, the
        server's default), ``"want"`` (checked when given) or ``"none"``.
    :param protocol: ``"TLSv1.2"`` (the server's default) or ``"TLSv1.3"``
        (then only TLS 1.3 is offered).
    :param keystore_password: Password of an encrypted key in ``keystore``.
    """

    keystore: str
    truststore: str
    client_auth: str = "need"
    protocol: str = "TLSv1.2"
    keystore_password: Optional[str] = None

    def __post_init__(self) -> None:
        if self.client_auth not in CLIENT_AUTH_MODES:
            raise ValueError("client_auth must be one of %s, not %r"
                             % (", ".join(CLIENT_AUTH_MODES),
                                self.client_auth))
        if self.protocol not in TLS_PROTOCOLS:
            raise ValueError("protocol must be one of %s, not %r"
                             % (", ".join(TLS_PROTOCOLS), self.protocol))
        for path in (self.keystore, self.truststore):
            if not os.path.isfile(path):
                raise ValueError("no such PEM file: %r" % path)

    def config(self) -> Dict[str, object]:
        """The ``ssl.*`` zoo.cfg entries (the server turns each into a
        ``zookeeper.ssl.*`` system property)."""
        config: Dict[str, object] = {
            "ssl.keyStore.location": os.path.abspath(self.keystore),
            "ssl.keyStore.type": "PEM",
            "ssl.trustStore.location": os.path.abspath(self.truststore),
            "ssl.trustStore.type": "PEM",
            "ssl.clientAuth": self.client_auth,
        }
        if self.keystore_password is not None:
            config["ssl.keyStore.password"] = self.keystore_password
        if self.protocol == "TLSv1.3":
            config["ssl.protocol"] = "TLSv1.3"
            config["ssl.enabledProtocols"] = "TLSv1.3"
            config["ssl.ciphersuites"] = ",".join(TLS13_CIPHER_SUITES)
        return config


@dataclass(frozen=True)
class ServerSasl:
    """SASL DIGEST-MD5 authentication of clients.

    The server gets a JAAS file whose ``Server`` section names
    ZooKeeper's DigestLoginModule with ``users`` and the SASL
    authentication provider; a client that authenticates as user ``u``
    has the identity ``sasl:u``, usable in ACLs.

    :param users: User name to password.
    :param required: Close every session that has not authenticated with
        SASL (``sessionRequireClientSASLAuth``); by default a client may
        also work without authenticating.
    """

    users: Mapping[str, str]
    required: bool = False

    def __post_init__(self) -> None:
        if not self.users:
            raise ValueError("ServerSasl needs at least one user")
        for user, password in self.users.items():
            for text in (user, password):
                if not re.fullmatch(r"[A-Za-z0-9_.@-]+", text):
                    raise ValueError(
                        "SASL user names and passwords here are limited to "
                        "letters, digits and _.@-: %r" % text)

    def jaas(self) -> str:
        """The text of the JAAS login configuration."""
        users = "".join('\n    user_%s="%s"' % item
                        for item in self.users.items())
        return ("Server {\n    org.apache.zookeeper.server.auth."
                "DigestLoginModule required%s;\n};\n" % users)

    def config(self) -> Dict[str, object]:
        """The zoo.cfg entries."""
        config: Dict[str, object] = {"authProvider.1": SASL_PROVIDER}
        if self.required:
            config["sessionRequireClientSASLAuth"] = "true"
        return config

    def jvm_options(self) -> List[str]:
        """JVM options beside the JAAS file's: none for DIGEST-MD5."""
        return []


#: A principal's text, as far as a JAAS file may quote it.
_PRINCIPAL = re.compile(r"[A-Za-z0-9_.@/-]+")


@dataclass(frozen=True)
class ServerKerberos:
    """SASL GSSAPI (Kerberos V5) authentication of clients.

    The server gets a JAAS file whose ``Server`` section logs in with
    Java's Krb5LoginModule from ``keytab`` as ``principal`` (the key kept
    in the login subject, which the GSSAPI acceptor needs), the SASL
    authentication provider, and ``java.security.krb5.conf`` pointing at
    the realm's ``krb5.conf``.  ZooKeeper derives the SASL server's
    protocol and host from ``principal`` (``zookeeper/localhost@REALM``:
    service ``zookeeper``, host ``localhost``), so clients must ask for a
    ticket to that name.  A client authenticated as ``alice@REALM`` has
    the identity ``sasl:alice@REALM`` (ZooKeeper keeps the realm unless
    ``kerberos.removeRealmFromPrincipal`` is set), usable in ACLs.

    :param keytab: the keytab holding ``principal``'s key, e.g. from
        :meth:`fastzk.testing.kdc.KerberosRealm.add_service`.
    :param principal: the server's principal, ``service/host@REALM``.
    :param krb5_conf: the realm's ``krb5.conf``
        (:attr:`fastzk.testing.kdc.KerberosRealm.krb5_conf`).
    :param required: Close every session that has not authenticated with
        SASL (``sessionRequireClientSASLAuth``).
    :param debug: Let Java's Kerberos log to the JVM's output
        (``sun.security.krb5.debug``).
    """

    keytab: str
    principal: str
    krb5_conf: str
    required: bool = False
    debug: bool = False

    def __post_init__(self) -> None:
        if not _PRINCIPAL.fullmatch(self.principal) or "@" not in self.principal:
            raise ValueError("not a service principal with a realm: %r"
                             % (self.principal,))
        for path in (self.keytab, self.krb5_conf):
            if not os.path.isfile(path) or '"' in path:
                raise ValueError("no such file (or a quote in its name): %r" % path)

    def jaas(self) -> str:
        """The text of the JAAS login configuration."""
        return (
            "Server {\n"
            "    com.sun.security.auth.module.Krb5LoginModule required\n"
            "    useKeyTab=true\n"
            '    keyTab="%s"\n'
            "    storeKey=true\n"
            "    useTicketCache=false\n"
            '    principal="%s";\n'
            "};\n" % (os.path.abspath(self.keytab), self.principal)
        )

    def config(self) -> Dict[str, object]:
        """The zoo.cfg entries."""
        config: Dict[str, object] = {"authProvider.1": SASL_PROVIDER}
        if self.required:
            config["sessionRequireClientSASLAuth"] = "true"
        return config

    def jvm_options(self) -> List[str]:
        """The realm's ``krb5.conf`` for Java's Kerberos, and its debug
        switch."""
        options = ["-Djava.security.krb5.conf=" + os.path.abspath(self.krb5_conf)]
        if self.debug:
            options.append("-Dsun.security.krb5.debug=true")
        return options


#: What a server's ``sasl`` may be.
ServerAuth = Union[ServerSasl, ServerKerberos]
