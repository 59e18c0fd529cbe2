"""Tests of the test infrastructure itself, on real servers, with kazoo."""

import socket
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, NoNodeError
from kazoo.protocol.states import KazooState

from fastzk.testing.proxy import TcpProxy, reply_xid, request_opcode
from fastzk.testing.zkserver import (
    ZooKeeperServer,
    expire_session,
    find_zookeeper,
    free_port,
)

DELETE = 2


class States:
    """Records a kazoo client's state changes and waits for sequences."""

    def __init__(self, client):
        self.seen = []
        self._cond = threading.Condition()
        client.add_listener(self._listener)

    def _listener(self, state):
        with self._cond:
            self.seen.append(state)
            self._cond.notify_all()

    def wait_for(self, *states, timeout=30.0):
        """Wait until ``states`` occurred in this order (not necessarily
        adjacent) since the recorder was created."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                it = iter(self.seen)
                if all(any(s == want for s in it) for want in states):
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        "states %r not seen in %.0f s; saw %r"
                        % (states, timeout, self.seen)
                    )
                self._cond.wait(left)


def kazoo(hosts, **kwargs):
    kwargs.setdefault("timeout", 10.0)
    client = KazooClient(hosts=hosts, **kwargs)
    client.start(timeout=30)
    return client


def close(client):
    client.stop()
    client.close()


def wait_until(predicate, timeout=30.0, message="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("%s not reached in %.0f s" % (message, timeout))
        time.sleep(0.05)


# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------

def test_standalone_answers_and_zxid_grows(zk_server, kazoo_client):
    assert zk_server.running
    assert zk_server.mode() == "standalone"
    assert zk_server.command("ruok") == "imok"
    before = zk_server.zxid()
    kazoo_client.create("/node", b"data")
    assert zk_server.zxid() > before
    assert kazoo_client.get("/node")[0] == b"data"


def test_chroot_fixtures(zk_hosts, zk_proxy_hosts, zk_admin, kazoo_client):
    chroot = "/" + zk_hosts.split("/", 1)[1]
    assert zk_proxy_hosts.endswith(chroot)
    assert zk_admin.exists(chroot)
    kazoo_client.create("/inside", b"")
    assert zk_admin.exists(chroot + "/inside")


def test_private_server_restart_keeps_data(zk_server_factory):
    server = zk_server_factory()
    client = kazoo(server.address)
    try:
        client.create("/persist", b"1")
        zxid = server.zxid()
        server.kill()
        assert not server.running
        assert server.mode() is None
        server.start()
        assert server.zxid() >= zxid
        wait_until(lambda: client.connected, message="kazoo reconnect")
        assert client.get("/persist")[0] == b"1"
        server.restart()
        assert server.mode() == "standalone"
    finally:
        close(client)


def test_start_failure_is_loud(tmp_path):
    # The port is taken, so the JVM cannot bind it and exits.
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    server = ZooKeeperServer(tmp_path / "zk",
                             client_port=blocker.getsockname()[1])
    try:
        with pytest.raises(RuntimeError) as info:
            server.start(timeout=30)
        message = str(info.value)
        assert "zookeeper.log" in message or "zookeeper.out" in message
    finally:
        server.stop()
        blocker.close()


def test_missing_install_is_reported(monkeypatch):
    monkeypatch.setenv("FASTZK_ZOOKEEPER_JAR", "/nonexistent/zookeeper.jar")
    with pytest.raises(RuntimeError, match="ZooKeeper not installed"):
        find_zookeeper()


def test_free_port_never_repeats():
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)


@pytest.mark.ensemble
def test_ensemble_leader_and_follower_restart(zk_ensemble, zk_ensemble_hosts):
    modes = zk_ensemble.wait_ready()
    assert sorted(modes.values()) == ["follower", "follower", "leader"]
    leader = zk_ensemble.leader()
    assert leader.mode() == "leader"
    assert len(zk_ensemble.hosts.split(",")) == 3

    client = kazoo(zk_ensemble_hosts)
    try:
        client.create("/before", b"")
        follower = zk_ensemble.followers()[0]
        follower.kill()
        assert not follower.running
        # Two of three still form a quorum.
        zk_ensemble.wait_ready()
        client.create("/during", b"")
        zxid = zk_ensemble.zxid()

        follower.start()
        zk_ensemble.wait_ready()
        assert follower.mode() == "follower"
        wait_until(lambda: follower.zxid() >= zxid, message="follower sync")
        chroot = "/" + zk_ensemble_hosts.split("/", 1)[1]
        direct = kazoo(follower.address + chroot)
        try:
            assert direct.exists("/before") and direct.exists("/during")
        finally:
            close(direct)
    finally:
        close(client)


# ---------------------------------------------------------------------------
# Session expiry
# ---------------------------------------------------------------------------

def test_expire_session(zk_hosts, zk_server, zk_admin):
    client = kazoo(zk_hosts, timeout=10.0)
    chroot = "/" + zk_hosts.split("/", 1)[1]
    try:
        states = States(client)
        client.create("/eph", b"", ephemeral=True)
        session_id, passwd = client.client_id
        assert expire_session(zk_server.address, session_id, passwd)
        states.wait_for(KazooState.LOST, timeout=15)
        assert zk_admin.exists(chroot + "/eph") is None
        # An already expired session is reported as such.
        assert not expire_session(zk_server.address, session_id, passwd)
    finally:
        close(client)


# ---------------------------------------------------------------------------
# Proxy
# ---------------------------------------------------------------------------

def test_proxy_cut_suspends_then_reconnects(proxy, zk_proxy_hosts):
    client = kazoo(zk_proxy_hosts)
    try:
        states = States(client)
        client.create("/n", b"")
        session = client.client_id
        assert proxy.active_connections == 1
        assert proxy.cut() == 1
        states.wait_for(KazooState.SUSPENDED, KazooState.CONNECTED)
        assert client.client_id == session
        assert client.exists("/n")
        assert proxy.connections_accepted >= 2
    finally:
        close(client)


@pytest.mark.slow
def test_proxy_freeze_longer_than_session_expires_it(
    proxy, zk_proxy_hosts, zk_admin
):
    chroot = "/" + zk_proxy_hosts.split("/", 1)[1]
    client = kazoo(zk_proxy_hosts, timeout=2.0)
    try:
        states = States(client)
        client.create("/eph", b"", ephemeral=True)
        proxy.freeze()
        # The server expires the session on its own; its ephemeral goes.
        wait_until(lambda: zk_admin.exists(chroot + "/eph") is None,
                   timeout=15, message="server-side expiry")
        states.wait_for(KazooState.SUSPENDED)
        assert KazooState.LOST not in states.seen
        proxy.unfreeze()
        states.wait_for(KazooState.SUSPENDED, KazooState.LOST, timeout=15)
    finally:
        close(client)


def test_proxy_freeze_holds_then_delivers(proxy, zk_proxy_hosts):
    client = kazoo(zk_proxy_hosts, timeout=10.0)
    try:
        states = States(client)
        proxy.freeze()
        result = client.create_async("/held", b"x")
        time.sleep(0.5)
        assert not result.ready()
        proxy.unfreeze()
        assert result.get(timeout=10) == "/held"
        assert states.seen == []
    finally:
        close(client)


def test_proxy_reject_and_delay(proxy, zk_proxy_hosts):
    proxy.reject(True)
    client = KazooClient(hosts=zk_proxy_hosts, timeout=10.0)
    try:
        with pytest.raises(Exception):
            client.start(timeout=2)
        assert proxy.connections_accepted >= 1
        assert proxy.active_connections == 0
        proxy.reject(False)
        client.start(timeout=30)
        client.create("/d", b"")
        proxy.delay(0.3)
        started = time.monotonic()
        client.get("/d")
        assert time.monotonic() - started >= 0.55  # 0.3 s each way
        proxy.delay(0)
    finally:
        close(client)


def test_proxy_passes_four_letter_words(proxy):
    host, port = proxy.address.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"ruok")
        assert sock.recv(100) == b"imok"


def test_proxy_set_target(zk_server, zk_server_factory):
    other = zk_server_factory()
    with TcpProxy("127.0.0.1", zk_server.port) as p:
        a = kazoo(p.address)
        a.create("/on-first", b"")
        p.set_target("127.0.0.1", other.port)
        b = kazoo(p.address)
        try:
            assert b.exists("/on-first") is None
            assert a.exists("/on-first")
        finally:
            close(a)
            close(b)


def test_cut_on_request_before_the_server_runs_it(proxy, zk_proxy_hosts):
    client = kazoo(zk_proxy_hosts)
    try:
        states = States(client)
        client.create("/victim", b"")
        hook = proxy.cut_on_request(lambda body: request_opcode(body) == DELETE)
        with pytest.raises(ConnectionLoss):
            client.delete("/victim")
        assert hook.wait(5)
        assert request_opcode(hook.frame) == DELETE
        states.wait_for(KazooState.SUSPENDED, KazooState.CONNECTED)
        assert client.exists("/victim")
        # One-shot: the next delete goes through.
        client.delete("/victim")
        assert client.exists("/victim") is None
    finally:
        close(client)


def test_cut_on_reply_after_the_server_ran_it(proxy, zk_proxy_hosts):
    client = kazoo(zk_proxy_hosts)
    try:
        states = States(client)
        client.create("/victim", b"")
        # The delete is the only request in flight; pings have xid -2.
        hook = proxy.cut_on_reply(lambda body: reply_xid(body) >= 0)
        with pytest.raises(ConnectionLoss):
            client.delete("/victim")
        assert hook.wait(5)
        states.wait_for(KazooState.SUSPENDED, KazooState.CONNECTED)
        with pytest.raises(NoNodeError):
            client.get("/victim")
    finally:
        close(client)


def test_cut_on_reply_to(proxy, zk_proxy_hosts):
    client = kazoo(zk_proxy_hosts)
    try:
        client.create("/a", b"")
        client.create("/b", b"")
        hook = proxy.cut_on_reply_to(
            lambda body: request_opcode(body) == DELETE)
        with pytest.raises(ConnectionLoss):
            client.delete("/a")
        assert hook.wait(5)
        wait_until(lambda: client.connected, message="reconnect")
        assert client.exists("/a") is None
        client.delete("/b")
    finally:
        close(client)


def test_proxy_close_joins_threads(zk_server):
    p = TcpProxy("127.0.0.1", zk_server.port).start()
    clients = [kazoo(p.address) for _ in range(3)]
    try:
        proxy_threads = [t for t in threading.enumerate()
                         if t.name.startswith("TcpProxy")]
        assert len(proxy_threads) == 4  # accept + one per connection
        p.close()
        assert not [t for t in threading.enumerate()
                    if t.name.startswith("TcpProxy")]
    finally:
        for c in clients:
            close(c)


def test_bench_warm_up_sends_every_kind_and_leaves_nothing(zk_server,
                                                          kazoo_client):
    from fastzk.bench import warm_up

    before = zk_server.zxid()
    took = warm_up(zk_server.address, requests=2000)
    assert took > 0
    # Per 1,000: 1,000 creates, sets and deletes (plus the set-up writes).
    assert zk_server.zxid() - before >= 6000
    assert kazoo_client.exists("/fastzk-warmup") is None
