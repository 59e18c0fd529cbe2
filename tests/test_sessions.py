"""Sessions and faults: expiry, partitions, failover (real ZooKeeper)."""

import os
import threading
import time

import pytest
from kazoo.exceptions import KazooException
from kazoo.protocol.states import EventType, KazooState

from fastzk import AddWatchMode, KazooClient, Lock
from fastzk.cache import TreeCache, TreeEvent
from fastzk.testing.zkserver import expire_session


def wait_for(predicate, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("timed out waiting for %s" % what)


class StateLog(object):
    def __init__(self, client):
        self.states = []
        self.times = []
        client.add_listener(self)

    def __call__(self, state):
        self.states.append(state)
        self.times.append(time.monotonic())

    def first(self, state):
        return self.times[self.states.index(state)]


def test_freeze_longer_than_session_timeout_reports_lost_in_time(
        zk_proxy_hosts, zk_hosts, proxy):
    client = KazooClient(zk_proxy_hosts, timeout=2.0)
    other = KazooClient(zk_hosts, timeout=10)
    client.start()
    other.start()
    try:
        timeout = client.negotiated_timeout / 1000.0
        lock = Lock(client, "/frozen-lock", "frozen")
        assert lock.acquire(timeout=5)
        lost_called = threading.Event()
        lock.on_lost(lambda l: lost_called.set())
        events = []
        client.exists("/appears-later", watch=events.append)
        client.add_watch("/", events.append, AddWatchMode.PERSISTENT_RECURSIVE)
        log = StateLog(client)
        old_session = client.client_id[0]

        frozen_at = time.monotonic()
        proxy.freeze()
        wait_for(lambda: KazooState.LOST in log.states, timeout=timeout * 3,
                 what="LOST")
        lost_after = log.first(KazooState.LOST) - frozen_at
        # Declared lost about one session timeout after the freeze (the
        # server expires it then), not when the network returns.
        assert timeout * 0.9 <= lost_after <= timeout * 1.6, lost_after
        assert log.states[0] == KazooState.SUSPENDED
        assert lost_called.wait(5)
        assert lock.is_acquired is False and lock.lost.is_set()
        # A request made now waits for the new session (kazoo's rule while
        # connecting).
        queued = client.exists_async("/")

        # The server expires the frozen session; another client gets the lock.
        rival = Lock(other, "/frozen-lock", "rival")
        assert rival.acquire(timeout=timeout * 4)
        other.create("/appears-later")

        assert not queued.ready()
        proxy.unfreeze()
        wait_for(lambda: client.connected, what="new session")
        assert client.client_id[0] != old_session
        assert queued.get(timeout=10) is not None
        # The persistent watch is back on the new session and its watcher
        # was told to re-read.
        wait_for(lambda: any(e.type == EventType.NONE for e in events),
                 what="NONE event")
        other.create("/after-return")
        wait_for(lambda: any(e.path == "/after-return" for e in events),
                 what="persistent watch event on the new session")
        assert lock.acquire(blocking=False) is False
        rival.release()
        assert lock.acquire(timeout=5)
        lock.release()
    finally:
        proxy.unfreeze()
        client.stop()
        client.close()
        other.stop()
        other.close()


def test_server_side_expiry_gives_new_session(zk_hosts):
    client = KazooClient(zk_hosts, timeout=4.0)
    client.start()
    try:
        expired = threading.Event()
        client.on_session_expired(expired.set)
        log = StateLog(client)
        client.create("/eph", ephemeral=True)
        lock = Lock(client, "/exp-lock")
        assert lock.acquire(timeout=5)
        session = client.client_id
        assert expire_session(zk_hosts.split("/")[0], *session)
        assert expired.wait(10)
        wait_for(lambda: log.states[-1:] == [KazooState.CONNECTED],
                 what="reconnect")
        assert KazooState.LOST in log.states
        assert client.client_id[0] != session[0]
        assert client.exists("/eph") is None
        assert lock.is_acquired is False
        assert lock.acquire(timeout=5)
        lock.release()
    finally:
        client.stop()
        client.close()


def test_no_reconnect_on_expiry_when_told_not_to(zk_hosts):
    client = KazooClient(zk_hosts, timeout=4.0, reconnect_on_expiry=False)
    client.start()
    try:
        log = StateLog(client)
        assert expire_session(zk_hosts.split("/")[0], *client.client_id)
        wait_for(lambda: KazooState.LOST in log.states, what="LOST")
        time.sleep(1.0)
        assert not client.connected
        assert log.states[-1] == KazooState.LOST
    finally:
        client.stop()
        client.close()


@pytest.mark.ensemble
def test_failover_keeps_session_lock_watches_and_cache(zk_ensemble,
                                                       zk_ensemble_hosts):
    client = KazooClient(zk_ensemble_hosts, timeout=6.0)
    writer = KazooClient(zk_ensemble_hosts, timeout=6.0)
    client.start()
    writer.start()
    cache = None
    try:
        session = client.client_id[0]
        lock = Lock(client, "/fo-lock", "holder")
        assert lock.acquire(timeout=5)
        client.create("/fo-eph", ephemeral=True)
        client.ensure_path("/fo-tree")
        last = {}
        initialized = threading.Event()

        def listener(event):
            if event.event_type == TreeEvent.INITIALIZED:
                initialized.set()
            elif event.event_data is not None:
                last[event.event_data.path] = event.event_type

        cache = TreeCache(client, "/fo-tree")
        cache.listen(listener)
        cache.start()
        assert initialized.wait(10)
        data_events = []
        client.get("/fo-tree", watch=data_events.append)

        host, port = client._connection.connected_host
        victim = [s for s in zk_ensemble.servers if s.port == port][0]
        victim.kill()
        for i in range(20):
            writer.retry(writer.create, "/fo-tree/n%d" % i, b"x")
        writer.retry(writer.set, "/fo-tree", b"changed")
        wait_for(lambda: client.connected
                 and client._connection.connected_host[1] != port,
                 timeout=20, what="failover")
        assert client.client_id[0] == session
        assert lock.is_acquired and lock.held
        assert client.exists("/fo-eph") is not None
        wait_for(lambda: data_events, what="restored data watch")
        wait_for(lambda: sum(1 for p, t in last.items()
                             if t == TreeEvent.NODE_ADDED
                             and p.startswith("/fo-tree/")) == 20,
                 what="cache converged")
        other = Lock(writer, "/fo-lock")
        assert other.acquire(blocking=False) is False
    finally:
        if cache is not None:
            cache.close()
        client.stop()
        client.close()
        writer.stop()
        writer.close()
        for member in zk_ensemble.servers:
            if not member.running:
                member.start()


def _fd_count():
    return len(os.listdir("/proc/self/fd"))


def _tcp_sockets():
    """``{inode: "local -> remote state"}`` of this machine's TCP sockets."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            field = row.split()
            local, remote, state, inode = field[1], field[2], field[3], field[9]
            found[inode] = "port %d -> port %d (state %s)" % (
                int(local.rsplit(":", 1)[1], 16),
                int(remote.rsplit(":", 1)[1], 16), state)
    return found


def _fd_targets():
    """What each open descriptor is (for the message of a leak): its
    link, and for a TCP socket its ports."""
    found = {}
    tcp = None
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            if tcp is None:
                tcp = _tcp_sockets()
            ports = tcp.get(target[len("socket:["):-1])
            if ports:
                target += " " + ports
        found[fd] = target
    return found


@pytest.mark.ensemble
def test_whole_ensemble_restart_under_load(zk_ensemble, zk_ensemble_hosts):
    """Every server of the ensemble stops and starts again while clients
    work: they reconnect (the ensemble keeps sessions across a restart
    shorter than their timeout), nothing deadlocks, no thread or socket
    leaks."""
    threads_before = threading.active_count()
    fds_before = _fd_count()
    targets_before = _fd_targets()
    clients = [KazooClient(zk_ensemble_hosts, timeout=20.0) for _ in range(8)]
    for client in clients:
        client.start()
    clients[0].ensure_path("/load")
    stop = threading.Event()
    errors = []
    done = [0] * len(clients)

    def work(n, client):
        lock = Lock(client, "/load-lock")
        while not stop.is_set():
            try:
                client.retry(client.set if client.exists("/load/%d" % n)
                             else client.create, "/load/%d" % n, b"x")
                client.retry(client.get_children, "/load")
                if lock.acquire(blocking=False):
                    lock.release()
                done[n] += 1
            except Exception as exc:  # connection errors while down are fine
                if not isinstance(exc, (KazooException,)):
                    errors.append(exc)
                time.sleep(0.05)

    workers = [threading.Thread(target=work, args=(n, c))
               for n, c in enumerate(clients)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(1.0)
        zk_ensemble.stop()
        time.sleep(1.0)
        zk_ensemble.start(timeout=90)
        before = list(done)
        wait_for(lambda: all(d > b + 3 for d, b in zip(done, before)),
                 timeout=60, what="every client working again")
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)
        for client in clients:
            client.stop()
            client.close()
    assert not any(worker.is_alive() for worker in workers), "deadlock"
    assert errors == []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
            threading.active_count() > threads_before
            or _fd_count() > fds_before):
        time.sleep(0.1)
    assert threading.active_count() <= threads_before
    new_fds = {fd: what for fd, what in _fd_targets().items()
               if targets_before.get(fd) != what}
    assert _fd_count() <= fds_before, "descriptors opened: %s" % new_fds
