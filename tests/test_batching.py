"""Reply batching on the thread client: while a pipelined burst is in
flight and a read brought only a few replies, the session thread stops
reading for a moment so that its next read takes many (see
fastzk.drivers.batching).  On a real server: bursts, a synchronous call in
the middle of one, a cut, and the argument's checks."""

import threading

import pytest
from kazoo.exceptions import ConnectionLoss

from fastzk import KazooClient
from fastzk.drivers import batching
from fastzk.drivers.session_thread import SessionThread


def _count_pauses(monkeypatch):
    pauses = []
    pause = SessionThread._pause

    def counting(self, seconds):
        pauses.append(seconds)
        pause(self, seconds)

    monkeypatch.setattr(SessionThread, "_pause", counting)
    return pauses


def _client(hosts, **kwargs):
    client = KazooClient(hosts, timeout=10.0, **kwargs)
    client.start()
    return client


def _burst(client, n=2000):
    results = [client.get_async("/b/n%d" % (i % 20)) for i in range(n)]
    return [r.get(timeout=30)[0] for r in results]


def test_pipelined_bursts_are_batched_and_complete_in_order(
        zk_hosts, monkeypatch):
    pauses = _count_pauses(monkeypatch)
    zk = _client(zk_hosts)
    try:
        for i in range(20):
            zk.create("/b/n%d" % i, b"%d" % i, makepath=True)
        # Up to five bursts, against a machine that happened to read every
        # burst in large pieces.
        for _ in range(5):
            assert _burst(zk) == [b"%d" % (i % 20) for i in range(2000)]
            if pauses:
                break
        assert pauses and set(pauses) == {batching.DEFAULT_PAUSE}
        # Synchronous calls never meet the rule.
        before = len(pauses)
        for _ in range(200):
            zk.get_children("/b")
        assert len(pauses) == before
    finally:
        zk.stop()
        zk.close()


def test_no_batching_when_turned_off(zk_hosts, monkeypatch):
    pauses = _count_pauses(monkeypatch)
    zk = _client(zk_hosts, reply_batching=0)
    try:
        for i in range(20):
            zk.create("/b/n%d" % i, b"%d" % i, makepath=True)
        for _ in range(3):
            assert _burst(zk) == [b"%d" % (i % 20) for i in range(2000)]
        assert pauses == []
    finally:
        zk.stop()
        zk.close()


def test_a_synchronous_call_during_a_batched_burst_reads_its_reply(
        zk_hosts):
    # A long pause: the synchronous call lands while the session thread
    # stands aside; it takes the read role itself.
    zk = _client(zk_hosts, reply_batching=0.5)
    try:
        zk.ensure_path("/b")
        results = [zk.get_children_async("/b") for _ in range(2000)]
        done = threading.Event()
        out = []

        def call():
            out.append(zk.create("/b/sync", b"x"))
            done.set()

        thread = threading.Thread(target=call)
        thread.start()
        assert done.wait(10)
        thread.join()
        assert out == ["/b/sync"]
        names = [r.get(timeout=30) for r in results]
        assert all(n in ([], ["sync"]) for n in names)
    finally:
        zk.stop()
        zk.close()


def test_a_cut_during_a_batched_burst_fails_it_and_the_next_works(
        zk_proxy_hosts, proxy):
    zk = _client(zk_proxy_hosts, reply_batching=0.2)
    try:
        zk.ensure_path("/b")
        results = [zk.get_children_async("/b") for _ in range(10000)]
        results[0].get(timeout=10)
        proxy.cut()  # long before the last of 10,000 replies
        outcomes = []
        for r in results:
            try:
                outcomes.append(r.get(timeout=30))
            except ConnectionLoss as exc:
                outcomes.append(exc)
        lost = [o for o in outcomes if isinstance(o, ConnectionLoss)]
        assert lost and all(o == [] for o in outcomes if o not in lost)
        zk.retry(zk.get_children, "/b")
        assert [r.get(timeout=30) for r in
                [zk.get_children_async("/b") for _ in range(500)]] == \
            [[]] * 500
    finally:
        zk.stop()
        zk.close()


@pytest.mark.parametrize("value, error", [
    (-0.001, ValueError), (1.5, ValueError), (float("nan"), ValueError),
    ("0.001", TypeError), (True, TypeError), (None, TypeError)])
def test_reply_batching_is_checked(value, error):
    with pytest.raises(error):
        KazooClient("127.0.0.1:2181", reply_batching=value)


def test_reply_batching_defaults_to_a_millisecond():
    assert KazooClient("127.0.0.1:2181").reply_batching == 0.001
    assert KazooClient("127.0.0.1:2181", reply_batching=0).reply_batching == 0
