"""Smoke test of an installed fastzk against a real ZooKeeper server.

``make wheels`` (``tools/wheels.sh``) copies this file out of the source
tree and runs it in a fresh virtual environment holding one wheel or the
sdist, with ``FASTZK_SMOKE_INSTALLED`` set to ``compiled`` or ``pure``:
then fastzk must be imported from that environment's site-packages, with
the compiled core or without it as told.  In the suite, without that
variable, fastzk must be the source tree's.  The file needs no conftest:
its server is started here with the installed ``fastzk.testing``.
"""

import os
import subprocess
import sys
import sysconfig
import threading
import uuid

import pytest

import fastzk
from fastzk import KazooClient
from fastzk.cli import EXIT_LOCK_TIMEOUT
from fastzk.testing.zkserver import ZooKeeperServer

INSTALLED = os.environ.get("FASTZK_SMOKE_INSTALLED", "")
SOURCE_TREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI_TIMEOUT = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A standalone ZooKeeper server for this module."""
    zk_server = ZooKeeperServer(tmp_path_factory.mktemp("zk-smoke"))
    zk_server.start(timeout=60)
    yield zk_server
    zk_server.stop()


@pytest.fixture
def hosts(server):
    """``"127.0.0.1:PORT/smoke-<uuid>"``: a fresh chroot of ``server``."""
    root = "/smoke-" + uuid.uuid4().hex
    admin = KazooClient(hosts=server.address)
    admin.start(timeout=30)
    admin.ensure_path(root)
    yield server.address + root
    admin.delete(root, recursive=True)
    admin.stop()
    admin.close()


@pytest.fixture
def client(hosts):
    """A started fastzk client on ``hosts``."""
    zk = KazooClient(hosts=hosts)
    zk.start(timeout=30)
    yield zk
    zk.stop()
    zk.close()


def _fastzk_command():
    """The ``fastzk`` console script beside this interpreter, if any."""
    script = os.path.join(os.path.dirname(sys.executable), "fastzk")
    if INSTALLED:
        assert os.path.exists(script), "no fastzk script in %s" % script
    return [script] if os.path.exists(script) else [sys.executable, "-m",
                                                    "fastzk"]


def _run_cli(*args):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("ZOOKEEPER_HOSTS", None)
    if not INSTALLED:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (SOURCE_TREE, env.get("PYTHONPATH")) if p)
    return subprocess.run(_fastzk_command() + list(args), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=CLI_TIMEOUT)


def test_fastzk_is_the_package_under_test():
    location = os.path.realpath(fastzk.__file__)
    if INSTALLED:
        site = os.path.realpath(sysconfig.get_paths()["purelib"])
        assert location.startswith(site + os.sep), location
        assert os.path.realpath(sys.prefix) != os.path.realpath(
            sys.base_prefix), "not in a virtual environment"
        assert fastzk.EXTENSIONS is (INSTALLED == "compiled")
    else:
        assert location.startswith(SOURCE_TREE + os.sep), location


def test_connect_and_read(client):
    client.create("/node", b"payload")
    data, stat = client.get("/node")
    assert data == b"payload"
    assert stat.version == 0
    assert client.get_children("/") == ["node"]


def test_lock_attempt(client, hosts):
    holder = client.Lock("/lock", "holder")
    assert holder.acquire(blocking=False)
    try:
        other = KazooClient(hosts=hosts)
        other.start(timeout=30)
        try:
            assert not other.Lock("/lock", "other").acquire(blocking=False)
        finally:
            other.stop()
            other.close()
        assert holder.contenders() == ["holder"]
    finally:
        holder.release()
    assert client.get_children("/lock") == []


def test_watch_fires_on_change(client):
    client.create("/watched", b"1")
    fired = threading.Event()
    events = []

    def watcher(event):
        events.append(event)
        fired.set()

    client.get("/watched", watch=watcher)
    client.set("/watched", b"2")
    assert fired.wait(10), "the data watch did not fire"
    assert events[0].type == "CHANGED"
    assert events[0].path == "/watched"


def test_cli_help():
    done = _run_cli("--help")
    assert done.returncode == 0, done.stderr
    assert "lock" in done.stdout and "watch" in done.stdout


def test_cli_lock_runs_the_command(client, hosts):
    done = _run_cli("--hosts", hosts, "lock", "/cli-lock", "--",
                    sys.executable, "-c", "print('under the lock')")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "under the lock"
    assert client.get_children("/cli-lock") == []


def test_cli_lock_gives_up_on_a_held_lock(client, hosts):
    holder = client.Lock("/cli-held", "holder")
    assert holder.acquire(blocking=False)
    try:
        done = _run_cli("--hosts", hosts, "lock", "--timeout", "0",
                        "/cli-held", "--", sys.executable, "-c",
                        "print('must not run')")
    finally:
        holder.release()
    assert done.returncode == EXIT_LOCK_TIMEOUT, done.stderr
    assert "must not run" not in done.stdout
