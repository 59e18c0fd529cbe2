"""Throw-away certificates for TLS tests, made with ``cryptography``.

Nothing here depends on pytest or on ``keytool``: ZooKeeper reads PEM key
and trust stores (``ssl.keyStore.type=PEM``), so every file written here is
PEM.  Keys are ECDSA P-256, quick to make; private keys are PKCS#8, the
only form ZooKeeper's PEM reader accepts.

Typical use::

    files = make_tls_files("/tmp/tls")
    files.ca                  # CA certificate: the client's ``ca``
    files.server_pem          # server key + chain: ``ssl.keyStore.location``
    files.client_cert, files.client_key   # a client's ``certfile``/``keyfile``

or, for certificates of one's own::

    ca = CertificateAuthority("my CA")
    leaf = ca.issue("server", hosts=["127.0.0.1", "localhost"])
    leaf.write_key_and_chain("/tmp/server.pem")
"""

import datetime
import ipaddress
import os
from dataclasses import dataclass
from typing import Iterable, List, Optional, Union

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError as exc:  # an optional dependency of the test helpers
    raise ImportError(
        "fastzk.testing.certs needs the 'cryptography' package: "
        "pip install 'fastzk[test]'") from exc

__all__ = [
    "CertificateAuthority",
    "IssuedCertificate",
    "TlsFiles",
    "make_tls_files",
]

#: The hosts a server certificate made by :func:`make_tls_files` is for.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")

_ORGANIZATION = "fastzk tests"
_ONE_DAY = datetime.timedelta(days=1)
_Host = Union[str, ipaddress.IPv4Address, ipaddress.IPv6Address]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _general_name(host: _Host) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(str(host))


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _private_key_pem(key: ec.EllipticCurvePrivateKey,
                     password: Optional[Union[str, bytes]] = None) -> bytes:
    if password is None:
        encryption: serialization.KeySerializationEncryption = (
            serialization.NoEncryption())
    else:
        if isinstance(password, str):
            password = password.encode("utf-8")
        encryption = serialization.BestAvailableEncryption(password)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        encryption,
    )


def _write(path: str, data: bytes) -> str:
    path = os.path.abspath(path)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)
    return path


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate issued by a :class:`CertificateAuthority`, with its
    private key and the issuing CA's certificate."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    issuer: x509.Certificate

    @property
    def subject(self) -> str:
        """The subject as an RFC 4514 string (``"CN=...,O=..."``), the way
        ZooKeeper names the ``x509`` identity of a client certificate."""
        return self.certificate.subject.rfc4514_string()

    def cert_pem(self) -> bytes:
        """The certificate alone, PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def chain_pem(self) -> bytes:
        """The certificate followed by its issuer's, PEM."""
        return self.cert_pem() + self.issuer.public_bytes(
            serialization.Encoding.PEM)

    def key_pem(self, password: Optional[Union[str, bytes]] = None) -> bytes:
        """The private key in PKCS#8 PEM, encrypted when ``password`` is
        given."""
        return _private_key_pem(self.key, password)

    def write_cert(self, path: str) -> str:
        """Write :meth:`chain_pem` to ``path``; return the absolute path."""
        return _write(path, self.chain_pem())

    def write_key(self, path: str,
                  password: Optional[Union[str, bytes]] = None) -> str:
        """Write :meth:`key_pem` to ``path``; return the absolute path."""
        return _write(path, self.key_pem(password))

    def write_key_and_chain(
        self, path: str, password: Optional[Union[str, bytes]] = None
    ) -> str:
        """Write the key and the chain to one file, a ZooKeeper PEM key
        store (``ssl.keyStore.location``); return the absolute path."""
        return _write(path, self.key_pem(password) + self.chain_pem())


class CertificateAuthority:
    """A self-signed certificate authority that issues server and client
    certificates.

    :param common_name: The CA's common name (its organization is always
        ``"fastzk tests"``).
    """

    def __init__(self, common_name: str = "fastzk test CA") -> None:
        self.key = _new_key()
        name = _name(common_name)
        now = _now()
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _ONE_DAY)
            .not_valid_after(now + 365 * _ONE_DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0),
                           critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True,
                    crl_sign=True, content_commitment=False,
                    key_encipherment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False,
                    decipher_only=False),
                critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(
                    self.key.public_key()),
                critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def cert_pem(self) -> bytes:
        """The CA certificate, PEM (what a trust store or ``ca`` holds)."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def write_cert(self, path: str) -> str:
        """Write the CA certificate to ``path``; return the absolute path."""
        return _write(path, self.cert_pem())

    def issue(
        self,
        common_name: str,
        hosts: Iterable[_Host] = (),
        client: bool = False,
        not_before: Optional[datetime.datetime] = None,
        not_after: Optional[datetime.datetime] = None,
    ) -> IssuedCertificate:
        """Issue a certificate.

        :param common_name: Subject common name.
        :param hosts: Host names and IP addresses for the subject
            alternative names (what a client checks a server against).
        :param client: True for a client certificate (extended key usage
            clientAuth), False for a server one (serverAuth).
        :param not_before: Start of validity; default yesterday.
        :param not_after: End of validity; default in a year.
        """
        key = _new_key()
        now = _now()
        usage = (ExtendedKeyUsageOID.CLIENT_AUTH if client
                 else ExtendedKeyUsageOID.SERVER_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - _ONE_DAY)
            .not_valid_after(not_after or now + 365 * _ONE_DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.key.public_key()),
                critical=False)
        )
        names: List[x509.GeneralName] = [_general_name(h) for h in hosts]
        if names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        return IssuedCertificate(key, certificate, self.certificate)


@dataclass(frozen=True)
class TlsFiles:
    """The PEM files :func:`make_tls_files` writes, by absolute path.

    Good ones: ``ca`` signs ``server_pem`` (for ``127.0.0.1`` and
    ``localhost``) and the client certificate ``client_cert`` /
    ``client_key``; ``client_key_encrypted`` is the same key encrypted with
    ``client_key_password``; ``client_subject`` is the client's subject as
    ZooKeeper names its ``x509`` identity.

    Bad ones: ``other_ca`` is an unrelated CA, which signs
    ``other_client_cert`` / ``other_client_key``; ``expired_server_pem``,
    ``not_yet_valid_server_pem`` and ``wrong_host_server_pem`` (for
    ``wrong.invalid`` only) are signed by ``ca``.  Every ``*_server_pem``
    is a ZooKeeper PEM key store: the key in PKCS#8, then the chain.
    """

    directory: str
    ca: str
    server_pem: str
    client_cert: str
    client_key: str
    client_key_encrypted: str
    client_key_password: str
    client_subject: str
    other_ca: str
    other_client_cert: str
    other_client_key: str
    expired_server_pem: str
    not_yet_valid_server_pem: str
    wrong_host_server_pem: str


def make_tls_files(directory: str) -> TlsFiles:
    """Make two CAs and the certificates of :class:`TlsFiles` in
    ``directory`` (created if missing); return their paths."""
    os.makedirs(directory, exist_ok=True)

    def path(name: str) -> str:
        return os.path.join(directory, name)

    now = _now()
    ca = CertificateAuthority("fastzk test CA")
    other_ca = CertificateAuthority("fastzk unrelated CA")
    server = ca.issue("fastzk server", hosts=LOOPBACK_HOSTS)
    client = ca.issue("fastzk client", client=True)
    other_client = other_ca.issue("fastzk stranger", client=True)
    expired = ca.issue("fastzk expired server", hosts=LOOPBACK_HOSTS,
                       not_before=now - 30 * _ONE_DAY,
                       not_after=now - _ONE_DAY)
    not_yet_valid = ca.issue("fastzk future server", hosts=LOOPBACK_HOSTS,
                             not_before=now + _ONE_DAY,
                             not_after=now + 30 * _ONE_DAY)
    wrong_host = ca.issue("wrong.invalid", hosts=["wrong.invalid"])
    password = "fastzk-key-password"
    return TlsFiles(
        directory=os.path.abspath(directory),
        ca=ca.write_cert(path("ca.pem")),
        server_pem=server.write_key_and_chain(path("server.pem")),
        client_cert=client.write_cert(path("client-cert.pem")),
        client_key=client.write_key(path("client-key.pem")),
        client_key_encrypted=client.write_key(
            path("client-key-encrypted.pem"), password),
        client_key_password=password,
        client_subject=client.subject,
        other_ca=other_ca.write_cert(path("other-ca.pem")),
        other_client_cert=other_client.write_cert(path("other-client-cert.pem")),
        other_client_key=other_client.write_key(path("other-client-key.pem")),
        expired_server_pem=expired.write_key_and_chain(
            path("expired-server.pem")),
        not_yet_valid_server_pem=not_yet_valid.write_key_and_chain(
            path("not-yet-valid-server.pem")),
        wrong_host_server_pem=wrong_host.write_key_and_chain(
            path("wrong-host-server.pem")),
    )
