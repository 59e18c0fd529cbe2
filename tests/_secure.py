"""Fixtures for secure servers: TLS on a secure client port, SASL DIGEST-MD5.

Import the fixtures into a test module (``from _secure import ...``).  All
are session-scoped; the standalone servers start in parallel, once.  A
server that cannot start fails every test that needs it, with its log;
nothing is skipped.

``secure_servers`` holds, each with its plain port too:

- ``need``: TLS 1.2, client certificate required, SASL user alice;
- ``tls13``: TLS 1.3 only, client certificate required, SASL required;
- ``open``: TLS 1.2, no client certificate asked for;
- ``expired``, ``not_yet_valid``, ``wrong_host``: TLS 1.2 with the bad
  server certificates of :class:`fastzk.testing.certs.TlsFiles`, client
  certificate wanted (checked when given).
"""

import socket
import ssl
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest

from fastzk.testing.certs import TlsFiles, make_tls_files
from fastzk.testing.zkserver import (
    ServerSasl,
    ServerTls,
    ZooKeeperEnsemble,
    ZooKeeperServer,
)

SASL_USER = "alice"
SASL_PASSWORD = "secret"
SECURE_START_TIMEOUT = 90.0


def _fail_start(what: str, exc: BaseException) -> None:
    __tracebackhide__ = True
    pytest.fail("could not start %s: %s" % (what, exc), pytrace=False)


@dataclass
class SecureServers:
    """The standalone servers of the ``secure_servers`` fixture."""

    need: ZooKeeperServer
    tls13: ZooKeeperServer
    open: ZooKeeperServer
    expired: ZooKeeperServer
    not_yet_valid: ZooKeeperServer
    wrong_host: ZooKeeperServer

    def all(self) -> "list[ZooKeeperServer]":
        """Every server."""
        return [self.need, self.tls13, self.open, self.expired,
                self.not_yet_valid, self.wrong_host]


def _make_servers(files: TlsFiles) -> SecureServers:
    users = {SASL_USER: SASL_PASSWORD}
    return SecureServers(
        need=ZooKeeperServer(tls=ServerTls(files.server_pem, files.ca),
                             sasl=ServerSasl(users)),
        tls13=ZooKeeperServer(
            tls=ServerTls(files.server_pem, files.ca, protocol="TLSv1.3"),
            sasl=ServerSasl(users, required=True)),
        open=ZooKeeperServer(
            tls=ServerTls(files.server_pem, files.ca, client_auth="none")),
        expired=ZooKeeperServer(tls=ServerTls(
            files.expired_server_pem, files.ca, client_auth="want")),
        not_yet_valid=ZooKeeperServer(tls=ServerTls(
            files.not_yet_valid_server_pem, files.ca, client_auth="want")),
        wrong_host=ZooKeeperServer(tls=ServerTls(
            files.wrong_host_server_pem, files.ca, client_auth="want")),
    )


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """The certificates of :func:`fastzk.testing.certs.make_tls_files`,
    made once per session."""
    return make_tls_files(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="session")
def secure_servers(tls_files: TlsFiles) -> Iterator[SecureServers]:
    """The :class:`SecureServers`, started together."""
    servers = _make_servers(tls_files)
    try:
        for server in servers.all():
            server.start(wait=False)
        for server in servers.all():
            server.wait_ready(SECURE_START_TIMEOUT)
    except Exception as exc:
        for server in servers.all():
            server.cleanup()
        _fail_start("the TLS servers", exc)
    yield servers
    for server in servers.all():
        server.cleanup()


@pytest.fixture(scope="session")
def tls_ensemble(tls_files: TlsFiles) -> Iterator[ZooKeeperEnsemble]:
    """A 3-server ensemble, each member with a TLS 1.2 secure client port
    requiring a client certificate (the quorum itself is plain)."""
    ensemble = ZooKeeperEnsemble(
        3, tls=ServerTls(tls_files.server_pem, tls_files.ca),
        start_timeout=SECURE_START_TIMEOUT)
    try:
        ensemble.start()
    except Exception as exc:
        ensemble.cleanup()
        _fail_start("the TLS ensemble", exc)
    yield ensemble
    ensemble.cleanup()


def client_context(
    files: TlsFiles,
    ca: Optional[str] = None,
    cert: bool = True,
    check_hostname: bool = False,
) -> ssl.SSLContext:
    """A client SSLContext trusting ``ca`` (default ``files.ca``), with the
    client certificate when ``cert``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = check_hostname
    context.load_verify_locations(ca or files.ca)
    if cert:
        context.load_cert_chain(files.client_cert, files.client_key)
    return context


def tls_connect(address: str, context: ssl.SSLContext,
                timeout: float = 5.0) -> ssl.SSLSocket:
    """Open a TLS connection to ``"host:port"`` and finish the handshake
    (server name: the host)."""
    host, _, port = address.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


def four_letter_word_over_tls(address: str, context: ssl.SSLContext,
                              word: str = "ruok") -> bytes:
    """Send a four-letter word over TLS and return the whole answer."""
    with tls_connect(address, context) as conn:
        conn.sendall(word.encode("ascii"))
        chunks = []
        while True:
            data = conn.recv(4096)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def tls_kwargs(files: TlsFiles, **overrides: Any) -> Dict[str, Any]:
    """kazoo's ``use_ssl`` keyword arguments for the test certificates
    (CA, client certificate and key), changed by ``overrides``; one set to
    None is left out."""
    kwargs: Dict[str, Any] = dict(
        use_ssl=True, ca=files.ca, certfile=files.client_cert,
        keyfile=files.client_key)
    kwargs.update(overrides)
    return {k: v for k, v in kwargs.items() if v is not None}


#: Every bad certificate a client can meet, by name: the keys of
#: :func:`bad_certificate_cases`, in the order the tests run them.
BAD_CERTIFICATES = [
    "wrong CA",
    "expired server certificate",
    "not yet valid server certificate",
    "hostname mismatch",
    "no client certificate, TLS 1.2",
    "no client certificate, TLS 1.3",
    "client certificate of another CA",
]


def bad_certificate_cases(
    files: TlsFiles, servers: SecureServers,
) -> Dict[str, Tuple[str, Dict[str, Any], str]]:
    """The cases of :data:`BAD_CERTIFICATES`: name -> (hosts, kazoo's
    ``use_ssl`` keyword arguments, what the failed TLS handshake says)."""
    good = tls_kwargs(files)
    no_cert = tls_kwargs(files, certfile=None, keyfile=None)
    return {
        "wrong CA": (servers.need.secure_address,
                     dict(good, ca=files.other_ca),
                     "self-signed certificate"),
        "expired server certificate": (
            servers.expired.secure_address, good,
            "certificate has expired"),
        "not yet valid server certificate": (
            servers.not_yet_valid.secure_address, good,
            "certificate is not yet valid"),
        "hostname mismatch": (
            servers.wrong_host.secure_address,
            dict(good, check_hostname=True),
            "IP address mismatch"),
        "no client certificate, TLS 1.2": (
            servers.need.secure_address, no_cert, "client certificate"),
        "no client certificate, TLS 1.3": (
            servers.tls13.secure_address, no_cert, "client certificate"),
        "client certificate of another CA": (
            servers.need.secure_address,
            dict(good, certfile=files.other_client_cert,
                 keyfile=files.other_client_key),
            "client certificate"),
    }
