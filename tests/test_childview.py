"""Watched children lists for lock checks (fastzk.protocol.childview), and the
``cached_lock_checks`` client option on the real server."""

import threading
import time

import pytest

import fastzk
from fastzk import Lock
from fastzk.protocol.childview import ChildrenView

from _watchlib import wait_for  # noqa: E402


# -- the view itself -------------------------------------------------------------

def test_view_keeps_a_stored_list_until_its_watch_fires():
    view = ChildrenView()
    token = view.token()
    view.store(token, "/a", ["x"])
    assert view.get("/a") == ["x"]
    view.invalidate("/a")
    assert view.get("/a") is None


def test_view_refuses_replies_read_before_a_reset():
    view = ChildrenView()
    token = view.token()
    view.store(token, "/a", ["x"])
    view.reset()
    assert view.get("/a") is None
    view.store(token, "/b", ["y"])  # a reply of the old connection
    assert view.get("/b") is None
    view.store(view.token(), "/b", ["z"])
    assert view.get("/b") == ["z"]


def test_a_full_view_asks_for_unwatched_reads():
    view = ChildrenView(limit=2)
    for path in ("/a", "/b"):
        view.store(view.token(), path, [])
    assert view.token() is None
    view.invalidate("/a")
    assert view.token() is not None


# -- on the server ---------------------------------------------------------------

class RequestCounter(object):
    """Counts the requests a client's engine submits."""

    def __init__(self, client):
        self.count = 0
        engine = client._connection
        original = engine.submit

        def submit(req, *args, **kwargs):
            self.count += 1
            return original(req, *args, **kwargs)

        # Asynchronous calls reach the channel through engine.submit,
        # synchronous ones through the channel's own submit.
        engine.submit = engine.channel.submit = submit


@pytest.fixture
def cached(zk_hosts):
    made = []

    def make(hosts=zk_hosts):
        client = fastzk.KazooClient(hosts, timeout=10.0,
                                    cached_lock_checks=True)
        client.start(timeout=30)
        made.append(client)
        return client

    yield make
    for client in made:
        client.stop()
        client.close()


def test_repeated_failed_attempts_make_no_request(cached, zk):
    holder = Lock(zk, "/cl/held", "holder")
    assert holder.acquire(timeout=10)
    client = cached()
    counter = RequestCounter(client)
    assert Lock(client, "/cl/held", "w").acquire(blocking=False) is False
    first = counter.count
    assert first == 1  # one watched getChildren
    for _ in range(50):
        assert Lock(client, "/cl/held", "w").acquire(blocking=False) is False
    assert counter.count == first
    # The holder's release reaches the view through the watch event.
    holder.release()
    lock = Lock(client, "/cl/held", "w")
    wait_for(lambda: lock.acquire(blocking=False), what="the release seen")
    assert lock.is_acquired
    assert zk.get_children("/cl/held") == [lock.node]
    lock.release()


def test_the_view_is_exact_for_the_sessions_own_changes(cached):
    client = cached()
    first = Lock(client, "/cl/own", "one")
    assert first.acquire(blocking=False) is True
    second = Lock(client, "/cl/own", "two")
    assert second.acquire(blocking=False) is False
    first.release()
    # Our own delete's event comes before its reply: no waiting needed.
    assert second.acquire(blocking=False) is True
    second.release()


def test_the_view_is_dropped_with_the_connection(cached, proxy,
                                                 zk_proxy_hosts, zk):
    holder = Lock(zk, "/cl/cut", "holder")
    assert holder.acquire(timeout=10)
    client = cached(zk_proxy_hosts)
    counter = RequestCounter(client)
    assert Lock(client, "/cl/cut", "w").acquire(blocking=False) is False
    assert len(client._connection.children_view) == 1
    proxy.cut()
    wait_for(lambda: not client.connected, what="the cut seen")
    wait_for(lambda: client.connected, what="reconnection")
    assert len(client._connection.children_view) == 0
    before = counter.count
    assert Lock(client, "/cl/cut", "w").acquire(blocking=False) is False
    assert counter.count == before + 1  # read again, with a new watch
    holder.release()
    lock = Lock(client, "/cl/cut", "w")
    wait_for(lambda: lock.acquire(blocking=False), what="the release seen")
    lock.release()


def test_cached_checks_keep_mutual_exclusion(cached):
    clients = [cached() for _ in range(4)]
    inside = []
    violations = []
    wins = [0]
    errors = []
    stop = time.monotonic() + 4.0

    def worker(client, name):
        try:
            work(client, name)
        except BaseException as exc:  # a dead worker would pass unseen
            errors.append(exc)

    def work(client, name):
        while time.monotonic() < stop:
            lock = Lock(client, "/cl/hammer", name)
            if not lock.acquire(blocking=False):
                continue
            try:
                inside.append(name)
                if len(inside) > 1:
                    violations.append(list(inside))
                wins[0] += 1
                time.sleep(0.001)
                inside.remove(name)
            finally:
                lock.release()

    threads = [threading.Thread(target=worker, args=(c, "w%d-%d" % (i, j)))
               for i, c in enumerate(clients) for j in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert violations == []
    assert errors == []
    # A failed check answered from the view yields the GIL: without that
    # the 12 looping threads starved the readers, ~3 wins a second.
    assert wins[0] > 50
    assert clients[0].get_children("/cl/hammer") == []


def test_cached_checks_are_off_by_default(zk):
    assert zk.cached_lock_checks is False
    holder = Lock(zk, "/cl/off", "holder")
    assert holder.acquire(timeout=10)
    lock = Lock(zk, "/cl/off", "w")
    counter = RequestCounter(zk)
    for _ in range(3):
        assert lock.acquire(blocking=False) is False
    assert counter.count == 3
    assert len(zk._connection.children_view) == 0
    holder.release()
