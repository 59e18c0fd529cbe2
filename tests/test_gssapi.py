"""SASL GSSAPI (Kerberos V5) against a real KDC and a real ZooKeeper.

The module starts its own Kerberos realm (:mod:`fastzk.testing.kdc`, MIT
Kerberos' ``krb5kdc``) with the principals ``zookeeper/localhost``,
``zookeeper/127.0.0.1``, ``alice`` and ``bob``, and ZooKeeper servers
that log in from a service keytab
(:class:`~fastzk.testing.zkserver.ServerKerberos`): one that allows
anonymous sessions, one that requires SASL, and one whose keytab holds a
key the KDC has since changed.  A client finds its credentials through
the environment, as a user's process would: ``KRB5_CONFIG`` names the realm, ``KRB5_CLIENT_KTNAME`` a
client keytab from which MIT Kerberos gets the initial ticket, or
``KRB5CCNAME`` a credential cache filled by ``kinit -k -t``.  Clients
connect to ``localhost``: the server principal a client asks a ticket
for is ``zookeeper/<the host it connects to>``.

When the Kerberos tools are missing or the KDC does not start, every test
here fails with the reason; nothing is skipped.
"""

import os
import subprocess
import sys
import threading
import time
import uuid

import pytest
from kazoo.exceptions import (
    AuthFailedError,
    ConfigurationError,
    NoAuthError,
    SessionClosedRequireSaslError,
)
from kazoo.protocol.states import KazooState
from kazoo.security import make_acl

from fastzk import KazooClient
from fastzk.testing import kdc
from fastzk.testing.kdc import KerberosRealm
from fastzk.testing.proxy import TcpProxy
from fastzk.testing.zkserver import ServerKerberos, ZooKeeperServer

REALM = "FASTZK.TEST"
ALICE = "alice@" + REALM
BOB = "bob@" + REALM
SERVICE_PRINCIPAL = "zookeeper/localhost@" + REALM
# The principal of a server reached as 127.0.0.1, whose key changes in the
# KDC after the server read its keytab.
STALE_PRINCIPAL = "zookeeper/127.0.0.1@" + REALM
START_TIMEOUT = 20.0
# A refused authentication ends start() at once, far below its timeout.
QUICK = 3.0


def gssapi_options(principal=ALICE, **extra):
    """kazoo 2.11's ``sasl_options`` for GSSAPI."""
    options = {"mechanism": "GSSAPI", "service": "zookeeper", "principal": principal}
    options.update(extra)
    return options


@pytest.fixture(scope="module")
def realm(tmp_path_factory):
    realm = KerberosRealm(REALM, base_dir=str(tmp_path_factory.mktemp("kdc")))
    try:
        realm.start()
        realm.add_service("zookeeper", "localhost")
        realm.add_principal("alice")
        realm.add_principal("bob")
        realm.add_service("zookeeper", "127.0.0.1")
    except Exception as exc:
        realm.cleanup()
        pytest.fail("could not start the Kerberos realm: %s" % exc, pytrace=False)
    yield realm
    realm.cleanup()


def kerberos_zookeeper(realm, directory, principal=SERVICE_PRINCIPAL, **kwargs):
    server = ZooKeeperServer(
        str(directory),
        sasl=ServerKerberos(realm.keytab(principal), principal, realm.krb5_conf, **kwargs))
    try:
        server.start(timeout=90)
    except Exception as exc:
        server.cleanup()
        pytest.fail("could not start a Kerberos ZooKeeper server: %s" % exc, pytrace=False)
    return server


@pytest.fixture(scope="module")
def kerberos_server(realm, tmp_path_factory):
    server = kerberos_zookeeper(realm, tmp_path_factory.mktemp("zk-kerberos"))
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def required_server(realm, tmp_path_factory):
    """A server that closes every session without SASL authentication."""
    server = kerberos_zookeeper(realm, tmp_path_factory.mktemp("zk-required"),
                                required=True)
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def stale_server(realm, tmp_path_factory):
    """A server whose keytab holds an outdated key of its principal."""
    server = kerberos_zookeeper(realm, tmp_path_factory.mktemp("zk-stale"),
                                STALE_PRINCIPAL)
    realm.change_key(STALE_PRINCIPAL)
    yield server
    server.cleanup()


def localhost(port):
    return "localhost:%d" % port


@pytest.fixture
def as_user(realm, monkeypatch, tmp_path):
    """``as_user(principal)`` points this process' Kerberos environment at
    ``principal``'s keytab (None: no credentials at all), each with a
    fresh credential cache."""

    def use(principal):
        name = principal.split("@")[0] if principal else "nobody"
        env = realm.client_environment(
            principal, ccache=str(tmp_path / ("ccache-%s-%s" % (name, uuid.uuid4().hex))))
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return env

    return use


@pytest.fixture
def clients():
    made = []

    def make(hosts, **kwargs):
        client = KazooClient(hosts, timeout=kwargs.pop("timeout", 10.0), **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.stop()
        client.close()


@pytest.fixture
def node():
    return "/gssapi-" + uuid.uuid4().hex


@pytest.fixture
def thread_errors(monkeypatch):
    """Exceptions that escaped any thread during the test."""
    errors = []
    monkeypatch.setattr(threading, "excepthook", errors.append)
    return errors


def wait_for(condition, timeout=START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def alice_only():
    return [make_acl("sasl", ALICE, all=True)]


def refused_start(client, exc_type=AuthFailedError):
    started = time.monotonic()
    with pytest.raises(exc_type) as info:
        client.start(timeout=START_TIMEOUT)
    return info.value, time.monotonic() - started


# -- logging in ---------------------------------------------------------------

def test_gssapi_login_from_a_client_keytab(kerberos_server, as_user, clients, node):
    as_user(ALICE)
    alice = clients(localhost(kerberos_server.port), sasl_options=gssapi_options())
    alice.start(timeout=START_TIMEOUT)
    alice.create(node, b"alice's", acl=alice_only())
    assert alice.get(node)[0] == b"alice's"
    assert alice.get_acls(node)[0] == alice_only()
    anonymous = clients(localhost(kerberos_server.port))
    anonymous.start(timeout=START_TIMEOUT)
    with pytest.raises(NoAuthError):
        anonymous.get(node)


def test_gssapi_login_from_a_kinit_cache(realm, kerberos_server, as_user, clients,
                                         node, tmp_path):
    env = as_user(None)  # no client keytab: only the cache holds a ticket
    ccache = env["KRB5CCNAME"][len("FILE:"):]
    realm.kinit(ALICE, ccache)
    alice = clients(localhost(kerberos_server.port), sasl_options=gssapi_options())
    alice.start(timeout=START_TIMEOUT)
    alice.create(node, b"from the cache", acl=alice_only())
    assert alice.get(node)[0] == b"from the cache"


def test_another_principal_is_refused_by_the_acl(kerberos_server, as_user, clients,
                                                 node):
    as_user(ALICE)
    alice = clients(localhost(kerberos_server.port), sasl_options=gssapi_options())
    alice.start(timeout=START_TIMEOUT)
    alice.create(node, b"alice's", acl=alice_only())
    alice.stop()
    as_user(BOB)
    bob = clients(localhost(kerberos_server.port), sasl_options=gssapi_options(BOB))
    bob.start(timeout=START_TIMEOUT)
    with pytest.raises(NoAuthError):
        bob.get(node)
    bob.create(node + "-bob", b"bob's", acl=[make_acl("sasl", BOB, all=True)])
    assert bob.get(node + "-bob")[0] == b"bob's"


def test_gssapi_is_redone_on_reconnect(kerberos_server, as_user, clients, node):
    as_user(ALICE)
    proxy = TcpProxy("127.0.0.1", kerberos_server.port).start()
    try:
        alice = clients(localhost(proxy.port), sasl_options=gssapi_options())
        alice.start(timeout=START_TIMEOUT)
        alice.create(node, b"alice's", acl=alice_only())
        session = alice.client_id[0]
        states = []
        alice.add_listener(states.append)
        proxy.cut()
        wait_for(lambda: KazooState.CONNECTED in states)
        # The identity belongs to the connection: the read succeeds only if
        # the new connection authenticated again.
        assert alice.get(node)[0] == b"alice's"
        assert alice.client_id[0] == session
        assert proxy.connections_accepted == 2
        assert states == [KazooState.SUSPENDED, KazooState.CONNECTED]
    finally:
        proxy.close()


# -- failures -----------------------------------------------------------------

def test_no_credentials_fails_start_at_once(kerberos_server, as_user, clients,
                                            thread_errors):
    as_user(None)
    client = clients(localhost(kerberos_server.port), sasl_options=gssapi_options())
    exc, took = refused_start(client)
    assert took < QUICK, took
    message = str(exc)
    assert "GSSAPI" in message and ALICE in message, message
    assert "credential" in message.lower(), message
    assert not client.connected
    assert thread_errors == []


def test_unknown_principal_fails_start_at_once(kerberos_server, as_user, clients,
                                               thread_errors):
    as_user(ALICE)  # the keytab holds alice only
    mallory = "mallory@" + REALM
    client = clients(localhost(kerberos_server.port),
                     sasl_options=gssapi_options(mallory))
    exc, took = refused_start(client)
    assert took < QUICK, took
    message = str(exc)
    assert "GSSAPI" in message and mallory in message, message
    assert thread_errors == []


def test_unknown_server_principal_fails_start_at_once(kerberos_server, as_user,
                                                      clients, thread_errors):
    as_user(ALICE)
    client = clients(localhost(kerberos_server.port),
                     sasl_options=gssapi_options(service="nosuchservice"))
    exc, took = refused_start(client)
    assert took < QUICK, took
    message = str(exc)
    assert "GSSAPI" in message and "nosuchservice/localhost" in message, message
    assert thread_errors == []


def test_a_server_with_a_stale_keytab_refuses_at_once(stale_server, as_user, clients,
                                                     thread_errors):
    as_user(ALICE)
    client = clients("127.0.0.1:%d" % stale_server.port, sasl_options=gssapi_options())
    exc, took = refused_start(client)
    assert took < QUICK, took
    message = str(exc)
    assert "SASL GSSAPI authentication failed" in message and ALICE in message, message
    assert thread_errors == []


def test_a_server_requiring_sasl(required_server, as_user, clients, node):
    as_user(ALICE)
    alice = clients(localhost(required_server.port), sasl_options=gssapi_options())
    alice.start(timeout=START_TIMEOUT)
    alice.create(node, b"alice's", acl=alice_only())
    assert alice.get(node)[0] == b"alice's"
    anonymous = clients(localhost(required_server.port))
    anonymous.start(timeout=START_TIMEOUT)  # the server waits for a request
    with pytest.raises(SessionClosedRequireSaslError, match="requires SASL"):
        anonymous.get(node)


def test_gssapi_without_the_package_names_the_extra(tmp_path):
    # A child process whose import of gssapi fails, as on an installation
    # without the extra.
    blocker = tmp_path / "gssapi.py"
    blocker.write_text("raise ImportError('gssapi is not installed here')\n")
    code = (
        "from fastzk import KazooClient\n"
        "from kazoo.exceptions import ConfigurationError\n"
        "try:\n"
        "    KazooClient('localhost:1', sasl_options={'mechanism': 'GSSAPI'})\n"
        "except ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), os.getcwd()])
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "pip install 'fastzk[gssapi]'" in done.stdout, done.stdout
    assert ConfigurationError  # the exception the child caught


# -- the realm itself -----------------------------------------------------------

def test_a_realm_without_the_kerberos_tools_fails_loudly(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(kdc, "_SEARCH_PATH", ())
    realm = KerberosRealm(base_dir=str(tmp_path / "realm"))
    with pytest.raises(RuntimeError, match=r"krb5kdc not found.*make kerberos"):
        realm.start()
    assert not realm.running


def test_a_realm_stops_its_kdc(tmp_path):
    with KerberosRealm("STOP.TEST", base_dir=str(tmp_path / "realm")) as realm:
        proc = realm._proc
        assert proc is not None and realm.running
        realm.add_principal("carol")
        assert os.path.getsize(realm.keytab("carol")) > 0
    assert proc.poll() is not None
    assert not realm.running
