"""SASL authentication of fastzk's client against real ZooKeeper servers.

Two servers of this module's own, started together: ``optional`` (SASL
DIGEST-MD5 user alice, anonymous sessions allowed) and ``required``
(``sessionRequireClientSASLAuth``); the shared ``zk_server`` has no SASL
at all.  A ``sasl:alice`` ACL shows which identity a session has.
"""

import logging
import sys
import threading
import time
import uuid
import warnings
from dataclasses import dataclass

import pytest
from kazoo.exceptions import (
    AuthFailedError,
    ConfigurationError,
    ConnectionClosedError,
    NoAuthError,
    SessionClosedRequireSaslError,
)
from kazoo.protocol.states import KazooState, KeeperState
from kazoo.security import make_acl

from fastzk import KazooClient
from fastzk.testing.proxy import TcpProxy
from fastzk.testing.zkserver import ServerSasl, ZooKeeperServer

USER, PASSWORD = "alice", "secret"
ALICE = {"mechanism": "DIGEST-MD5", "username": USER, "password": PASSWORD}
ALICE_ONLY = [make_acl("sasl", USER, all=True)]
START_TIMEOUT = 20.0
# A refused authentication ends start() at once, far below its timeout.
QUICK = 2.0


@dataclass
class SaslServers:
    optional: ZooKeeperServer
    required: ZooKeeperServer


@pytest.fixture(scope="module")
def sasl_servers(tmp_path_factory):
    users = {USER: PASSWORD}
    servers = SaslServers(
        optional=ZooKeeperServer(tmp_path_factory.mktemp("sasl-optional"),
                                 sasl=ServerSasl(users)),
        required=ZooKeeperServer(tmp_path_factory.mktemp("sasl-required"),
                                 sasl=ServerSasl(users, required=True)),
    )
    both = (servers.optional, servers.required)
    try:
        for server in both:
            server.start(wait=False)
        for server in both:
            server.wait_ready(90)
    except Exception as exc:
        for server in both:
            server.cleanup()
        pytest.fail("could not start the SASL servers: %s" % exc, pytrace=False)
    yield servers
    for server in both:
        server.cleanup()


@pytest.fixture
def node():
    return "/sasl-" + uuid.uuid4().hex


@pytest.fixture
def clients():
    """Makes clients (``make(hosts, **kwargs)``, not started); all are
    stopped and closed after the test."""
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


def alice_node(client, node, data=b"alice's"):
    client.create(node, data, acl=ALICE_ONLY)
    return node


def refused_start(client, exc_type):
    """Start ``client``, expecting ``exc_type`` quickly; returns it and the
    time it took."""
    started = time.monotonic()
    with pytest.raises(exc_type) as info:
        client.start(timeout=START_TIMEOUT)
    return info.value, time.monotonic() - started


# -- logging in ---------------------------------------------------------------

def test_digest_login_with_sasl_options(sasl_servers, clients, node):
    alice = clients(sasl_servers.optional.address, sasl_options=dict(ALICE))
    anonymous = clients(sasl_servers.optional.address)
    alice.start(timeout=START_TIMEOUT)
    anonymous.start(timeout=START_TIMEOUT)
    alice_node(alice, node)
    assert alice.get(node)[0] == b"alice's"
    with pytest.raises(NoAuthError):
        anonymous.get(node)


def test_digest_login_with_auth_data(sasl_servers, clients, node):
    with pytest.warns(DeprecationWarning, match="sasl_options") as record:
        alice = clients(sasl_servers.optional.address,
                        auth_data=[("sasl", "%s:%s" % (USER, PASSWORD)),
                                   ("digest", "bob:pw")])
    assert record[0].filename == __file__
    assert alice.auth_data == {("digest", "bob:pw")}
    alice.start(timeout=START_TIMEOUT)
    alice_node(alice, node)
    assert alice.get(node)[0] == b"alice's"


def test_connected_is_reported_after_sasl(sasl_servers, clients, node):
    # A listener that reads on CONNECTED already has alice's identity.
    owner = clients(sasl_servers.optional.address, sasl_options=dict(ALICE))
    owner.start(timeout=START_TIMEOUT)
    alice_node(owner, node)
    alice = clients(sasl_servers.optional.address, sasl_options=dict(ALICE))
    seen = []

    def listener(state):
        if state == KazooState.CONNECTED:
            threading.Thread(target=lambda: seen.append(alice.get(node)[0])).start()

    alice.add_listener(listener)
    alice.start(timeout=START_TIMEOUT)
    wait_for(lambda: seen)
    assert seen == [b"alice's"]


def test_sasl_is_redone_on_reconnect(sasl_servers, clients, node):
    proxy = TcpProxy("127.0.0.1", sasl_servers.optional.port).start()
    try:
        alice = clients(proxy.address, sasl_options=dict(ALICE))
        alice.start(timeout=START_TIMEOUT)
        alice_node(alice, node)
        session = alice.client_id[0]
        states = []
        alice.add_listener(states.append)
        proxy.cut()
        wait_for(lambda: KazooState.CONNECTED in states)
        assert alice.get(node)[0] == b"alice's"
        assert alice.client_id[0] == session
        assert proxy.connections_accepted == 2
        assert states == [KazooState.SUSPENDED, KazooState.CONNECTED]
    finally:
        proxy.close()


def test_sasl_is_redone_on_a_new_session(sasl_servers, clients, node):
    alice = clients(sasl_servers.optional.address, sasl_options=dict(ALICE))
    alice.start(timeout=START_TIMEOUT)
    alice_node(alice, node)
    session = alice.client_id[0]
    states = []
    alice.add_listener(states.append)
    alice._connection.expire_session()
    wait_for(lambda: states[-1:] == [KazooState.CONNECTED])
    assert KazooState.LOST in states
    assert alice.client_id[0] != session
    assert alice.get(node)[0] == b"alice's"


def test_locks_and_watches_on_a_sasl_session(sasl_servers, clients, node):
    proxy = TcpProxy("127.0.0.1", sasl_servers.optional.port).start()
    try:
        alice = clients(proxy.address, sasl_options=dict(ALICE),
                        default_acl=ALICE_ONLY)
        other = clients(sasl_servers.optional.address, sasl_options=dict(ALICE))
        alice.start(timeout=START_TIMEOUT)
        other.start(timeout=START_TIMEOUT)
        alice_node(alice, node, b"v0")
        lock = alice.Lock(node + "/lock", "alice")
        assert lock.acquire(timeout=5)
        assert not other.Lock(node + "/lock", "other").acquire(blocking=False)
        seen = []
        alice.DataWatch(node, lambda data, stat: seen.append(data))
        wait_for(lambda: seen == [b"v0"])
        proxy.cut()
        wait_for(lambda: alice.connected)
        other.set(node, b"v1")
        wait_for(lambda: seen == [b"v0", b"v1"])
        lock.release()
        assert other.Lock(node + "/lock", "other").acquire(blocking=False)
    finally:
        proxy.close()


# -- refusals -------------------------------------------------------------------

def test_wrong_password_fails_start_at_once(sasl_servers, clients, caplog,
                                            thread_errors):
    client = clients(sasl_servers.optional.address,
                     sasl_options=dict(ALICE, password="wrong"))
    states = []
    client.add_listener(states.append)
    with caplog.at_level(logging.WARNING):
        error, took = refused_start(client, AuthFailedError)
    assert took < QUICK
    assert "SASL DIGEST-MD5 authentication failed" in str(error)
    assert "'alice'" in str(error)
    # Never CONNECTED: the client stays LOST, as kazoo's AUTH_FAILED ends.
    assert states == []
    assert client.state == KazooState.LOST
    assert client.client_state == KeeperState.CLOSED
    warnings_logged = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings_logged) == 1
    assert "AUTH_FAILED" in warnings_logged[0].getMessage()
    assert thread_errors == []


def test_wrong_password_with_start_async(sasl_servers, clients):
    # kazoo's AUTH_FAILED ends the session thread; the client is CLOSED.
    client = clients(sasl_servers.optional.address,
                     sasl_options=dict(ALICE, password="wrong"))
    client.start_async()
    assert client._connection.connection_stopped.wait(QUICK)
    assert isinstance(client._connection.fatal_error, AuthFailedError)
    assert client.client_state == KeeperState.CLOSED
    with pytest.raises(ConnectionClosedError):
        client.get("/")


def test_unknown_user_fails_like_a_wrong_password(sasl_servers, clients):
    # Not alice's password: ZooKeeper 3.8's DIGEST-MD5 callback handler
    # keeps the last user it found, so an unknown user with the password
    # of the user authenticated before passes.
    client = clients(sasl_servers.optional.address,
                     sasl_options=dict(ALICE, username="mallory",
                                       password="mallory-pw"))
    error, took = refused_start(client, AuthFailedError)
    assert took < QUICK and "'mallory'" in str(error)


def test_sasl_against_a_server_without_sasl(zk_server, clients):
    # No JAAS Server section: the server answers with an empty token.
    client = clients(zk_server.address, sasl_options=dict(ALICE))
    error, took = refused_start(client, AuthFailedError)
    assert took < QUICK
    assert "SASL DIGEST-MD5 authentication failed" in str(error)
    assert "configured on the server" in str(error)


def test_required_server_with_sasl(sasl_servers, clients, node):
    alice = clients(sasl_servers.required.address, sasl_options=dict(ALICE))
    alice.start(timeout=START_TIMEOUT)
    alice_node(alice, node)
    assert alice.get(node)[0] == b"alice's"


def test_required_server_wrong_password(sasl_servers, clients):
    client = clients(sasl_servers.required.address,
                     sasl_options=dict(ALICE, password="wrong"))
    error, took = refused_start(client, SessionClosedRequireSaslError)
    assert took < QUICK
    assert "requires SASL" in str(error) and "'alice'" in str(error)


def test_required_server_without_sasl_options(sasl_servers, clients,
                                              thread_errors):
    proxy = TcpProxy("127.0.0.1", sasl_servers.required.port).start()
    try:
        client = clients(proxy.address)
        states = []
        client.add_listener(states.append)
        # The server says nothing until the first request.
        client.start(timeout=START_TIMEOUT)
        with pytest.raises(SessionClosedRequireSaslError,
                           match="requires SASL.*no sasl_options"):
            client.get("/")
        wait_for(lambda: client.client_state == KeeperState.CLOSED)
        wait_for(lambda: KazooState.LOST in states)  # the event thread
        assert states == [KazooState.CONNECTED, KazooState.LOST]
        time.sleep(0.5)
        assert proxy.connections_accepted == 1  # no reconnect loop
        assert thread_errors == []
    finally:
        proxy.close()


# -- configuration ----------------------------------------------------------------

@pytest.mark.parametrize("options, words", [
    ({"mechanism": "PLAIN", "username": "a", "password": "b"},
     "unknown SASL mechanism 'PLAIN'"),
    ({"mechanism": "CRAM-MD5", "username": "a", "password": "b"},
     "unknown SASL mechanism 'CRAM-MD5'"),
    ({"username": "a", "password": "b"}, "needs a 'mechanism'"),
    ({"mechanism": "DIGEST-MD5", "username": "a"}, "'password'"),
    ({"mechanism": "DIGEST-MD5", "username": "a", "password": "b",
      "realm": "x"}, "unknown sasl_options key"),
    ({"mechanism": "DIGEST-MD5", "username": "a", "password": "b",
      "qops": ["auth-conf"]}, "qops must include 'auth'"),
], ids=["PLAIN", "CRAM-MD5", "no mechanism", "no password", "unknown key",
        "security layer"])
def test_bad_sasl_options_fail_at_construction(options, words):
    with pytest.raises(ConfigurationError, match=words):
        KazooClient("127.0.0.1:1", sasl_options=options)


def test_gssapi_without_its_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gssapi", None)  # not installed
    with pytest.raises(ConfigurationError, match=r"fastzk\[gssapi\]"):
        KazooClient("127.0.0.1:1", sasl_options={"mechanism": "GSSAPI"})


def test_sasl_options_must_be_a_dict():
    with pytest.raises(ConfigurationError, match="must be a dict"):
        KazooClient("127.0.0.1:1", sasl_options=[("mechanism", "DIGEST-MD5")])


@pytest.mark.parametrize("auth_data, words", [
    ([("sasl", "nocolon")], "user:password"),
    ([("sasl", "a:b"), ("sasl", "c:d")], "Multiple SASL configurations"),
])
def test_bad_sasl_auth_data_fails_at_construction(auth_data, words):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ConfigurationError, match=words):
            KazooClient("127.0.0.1:1", auth_data=auth_data)


def test_sasl_auth_data_beside_sasl_options_is_refused():
    with pytest.raises(ConfigurationError, match="Multiple SASL"):
        KazooClient("127.0.0.1:1", sasl_options=dict(ALICE),
                    auth_data=[("sasl", "a:b")])


def test_sasl_password_may_hold_a_colon():
    with pytest.warns(DeprecationWarning):
        client = KazooClient("127.0.0.1:1", auth_data=[("sasl", "alice:se:cret")])
    assert client._sasl_options["password"] == "se:cret"
