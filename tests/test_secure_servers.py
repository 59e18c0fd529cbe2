"""The secure test servers, proven with kazoo 2.11 as the client.

TLS on a secure client port beside the plain one (TLS 1.2 and 1.3, client
certificates needed, wanted or not asked for), a TLS ensemble, SASL
DIGEST-MD5 with a ``sasl:`` ACL; and every bad certificate, seen at the
TLS layer (what exactly goes wrong) and by kazoo (a connect timeout).
"""

import os
import ssl
import sys
import time
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    AuthFailedError,
    NoAuthError,
    SessionClosedRequireSaslError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState
from kazoo.security import make_acl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _secure import (  # noqa: E402, F401 (fixtures)
    BAD_CERTIFICATES,
    SASL_PASSWORD,
    SASL_USER,
    bad_certificate_cases,
    client_context,
    four_letter_word_over_tls,
    secure_servers,
    tls_connect,
    tls_ensemble,
    tls_files,
    tls_kwargs,
)
from fastzk.testing.certs import CertificateAuthority  # noqa: E402
from fastzk.testing.zkserver import ServerSasl, ServerTls  # noqa: E402

START_TIMEOUT = 20.0
# kazoo retries a failing TLS connection until start() times out: a short
# timeout keeps each failure case at about a second.
FAILING_START_TIMEOUT = 1.0
ALICE = {"mechanism": "DIGEST-MD5", "username": SASL_USER,
         "password": SASL_PASSWORD}


def _started(hosts, **kwargs):
    client = KazooClient(hosts=hosts, timeout=10.0, **kwargs)
    client.start(timeout=START_TIMEOUT)
    return client


def _close(client):
    try:
        client.stop()
    finally:
        client.close()


@pytest.fixture
def node():
    return "/secure-" + uuid.uuid4().hex


def _socket_version(client):
    return client._connection._socket.version()


# ---------------------------------------------------------------------------
# Configuration objects
# ---------------------------------------------------------------------------

def test_server_tls_config_sets_pem_stores_and_tls13_together(tls_files):
    tls12 = ServerTls(tls_files.server_pem, tls_files.ca).config()
    tls13 = ServerTls(tls_files.server_pem, tls_files.ca,
                      protocol="TLSv1.3", client_auth="want").config()
    assert tls12["ssl.keyStore.type"] == tls12["ssl.trustStore.type"] == "PEM"
    assert tls12["ssl.clientAuth"] == "need"
    assert "ssl.protocol" not in tls12
    assert tls13["ssl.protocol"] == tls13["ssl.enabledProtocols"] == "TLSv1.3"
    assert tls13["ssl.ciphersuites"].startswith("TLS_AES_")
    assert tls13["ssl.clientAuth"] == "want"


@pytest.mark.parametrize("kwargs", [
    {"client_auth": "required"},
    {"protocol": "TLSv1.1"},
    {"keystore": "/nonexistent/server.pem"},
])
def test_server_tls_rejects_bad_settings(tls_files, kwargs):
    settings = dict(keystore=tls_files.server_pem, truststore=tls_files.ca)
    settings.update(kwargs)
    with pytest.raises(ValueError):
        ServerTls(**settings)


def test_server_sasl_writes_a_digest_jaas_section():
    sasl = ServerSasl({"alice": "secret", "bob": "pw2"}, required=True)
    jaas = sasl.jaas()
    assert jaas.startswith("Server {")
    assert "org.apache.zookeeper.server.auth.DigestLoginModule required" in jaas
    assert 'user_alice="secret"' in jaas and 'user_bob="pw2"' in jaas
    assert sasl.config()["sessionRequireClientSASLAuth"] == "true"
    assert "sessionRequireClientSASLAuth" not in ServerSasl(
        {"alice": "x"}).config()
    with pytest.raises(ValueError):
        ServerSasl({'al"ice': "x"})


def test_certificate_authority_issues_chains_that_verify(tmp_path):
    ca = CertificateAuthority("a CA")
    leaf = ca.issue("leaf", hosts=["127.0.0.1", "localhost"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    pem = leaf.write_key_and_chain(str(tmp_path / "leaf.pem"))
    context.load_cert_chain(pem)
    with open(pem, "rb") as f:
        text = f.read()
    assert text.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert text.count(b"BEGIN CERTIFICATE") == 2
    assert leaf.subject == "CN=leaf,O=fastzk tests"


# ---------------------------------------------------------------------------
# TLS servers with kazoo
# ---------------------------------------------------------------------------

def test_tls_need_with_client_cert_create_and_get(secure_servers, tls_files,
                                                  node):
    client = _started(secure_servers.need.secure_address,
                      **tls_kwargs(tls_files, check_hostname=True))
    try:
        client.create(node, b"over tls")
        assert client.get(node)[0] == b"over tls"
        assert _socket_version(client) == "TLSv1.2"
    finally:
        _close(client)


def test_plain_port_serves_beside_the_secure_one(secure_servers, tls_files,
                                                 node):
    server = secure_servers.need
    secure = _started(server.secure_address, **tls_kwargs(tls_files))
    plain = _started(server.address)
    try:
        secure.create(node, b"both ports")
        assert plain.get(node)[0] == b"both ports"
        assert not hasattr(plain._connection._socket, "version")
    finally:
        _close(secure)
        _close(plain)


def test_client_certificate_is_an_x509_identity(secure_servers, tls_files,
                                                node):
    server = secure_servers.need
    acl = [make_acl("x509", tls_files.client_subject, all=True)]
    secure = _started(server.secure_address, **tls_kwargs(tls_files))
    plain = _started(server.address)
    try:
        secure.create(node, b"cert only", acl=acl)
        assert secure.get(node)[0] == b"cert only"
        with pytest.raises(NoAuthError):
            plain.get(node)
    finally:
        _close(secure)
        _close(plain)


def test_client_auth_none_needs_no_client_certificate(secure_servers,
                                                      tls_files, node):
    client = _started(secure_servers.open.secure_address,
                      **tls_kwargs(tls_files, certfile=None, keyfile=None,
                                    check_hostname=True))
    try:
        client.create(node, b"no cert")
        assert client.get(node)[0] == b"no cert"
    finally:
        _close(client)


@pytest.mark.parametrize("with_cert", [True, False])
def test_client_auth_want_takes_a_certificate_or_none(secure_servers,
                                                      tls_files, with_cert):
    # The wrong-host server's certificate is valid for everything but the
    # host name, which kazoo does not check by default.
    kwargs = {} if with_cert else {"certfile": None, "keyfile": None}
    client = _started(secure_servers.wrong_host.secure_address,
                      **tls_kwargs(tls_files, **kwargs))
    try:
        assert client.exists("/") is not None
    finally:
        _close(client)


def test_tls13_server(secure_servers, tls_files, node):
    client = _started(secure_servers.tls13.secure_address,
                      sasl_options=dict(ALICE), **tls_kwargs(tls_files))
    try:
        client.create(node, b"tls 1.3")
        assert client.get(node)[0] == b"tls 1.3"
        assert _socket_version(client) == "TLSv1.3"
    finally:
        _close(client)


def test_default_server_speaks_tls12_only(secure_servers, tls_files):
    context = client_context(tls_files)
    with tls_connect(secure_servers.need.secure_address, context) as conn:
        assert conn.version() == "TLSv1.2"
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    with pytest.raises(ssl.SSLError):
        tls_connect(secure_servers.need.secure_address, context).close()


def test_tls13_server_refuses_tls12(secure_servers, tls_files):
    context = client_context(tls_files)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        tls_connect(secure_servers.tls13.secure_address, context).close()


def test_four_letter_words_answer_over_tls(secure_servers, tls_files):
    answer = four_letter_word_over_tls(secure_servers.need.secure_address,
                                       client_context(tls_files))
    assert answer == b"imok"


# ---------------------------------------------------------------------------
# The TLS ensemble
# ---------------------------------------------------------------------------

def test_tls_ensemble_every_member_over_tls(tls_ensemble, tls_files, node):
    writer = _started(tls_ensemble.secure_hosts, **tls_kwargs(tls_files))
    try:
        writer.create(node, b"replicated")
        for member in tls_ensemble.servers:
            reader = _started(member.secure_address, **tls_kwargs(tls_files))
            try:
                reader.sync(node)
                assert reader.get(node)[0] == b"replicated"
            finally:
                _close(reader)
    finally:
        _close(writer)


def test_tls_ensemble_failover(tls_ensemble, tls_files, node):
    client = _started(tls_ensemble.secure_hosts, **tls_kwargs(tls_files))
    try:
        client.create(node, b"before failover")
        port = client._connection._socket.getpeername()[1]
        member = next(m for m in tls_ensemble.servers
                      if m.secure_port == port)
        member.kill()
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                try:
                    value = client.get(node)[0]
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            assert value == b"before failover"
            assert client._connection._socket.getpeername()[1] != port
            assert _socket_version(client) == "TLSv1.2"
        finally:
            member.start(wait=False)
            tls_ensemble.wait_ready()
    finally:
        _close(client)


# ---------------------------------------------------------------------------
# SASL
# ---------------------------------------------------------------------------

def test_sasl_acl_readable_by_alice_only(secure_servers, node):
    server = secure_servers.need
    alice = _started(server.address, sasl_options=dict(ALICE))
    anonymous = _started(server.address)
    try:
        alice.create(node, b"alice's",
                     acl=[make_acl("sasl", SASL_USER, all=True)])
        assert alice.get(node)[0] == b"alice's"
        with pytest.raises(NoAuthError):
            anonymous.get(node)
    finally:
        _close(alice)
        _close(anonymous)


def test_sasl_over_tls(secure_servers, tls_files, node):
    server = secure_servers.need
    alice = _started(server.secure_address, sasl_options=dict(ALICE),
                     **tls_kwargs(tls_files))
    try:
        alice.create(node, b"", acl=[make_acl("sasl", SASL_USER, all=True)])
        assert alice.get(node)[0] == b""
    finally:
        _close(alice)


@pytest.mark.parametrize("options", [
    {"password": "wrong"},
    {"mechanism": "CRAM-MD5"},  # not offered by the server
], ids=["wrong password", "mechanism not offered"])
def test_sasl_failure_connects_then_fails(secure_servers, options):
    # kazoo reports CONNECTED before the SASL exchange fails, and the
    # session is then LOST. Its start() races that failure: when the failure
    # lands before start() looks at the state, start() says only
    # "Connection time-out"; otherwise the first request fails.
    states = []
    client = KazooClient(secure_servers.need.address,
                         sasl_options=dict(ALICE, **options))
    client.add_listener(states.append)
    try:
        try:
            client.start(timeout=START_TIMEOUT)
        except KazooTimeoutError:
            pass
        else:
            with pytest.raises(AuthFailedError):
                client.get("/")
        assert states[0] == KazooState.CONNECTED
        deadline = time.monotonic() + START_TIMEOUT
        while KazooState.LOST not in states and time.monotonic() < deadline:
            time.sleep(0.05)
        assert states == [KazooState.CONNECTED, KazooState.LOST]
    finally:
        _close(client)


def test_sasl_required_closes_sessions_without_sasl(secure_servers,
                                                    tls_files):
    client = KazooClient(secure_servers.tls13.secure_address,
                         **tls_kwargs(tls_files))
    try:
        client.start(timeout=START_TIMEOUT)
        with pytest.raises(SessionClosedRequireSaslError):
            client.get("/")
    finally:
        _close(client)


# ---------------------------------------------------------------------------
# Bad certificates and mismatched ports
# ---------------------------------------------------------------------------

def _handshake_error(server, files, **kwargs):
    """Handshake (and one read, where a TLS 1.3 server refuses) and return
    the SSLError."""
    context = client_context(files, **kwargs)
    try:
        with tls_connect(server.secure_address, context) as conn:
            conn.sendall(b"ruok")
            conn.recv(16)
    except ssl.SSLError as exc:
        return exc
    pytest.fail("TLS to %s succeeded" % server.secure_address)


@pytest.mark.parametrize("server_name, kwargs, reason", [
    ("need", {"ca": "other_ca"}, "self-signed certificate in certificate "
                                 "chain"),
    ("expired", {}, "certificate has expired"),
    ("not_yet_valid", {}, "certificate is not yet valid"),
    ("wrong_host", {"check_hostname": True}, "IP address mismatch"),
])
def test_bad_server_certificates_fail_verification(secure_servers, tls_files,
                                                   server_name, kwargs,
                                                   reason):
    if kwargs.get("ca") == "other_ca":
        kwargs = dict(kwargs, ca=tls_files.other_ca)
    error = _handshake_error(getattr(secure_servers, server_name), tls_files,
                             **kwargs)
    assert isinstance(error, ssl.SSLCertVerificationError)
    assert reason in error.verify_message


@pytest.mark.parametrize("server_name", ["need", "tls13"])
def test_need_refuses_a_client_without_certificate(secure_servers, tls_files,
                                                   server_name):
    error = _handshake_error(getattr(secure_servers, server_name), tls_files,
                             cert=False)
    assert "BAD_CERTIFICATE" in str(error)


def test_need_refuses_a_client_certificate_of_another_ca(secure_servers,
                                                         tls_files):
    context = client_context(tls_files, cert=False)
    context.load_cert_chain(tls_files.other_client_cert,
                            tls_files.other_client_key)
    with pytest.raises(ssl.SSLError, match="CERTIFICATE_UNKNOWN"):
        with tls_connect(secure_servers.need.secure_address, context) as c:
            c.sendall(b"ruok")
            c.recv(16)


def test_encrypted_client_key_needs_its_password(tls_files):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_cert_chain(tls_files.client_cert,
                            tls_files.client_key_encrypted,
                            password=tls_files.client_key_password)
    with pytest.raises(ssl.SSLError):
        context.load_cert_chain(tls_files.client_cert,
                                tls_files.client_key_encrypted,
                                password="wrong")


def test_tls_on_the_plain_port_fails(secure_servers, tls_files):
    context = client_context(tls_files)
    host, port = secure_servers.need.host, secure_servers.need.port
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_connect("%s:%d" % (host, port), context).close()


def _kazoo_failing_cases(files, servers):
    good = tls_kwargs(files)
    cases = {name: (hosts, kwargs) for name, (hosts, kwargs, _) in
             bad_certificate_cases(files, servers).items()}
    cases.update({
        "encrypted key, wrong password": (
            servers.need.secure_address,
            dict(good, keyfile=files.client_key_encrypted,
                 keyfile_password="wrong")),
        "TLS client on the plain port": (servers.need.address, good),
        "plain client on the TLS port": (servers.need.secure_address, {}),
    })
    return cases


KAZOO_FAILURES = BAD_CERTIFICATES + [
    "encrypted key, wrong password",
    "TLS client on the plain port",
    "plain client on the TLS port",
]


@pytest.mark.parametrize("case", KAZOO_FAILURES)
def test_kazoo_reports_tls_failures_as_a_connect_timeout(secure_servers,
                                                         tls_files, case):
    hosts, kwargs = _kazoo_failing_cases(tls_files, secure_servers)[case]
    client = KazooClient(hosts=hosts, **kwargs)
    try:
        with pytest.raises(KazooTimeoutError):
            client.start(timeout=FAILING_START_TIMEOUT)
    finally:
        _close(client)
