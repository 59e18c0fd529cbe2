"""fastzk's KazooClient against a real ZooKeeper server."""

import os
import threading
import time

import pytest
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    ConfigurationError,
    ConnectionClosedError,
    ConnectionLoss,
    NoAuthError,
    NoNodeError,
    NodeExistsError,
    NotEmptyError,
    NoChildrenForEphemeralsError,
)
from kazoo.protocol.states import EventType, KazooState, ZnodeStat
from kazoo.security import make_digest_acl

import fastzk
from fastzk import KazooClient


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("timed out waiting for %s" % what)


def test_implementation_matches_environment():
    if os.environ.get("FASTZK_NO_EXTENSIONS", "") not in ("", "0"):
        assert fastzk.EXTENSIONS is False
    if os.environ.get("FASTZK_REQUIRE_EXTENSIONS", "") not in ("", "0"):
        assert fastzk.EXTENSIONS is True


def test_is_a_kazoo_client(zk):
    import kazoo.client

    assert isinstance(zk, kazoo.client.KazooClient)
    assert fastzk.Client is KazooClient
    assert zk.state == KazooState.CONNECTED
    assert zk.connected
    session_id, passwd = zk.client_id
    assert session_id > 0 and len(passwd) == 16
    assert 1000 <= zk.negotiated_timeout <= 20000


def test_create_get_set_delete(zk):
    assert zk.create("/a", b"one") == "/a"
    data, stat = zk.get("/a")
    assert data == b"one"
    assert isinstance(stat, ZnodeStat)
    assert stat.version == 0 and stat.dataLength == 3
    stat2 = zk.set("/a", b"two")
    assert stat2.version == 1
    assert zk.get("/a")[0] == b"two"
    assert zk.exists("/a").version == 1
    assert zk.exists("/missing") is None
    zk.delete("/a")
    assert zk.exists("/a") is None


def test_create_variants(zk):
    path, stat = zk.create("/v", b"x", include_data=True)
    assert path == "/v" and stat.dataLength == 1
    seq = zk.create("/v/s-", sequence=True)
    assert seq.startswith("/v/s-") and len(seq) == len("/v/s-") + 10
    eph = zk.create("/v/e", ephemeral=True)
    assert zk.exists(eph).ephemeralOwner == zk.client_id[0]
    assert zk.create("/deep/er/node", b"d", makepath=True) == "/deep/er/node"
    assert zk.get("/deep/er/node")[0] == b"d"
    # A sequential path ending in "/": its last component is the parent.
    made = zk.create("/seqdir/q/", sequence=True, makepath=True)
    assert made.startswith("/seqdir/q/") and len(made) == len("/seqdir/q/") + 10
    assert zk.create("/nodata", None) == "/nodata"
    assert zk.get("/nodata")[0] in (None, b"")
    zk.ensure_path("/e1/e2/e3")
    assert zk.exists("/e1/e2/e3")
    zk.ensure_path("/e1/e2/e3")


def test_get_children(zk):
    zk.create("/p")
    for name in ("c1", "c2", "c3"):
        zk.create("/p/" + name)
    assert sorted(zk.get_children("/p")) == ["c1", "c2", "c3"]
    children, stat = zk.get_children("/p", include_data=True)
    assert sorted(children) == ["c1", "c2", "c3"]
    assert stat.numChildren == 3
    assert zk.get_children("/p/c1") == []


def test_server_errors(zk):
    zk.create("/err", b"")
    zk.create("/err/child")
    with pytest.raises(NodeExistsError):
        zk.create("/err")
    with pytest.raises(NoNodeError):
        zk.get("/nope")
    with pytest.raises(NoNodeError):
        zk.create("/nope/child")
    with pytest.raises(NoNodeError):
        zk.get_children("/nope")
    with pytest.raises(BadVersionError):
        zk.set("/err", b"x", version=7)
    with pytest.raises(BadVersionError):
        zk.delete("/err/child", version=3)
    with pytest.raises(NotEmptyError):
        zk.delete("/err")
    zk.create("/eph", ephemeral=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create("/eph/child")
    zk.delete("/err", recursive=True)
    assert zk.exists("/err") is None


def test_bad_input(zk):
    with pytest.raises(TypeError):
        zk.create("/t", "not bytes")
    with pytest.raises(TypeError):
        zk.set("/t", 12)
    with pytest.raises(TypeError):
        zk.get(b"/bytes-path")
    with pytest.raises(TypeError):
        zk.get_children(None)
    with pytest.raises(TypeError):
        zk.exists("/t", watch="not callable")
    with pytest.raises(ValueError):
        zk.get("/a/../b")
    with pytest.raises((BadArgumentsError, NoNodeError)):
        zk.create("/bad\u0000name")
    # The connection survives bad input.
    assert zk.exists("/") is not None


def test_data_over_one_mebibyte_is_refused(zk):
    with pytest.raises(Exception) as info:
        zk.create("/big", b"x" * (1024 * 1024 + 1))
    assert not isinstance(info.value, (TypeError, AssertionError))
    # Whatever the server did with the oversized request, the client
    # recovers and the node was not created.
    wait_for(lambda: zk.connected, what="reconnect")
    assert zk.retry(zk.exists, "/big") is None


def test_stopped_client(zk_hosts):
    client = KazooClient(zk_hosts)
    with pytest.raises(ConnectionClosedError):
        client.get("/")
    client.start()
    client.stop()
    with pytest.raises(ConnectionClosedError):
        client.get("/")
    with pytest.raises(ConnectionClosedError):
        client.create("/x")
    client.close()


def test_restart_gives_a_new_session(zk):
    first = zk.client_id[0]
    zk.restart()
    assert zk.connected
    assert zk.client_id[0] != first
    assert zk.exists("/") is not None


def test_gevent_handler_refused(zk_hosts):
    class FakeGeventHandler(object):
        pass

    with pytest.raises(ConfigurationError, match="threading handler"):
        KazooClient(zk_hosts, handler=FakeGeventHandler())


def test_async_methods(zk):
    results = [zk.create_async("/as%d" % i, b"%d" % i) for i in range(50)]
    assert [r.get(timeout=10) for r in results] == ["/as%d" % i for i in range(50)]
    gets = [zk.get_async("/as%d" % i) for i in range(50)]
    assert [g.get(timeout=10)[0] for g in gets] == [b"%d" % i for i in range(50)]
    assert zk.exists_async("/as0").get(timeout=10).version == 0
    assert zk.set_async("/as0", b"z").get(timeout=10).version == 1
    assert zk.delete_async("/as0").get(timeout=10) is True
    assert zk.get_children_async("/").get(timeout=10)
    with pytest.raises(NoNodeError):
        zk.get_async("/as0").get(timeout=10)


def test_pipelined_children_in_order(zk):
    zk.create("/pipe")
    for i in range(10):
        zk.create("/pipe/n%d" % i)
    results = [zk.get_children_async("/pipe") for _ in range(2000)]
    for result in results:
        assert len(result.get(timeout=30)) == 10


def test_many_threads_share_one_connection(zk):
    zk.create("/mt")
    errors = []

    def worker(n):
        try:
            for i in range(100):
                path = "/mt/t%d-%d" % (n, i)
                zk.create(path, b"%d" % i)
                assert zk.get(path)[0] == b"%d" % i
                assert zk.exists(path).version == 0
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(zk.get_children("/mt")) == 800


def test_sync_then_read_sees_other_clients_write(zk, zk_hosts):
    other = KazooClient(zk_hosts)
    other.start()
    try:
        zk.create("/fresh", b"0")
        other.set("/fresh", b"1")
        assert zk.sync("/fresh") == "/fresh"
        assert zk.get("/fresh")[0] == b"1"
    finally:
        other.stop()
        other.close()


def test_transaction(zk):
    zk.create("/tx", b"")
    tx = zk.transaction()
    tx.create("/tx/a", b"1")
    tx.set_data("/tx", b"v")
    tx.check("/tx", 1)
    tx.delete("/tx/a")
    results = tx.commit()
    assert results[0] == "/tx/a"
    assert isinstance(results[1], ZnodeStat)
    assert results[2] is True and results[3] is True
    assert zk.get("/tx")[0] == b"v"


def test_acls_and_auth(zk, zk_hosts):
    acl = make_digest_acl("user", "pw", all=True)
    zk.create("/secret", b"s", acl=[acl])
    with pytest.raises(NoAuthError):
        zk.get("/secret")
    zk.add_auth("digest", "user:pw")
    acls, stat = zk.get_acls("/secret")
    assert acls[0].id.scheme == "digest"
    assert zk.get("/secret")[0] == b"s"
    zk.set_acls("/secret", [acl], version=0)
    # Auth is re-sent on reconnect, on the same session.
    zk._connection.drop_connection()
    wait_for(lambda: zk.connected, what="reconnect")
    assert zk.retry(zk.get, "/secret")[0] == b"s"


def test_command_and_server_version(zk):
    assert zk.command(b"ruok") == "imok"
    assert zk.server_version()[:2] == (3, 8)


def test_one_shot_watches(zk):
    events = []
    zk.create("/w", b"0")
    zk.get("/w", watch=events.append)
    zk.get_children("/w", watch=events.append)
    zk.exists("/w-new", watch=events.append)
    zk.set("/w", b"1")
    zk.set("/w", b"2")  # one-shot: no second event
    zk.create("/w/c")
    zk.create("/w-new")
    wait_for(lambda: len(events) >= 3, what="three events")
    time.sleep(0.2)
    kinds = sorted((e.type, e.path) for e in events)
    assert kinds == sorted([
        (EventType.CHANGED, "/w"),
        (EventType.CHILD, "/w"),
        (EventType.CREATED, "/w-new"),
    ])


def test_same_watcher_fires_once_per_event(zk):
    events = []
    zk.create("/once", b"")
    zk.get("/once", watch=events.append)
    zk.exists("/once", watch=events.append)
    zk.delete("/once")
    wait_for(lambda: events, what="event")
    time.sleep(0.2)
    assert len(events) == 1 and events[0].type == EventType.DELETED


def test_state_listeners_on_drop_and_reconnect(zk):
    states = []
    zk.add_listener(states.append)
    zk._connection.drop_connection()
    wait_for(lambda: KazooState.CONNECTED in states, what="reconnect")
    assert states[:2] == [KazooState.SUSPENDED, KazooState.CONNECTED]
    assert zk.exists("/") is not None


def test_listener_does_not_run_on_the_reading_thread(zk):
    seen = []
    zk.add_listener(lambda state: seen.append(threading.current_thread().name))
    zk._connection.drop_connection()
    wait_for(lambda: len(seen) >= 2, what="listener calls")
    assert seen and all(name == "fastzk-events" for name in seen)


def test_cut_connection_suspends_then_reconnects_same_session(proxied, proxy):
    states = []
    proxied.add_listener(states.append)
    session = proxied.client_id[0]
    proxy.cut()
    wait_for(lambda: KazooState.CONNECTED in states, what="reconnect")
    assert states[:2] == [KazooState.SUSPENDED, KazooState.CONNECTED]
    assert proxied.client_id[0] == session


def test_watches_restored_with_catch_up_events(proxied, proxy, kazoo_client):
    events = []
    proxied.create("/cu", b"0")
    proxied.create("/cu/kid")
    proxied.get("/cu", watch=events.append)
    proxied.get_children("/cu", watch=events.append)
    proxied.exists("/cu-later", watch=events.append)
    suspended = threading.Event()
    proxied.add_listener(
        lambda s: suspended.set() if s == KazooState.SUSPENDED else None)
    proxy.reject(True)
    proxy.cut()
    assert suspended.wait(10)
    # Changes made while the watcher is disconnected.
    kazoo_client.set("/cu", b"1")
    kazoo_client.create("/cu/kid2")
    kazoo_client.create("/cu-later")
    assert events == []
    proxy.reject(False)
    wait_for(lambda: len(events) >= 3, what="catch-up events")
    kinds = sorted((e.type, e.path) for e in events)
    assert kinds == sorted([
        (EventType.CHANGED, "/cu"),
        (EventType.CHILD, "/cu"),
        (EventType.CREATED, "/cu-later"),
    ])


def test_in_flight_requests_fail_with_connection_loss(proxied, proxy):
    proxied.create("/inflight", b"")
    proxy.freeze()
    results = [proxied.get_async("/inflight") for _ in range(5)]
    time.sleep(0.2)
    proxy.cut()
    proxy.unfreeze()
    for result in results:
        with pytest.raises(ConnectionLoss):
            result.get(timeout=10)
    wait_for(lambda: proxied.connected, what="reconnect")
    assert proxied.get("/inflight")[0] == b""


def test_requests_made_while_suspended_go_out_after_reconnect(proxied, proxy):
    suspended = threading.Event()
    proxied.add_listener(
        lambda s: suspended.set() if s == KazooState.SUSPENDED else None)
    proxy.reject(True)
    proxy.cut()
    assert suspended.wait(10)
    pending = proxied.create_async("/queued", b"q")
    time.sleep(0.3)
    assert not pending.ready()
    proxy.reject(False)
    assert pending.get(timeout=15) == "/queued"
    assert proxied.get("/queued")[0] == b"q"


@pytest.mark.parametrize("chroot", ["", "/base", "/a/b"])
def test_fast_path_normalisation_agrees_with_kazoo(chroot):
    from hypothesis import given, settings, strategies as st
    from kazoo.protocol.paths import _prefix_root

    client = KazooClient("127.0.0.1:2181" + chroot)
    alphabet = st.sampled_from(["/", "a", "b", ".", "-", "_", "é", "0"])

    @settings(max_examples=300, deadline=None)
    @given(st.lists(alphabet, min_size=1, max_size=12).map("".join))
    def check(path):
        try:
            expected = _prefix_root(client.chroot, path)
        except ValueError:
            with pytest.raises(ValueError):
                client._full_path(path)
            return
        assert client._full_path(path) == expected

    check()


def test_events_are_not_held_back_after_a_synchronous_call(zk, kazoo_client):
    """Regression: after a synchronous call the session thread stood aside
    and slept up to half a second before reading the next watch event."""
    from fastzk import AddWatchMode

    arrived = []
    zk.ensure_path("/prompt")
    zk.add_watch("/prompt", lambda e: arrived.append(time.monotonic()),
                 AddWatchMode.PERSISTENT_RECURSIVE)
    delays = []
    for i in range(5):
        zk.exists("/prompt")  # a synchronous call right before the change
        before = len(arrived)
        sent = time.monotonic()
        kazoo_client.set("/prompt", b"%d" % i)
        wait_for(lambda: len(arrived) > before, what="event %d" % i)
        delays.append(arrived[before] - sent)
        time.sleep(0.1)
    # The stall was ~0.5 s on every round; allow for a loaded machine.
    assert sorted(delays)[2] < 0.4, delays


def test_bounded_call_gives_up_at_its_deadline_and_the_session_goes_on(
        proxied, proxy):
    from kazoo.handlers.threading import KazooTimeoutError
    proxied.create("/bounded", b"v")
    proxy.freeze()
    try:
        started = time.monotonic()
        with pytest.raises(KazooTimeoutError):
            with proxied._bounded(started + 0.3):
                proxied.get("/bounded")
        waited = time.monotonic() - started
        assert 0.3 <= waited < 2.0, waited
        # The deadline does not outlive its block.
        result = proxied.get_async("/bounded")
    finally:
        proxy.unfreeze()
    # The late reply of the abandoned request is read and dropped: the
    # requests behind it get theirs, on the same connection.
    assert result.get(timeout=10)[0] == b"v"
    session = proxied.client_id
    assert proxied.get("/bounded")[0] == b"v"
    assert proxied.client_id == session


def test_bounded_nests_to_the_earlier_deadline(zk):
    from fastzk.drivers.waiter import bounded, current_deadline
    now = time.monotonic()
    with bounded(now + 5):
        with bounded(now + 10):
            assert current_deadline() == now + 5
        with bounded(now + 1):
            assert current_deadline() == now + 1
        assert current_deadline() == now + 5
    assert current_deadline() is None
    with zk._bounded(now + 30):
        assert zk.exists("/") is not None



def test_pipelined_requests_reach_the_server_in_submission_order(zk):
    # Frames submitted while replies are outstanding are sent together
    # later; the server must still see them in the order they were made.
    zk.create("/order", b"")
    results = [zk.create_async("/order/n-", b"%d" % i, sequence=True)
               for i in range(3000)]
    names = [r.get(timeout=30) for r in results]
    seqs = [int(n.rsplit("-", 1)[1]) for n in names]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3000
    for i in (0, 1, 1500, 2999):
        assert zk.get(names[i])[0] == b"%d" % i


def test_mixed_threads_pipelining_and_synchronous_calls_agree(zk):
    zk.create("/mixed", b"0")
    errors = []

    def writer(k):
        try:
            pending = [zk.set_async("/mixed", b"%d-%d" % (k, i))
                       for i in range(300)]
            for p in pending:
                p.get(timeout=30)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader():
        try:
            last = -1
            for _ in range(300):
                version = zk.exists("/mixed").version
                assert version >= last  # never goes back
                last = version
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert zk.exists("/mixed").version == 900


def test_a_cut_during_a_pipelined_burst_fails_the_unanswered_requests(
        proxied, proxy):
    proxied.create("/burst", b"")
    results = [proxied.get_async("/burst") for _ in range(2000)]
    proxy.cut()
    outcomes = {"ok": 0, "loss": 0}
    for r in results:
        try:
            assert r.get(timeout=20)[0] == b""
            outcomes["ok"] += 1
        except ConnectionLoss:
            outcomes["loss"] += 1
    assert outcomes["ok"] + outcomes["loss"] == 2000
    wait_for(lambda: proxied.connected, what="reconnect")
    assert proxied.get("/burst")[0] == b""


def test_add_auth_among_pipelined_requests(zk):
    # The server answers an AuthPacket as soon as it reads it, possibly
    # before the replies to the reads sent ahead of it.
    zk.ensure_path("/auth-among")
    for _ in range(3):
        reads = [zk.get_async("/auth-among") for _ in range(300)]
        auth = zk.add_auth_async("digest", "user:pw")
        later = [zk.get_async("/auth-among") for _ in range(300)]
        assert auth.get(timeout=10) is True
        for result in reads + later:
            assert result.get(timeout=10)[0] == b""
    assert zk.connected
