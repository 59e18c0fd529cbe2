"""Shared fixtures: real ZooKeeper servers, chroots, proxies, kazoo clients.

Tests never mock ZooKeeper.  When a server cannot be started the fixture
fails (every test that needs it errors with the reason); nothing is skipped.
"""

import os
import random
import sys
import uuid

import kazoo.protocol.connection
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fastzk.testing.proxy import TcpProxy  # noqa: E402
from fastzk.testing.zkserver import (  # noqa: E402
    ZooKeeperEnsemble,
    ZooKeeperServer,
    find_zookeeper,
    zookeeper_version,
)

KAZOO_START_TIMEOUT = 30.0

# Hypothesis warns when the global random state moves while it draws an
# example.  The connection thread of every kazoo client here (the
# observers the fixtures make, alive across tests) draws its ping jitter
# from the global random module in the background, so kazoo's connection
# module gets a generator of its own.
kazoo.protocol.connection.random = random.Random()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: takes several seconds (session expiry, restarts)"
    )
    config.addinivalue_line(
        "markers", "ensemble: uses the 3-server ZooKeeper ensemble"
    )


def pytest_report_header(config):
    try:
        find_zookeeper()
        zk = "ZooKeeper %s (%s)" % (
            zookeeper_version() or "unknown version",
            os.environ.get("FASTZK_ZOOKEEPER_JAR",
                           "/usr/share/java/zookeeper.jar"),
        )
    except RuntimeError as exc:
        zk = "ZooKeeper: %s" % exc
    try:
        import fastzk

        core = "fastzk compiled core: %s" % (
            "active" if getattr(fastzk, "EXTENSIONS", False) else "NOT active",
        )
        if not isinstance(getattr(fastzk, "EXTENSIONS", None), bool):
            core += " (EXTENSIONS=%r)" % (getattr(fastzk, "EXTENSIONS", None),)
    except Exception as exc:  # the package may be mid-rewrite
        core = "fastzk compiled core: unknown (import failed: %r)" % (exc,)
    return [zk, core]


def _fail_start(what, exc):
    __tracebackhide__ = True
    pytest.fail("could not start %s: %s" % (what, exc), pytrace=False)


def _start(what, start, cleanup=None):
    """Run ``start()``; on any error run ``cleanup()`` and fail the test
    with the reason (never skip)."""
    __tracebackhide__ = True
    error = None
    try:
        return start()
    except Exception as exc:
        error = exc
        if cleanup is not None:
            cleanup()
    _fail_start(what, error)


def _kazoo(hosts, **kwargs):
    from kazoo.client import KazooClient

    kwargs.setdefault("timeout", 10.0)
    client = KazooClient(hosts=hosts, **kwargs)
    client.start(timeout=KAZOO_START_TIMEOUT)
    return client


def _close_kazoo(client):
    try:
        client.stop()
    finally:
        client.close()


def _new_chroot(admin):
    path = "/t-" + uuid.uuid4().hex
    admin.create(path, b"")
    return path


def _drop_chroot(admin, path):
    if not admin.connected:
        return
    try:
        admin.delete(path, recursive=True)
    except Exception:
        pass  # best effort: a test may leave a session's ephemerals behind


# ---------------------------------------------------------------------------
# Standalone server
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def zk_server(tmp_path_factory):
    """ZooKeeperServer: one standalone server for the whole session
    (tickTime 500 ms, sessions 1 s to 60 s).  Do not stop it in a test;
    use ``zk_server_factory`` for a server of your own."""
    server = ZooKeeperServer(tmp_path_factory.mktemp("zk-standalone"))
    _start("the ZooKeeper server", lambda: server.start(timeout=60),
           server.stop)
    yield server
    server.stop()


def _ensure_running(server):
    if not server.running:
        # A test stopped the shared server: bring it back for the others.
        _start("the ZooKeeper server again",
               lambda: server.start(timeout=60), server.stop)


@pytest.fixture(scope="session")
def zk_admin(zk_server):
    """KazooClient connected to ``zk_server`` without chroot (session-wide;
    used to create and remove chroots, handy for checking server state)."""
    client = _start("a kazoo client on %s" % zk_server.address,
                    lambda: _kazoo(zk_server.address))
    yield client
    _close_kazoo(client)


@pytest.fixture
def zk_chroot(zk_server, zk_admin):
    """str: a fresh chroot path ("/t-<uuid>") created on ``zk_server``;
    removed with its content after the test."""
    _ensure_running(zk_server)
    path = _new_chroot(zk_admin)
    yield path
    _drop_chroot(zk_admin, path)


@pytest.fixture
def zk_hosts(zk_server, zk_chroot):
    """str: ``"127.0.0.1:PORT/t-<uuid>"``, the shared server with a fresh,
    already created chroot."""
    return zk_server.address + zk_chroot


@pytest.fixture
def kazoo_client(zk_hosts):
    """A started kazoo KazooClient on ``zk_hosts`` (stopped and closed after
    the test)."""
    client = _kazoo(zk_hosts)
    yield client
    _close_kazoo(client)


@pytest.fixture
def zk_server_factory(tmp_path):
    """Callable ``make(**kwargs) -> ZooKeeperServer``: starts a private
    standalone server (kwargs go to ZooKeeperServer) that the test may stop,
    kill or restart; all are stopped after the test."""
    servers = []

    def make(**kwargs):
        server = ZooKeeperServer(tmp_path / ("zk%d" % len(servers)), **kwargs)
        servers.append(server)
        _start("a private ZooKeeper server",
               lambda: server.start(timeout=60), server.stop)
        return server

    yield make
    for server in servers:
        server.stop()


# ---------------------------------------------------------------------------
# Proxy
# ---------------------------------------------------------------------------

@pytest.fixture
def proxy(zk_server):
    """A started TcpProxy to ``zk_server`` (closed, threads joined, after
    the test)."""
    _ensure_running(zk_server)
    p = TcpProxy("127.0.0.1", zk_server.port).start()
    yield p
    p.close()


@pytest.fixture
def zk_proxy_hosts(proxy, zk_chroot):
    """str: ``"127.0.0.1:PROXYPORT/t-<uuid>"``: the same chroot as
    ``zk_hosts``, reached through ``proxy``."""
    return proxy.address + zk_chroot


# ---------------------------------------------------------------------------
# Ensemble
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def zk_ensemble(tmp_path_factory):
    """ZooKeeperEnsemble of 3 servers, started on first use and stopped at
    the end of the session.  Tests that stop members should restart them
    (``zk_ensemble_hosts`` does so before each test that uses it)."""
    ensemble = ZooKeeperEnsemble(
        3, base_dir=tmp_path_factory.mktemp("zk-ensemble")
    )
    _start("the ZooKeeper ensemble", lambda: ensemble.start(timeout=90),
           ensemble.stop)
    yield ensemble
    ensemble.stop()


@pytest.fixture
def zk_ensemble_hosts(zk_ensemble):
    """str: ``"127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/t-<uuid>"`` with the
    chroot created; every member is (re)started first."""
    _start("the ZooKeeper ensemble again",
           lambda: zk_ensemble.start(timeout=90))
    # The admin client is closed while the test runs: tests that restart
    # the whole ensemble count this process's descriptors and threads, and
    # a kazoo client reconnecting behind them would count as theirs.
    admin = _kazoo(zk_ensemble.hosts)
    try:
        path = _new_chroot(admin)
    finally:
        _close_kazoo(admin)
    yield zk_ensemble.hosts + path
    try:
        admin = _kazoo(zk_ensemble.hosts)
    except Exception:
        return  # best effort: a test may leave members down
    try:
        _drop_chroot(admin, path)
    finally:
        _close_kazoo(admin)


# -- fastzk clients --------------------------------------------------------


def _fastzk_client(hosts):
    from fastzk import KazooClient

    client = KazooClient(hosts, timeout=10.0)
    client.start()
    return client


def _stop(client):
    client.stop()
    client.close()


@pytest.fixture
def zk(zk_hosts):
    """A started fastzk client on the test's chroot."""
    client = _fastzk_client(zk_hosts)
    yield client
    _stop(client)


@pytest.fixture
def proxied(zk_proxy_hosts):
    """A started fastzk client connected through ``proxy``."""
    client = _fastzk_client(zk_proxy_hosts)
    yield client
    _stop(client)


@pytest.fixture
def writer(kazoo_client):
    """Another client, kazoo's own, making the changes."""
    return kazoo_client
