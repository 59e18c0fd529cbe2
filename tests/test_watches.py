"""Watches that never miss: persistent watches, restore on reconnect,
DataWatch and ChildrenWatch (real ZooKeeper, faults through the proxy)."""

import random
import threading
import time
from functools import partial

import pytest
from kazoo.exceptions import KazooException, NoWatcherError
from kazoo.protocol.states import EventType, KazooState, KeeperState

import fastzk
from _watchlib import (  # noqa: E402
    StateLog,
    WireEvents,
    cut_live_connection,
    disconnect,
    reconnect,
    server_watches,
    start_client,
    stop_client,
    wait_for,
)
from fastzk import AddWatchMode, ChildrenWatch, DataWatch, \
    WatcherType
from fastzk.testing.zkserver import expire_session


def kinds(events):
    return [(e.type, e.path) for e in events]


# -- persistent watches ----------------------------------------------------------

def test_exports_and_bindings(zk):
    assert fastzk.DataWatch is DataWatch and fastzk.ChildrenWatch is ChildrenWatch
    import kazoo.recipe.watchers as kw
    assert isinstance(zk.DataWatch("/x", lambda d, s: None), kw.DataWatch)
    assert isinstance(zk.ChildrenWatch("/", lambda c: None), kw.ChildrenWatch)
    for name in ("DataWatch", "ChildrenWatch", "TreeCache", "TreeEvent",
                 "NodeData"):
        assert name in fastzk.__all__ and getattr(fastzk, name).__doc__


def test_persistent_watch_fires_every_time(zk, writer):
    events = []
    zk.add_watch("/p", events.append, AddWatchMode.PERSISTENT)
    writer.create("/p", b"0")
    writer.set("/p", b"1")
    writer.set("/p", b"2")
    writer.create("/p/c")
    writer.delete("/p/c")
    writer.delete("/p")
    writer.create("/p")
    expected = [(EventType.CREATED, "/p"), (EventType.CHANGED, "/p"),
                (EventType.CHANGED, "/p"), (EventType.CHILD, "/p"),
                (EventType.CHILD, "/p"), (EventType.DELETED, "/p"),
                (EventType.CREATED, "/p")]
    wait_for(lambda: len(events) >= len(expected), what="7 events")
    time.sleep(0.1)
    assert kinds(events) == expected


def test_persistent_recursive_watch_sees_descendants_no_child_events(zk, writer):
    writer.create("/r")
    events = []
    zk.add_watch("/r", events.append, AddWatchMode.PERSISTENT_RECURSIVE)
    writer.create("/r/a")
    writer.create("/r/a/b", b"x")
    writer.set("/r/a/b", b"y")
    writer.delete("/r/a/b")
    writer.set("/r", b"root")
    writer.create("/elsewhere")
    expected = [(EventType.CREATED, "/r/a"), (EventType.CREATED, "/r/a/b"),
                (EventType.CHANGED, "/r/a/b"), (EventType.DELETED, "/r/a/b"),
                (EventType.CHANGED, "/r")]
    wait_for(lambda: len(events) >= len(expected), what="5 events")
    time.sleep(0.1)
    assert kinds(events) == expected


def test_remove_all_watches(zk, writer, zk_server, zk_chroot):
    writer.create("/rm", b"")
    data, children = [], []
    zk.get("/rm", watch=data.append)
    zk.get_children("/rm", watch=children.append)
    session = zk.client_id[0]
    assert server_watches(zk_server, session) == {zk_chroot + "/rm"}
    # DATA leaves the child watch in place.
    zk.remove_all_watches("/rm", WatcherType.DATA)
    assert server_watches(zk_server, session) == set()
    writer.set("/rm", b"1")
    writer.create("/rm/kid")
    wait_for(lambda: children, what="child event")
    zk.sync("/rm")
    time.sleep(0.1)
    assert data == []
    assert kinds(children) == [(EventType.CHILD, "/rm")]

    persistent = []
    zk.add_watch("/rm", persistent.append, AddWatchMode.PERSISTENT_RECURSIVE)
    zk.get("/rm", watch=data.append)
    zk.remove_all_watches("/rm", WatcherType.ANY)
    assert server_watches(zk_server, session) == set()
    assert zk._connection.watches.paths() == ([], [], [], [], [])
    writer.set("/rm", b"2")
    writer.create("/rm/kid2")
    zk.sync("/rm")
    time.sleep(0.2)
    assert persistent == [] and data == []
    with pytest.raises(NoWatcherError):
        zk.remove_all_watches("/rm", WatcherType.ANY)


def test_remove_data_watches_forgets_persistent_watch_like_the_server(
        zk, writer):
    writer.create("/rd")
    events = []
    zk.add_watch("/rd", events.append, AddWatchMode.PERSISTENT_RECURSIVE)
    zk.remove_all_watches("/rd", WatcherType.DATA)
    writer.create("/rd/a")  # the server no longer reports this
    states = StateLog(zk)
    zk._connection.drop_connection()
    wait_for(lambda: KazooState.CONNECTED in states.states, what="reconnect")
    writer.create("/rd/b")
    zk.sync("/rd")
    time.sleep(0.3)
    # Either the watch is gone for good (as the Java client does) or it
    # never stopped; here it stops, then comes back after the reconnect.
    assert kinds(e for e in events if e.type != EventType.NONE) in (
        [], [(EventType.CREATED, "/rd/a"), (EventType.CREATED, "/rd/b")])


def test_persistent_watch_keeps_firing_after_one_shot_watch_on_same_path(
        zk, writer):
    writer.create("/po")
    persistent, one_shot = [], []
    zk.add_watch("/po", persistent.append, AddWatchMode.PERSISTENT_RECURSIVE)
    zk.get("/po", watch=one_shot.append)
    writer.set("/po", b"1")
    writer.set("/po", b"2")
    writer.create("/po/k")
    zk.sync("/po")
    wait_for(lambda: one_shot, what="one-shot event")
    time.sleep(0.3)
    assert kinds(one_shot) == [(EventType.CHANGED, "/po")]
    assert kinds(persistent) == [
        (EventType.CHANGED, "/po"), (EventType.CHANGED, "/po"),
        (EventType.CREATED, "/po/k")]


def test_watch_events_arrive_promptly_on_idle_client(zk, writer):
    # Regression: the session thread used to stay parked up to 0.5 s after
    # a synchronous call, leaving events unread (fixed in the engine).
    latencies = []
    for i in range(8):
        path = "/lat%d" % i
        writer.create(path)
        fired = threading.Event()
        zk.get(path, watch=lambda event: fired.set())
        time.sleep(0.05)
        began = time.monotonic()
        writer.set(path, b"x")
        assert fired.wait(5)
        latencies.append(time.monotonic() - began)
    latencies.sort()
    assert latencies[len(latencies) // 2] < 0.1, latencies


def test_persistent_watch_survives_reconnects(proxied, proxy, writer,
                                              zk_server, zk_chroot):
    writer.create("/pr")
    events = []
    proxied.add_watch("/pr", events.append, AddWatchMode.PERSISTENT_RECURSIVE)
    session = proxied.client_id[0]
    for i in range(3):
        log = disconnect(proxied, proxy)
        before = len(events)
        writer.create("/pr/missed%d" % i)  # no catch-up for persistent watches
        reconnect(proxied, proxy, log)
        # The watcher is told to re-read, with the new state and its path.
        wait_for(lambda: len(events) > before, what="NONE event")
        event = events[before]
        assert (event.type, event.state, event.path) == (
            EventType.NONE, KeeperState.CONNECTED, "/pr")
        # An event on the watched path itself.  (Descendants' events are
        # not asserted here: under reconnect churn ZooKeeper 3.8.0 was seen
        # to stop delivering them to recursive watches server-wide, a
        # server-side bug this client cannot repair.)
        writer.set("/pr", b"%d" % i)
        wait_for(lambda: len([e for e in events
                              if e.type == EventType.CHANGED]) == i + 1,
                 what="event after reconnect")
        assert (EventType.CREATED, "/pr/missed%d" % i) not in kinds(events)
    assert proxied.client_id[0] == session
    assert sum(1 for e in events if e.type == EventType.NONE) == 3
    assert server_watches(zk_server, session) == {zk_chroot + "/pr"}


def test_persistent_watch_readded_after_session_expiry(zk_hosts, zk_server,
                                                       writer, zk_chroot):
    client = start_client(zk_hosts, timeout=4.0)
    try:
        writer.create("/pe")
        events = []
        client.add_watch("/pe", events.append,
                         AddWatchMode.PERSISTENT_RECURSIVE)
        log = StateLog(client)
        old = client.client_id
        assert expire_session(zk_server.address, *old)
        wait_for(lambda: log.states[-1:] == [KazooState.CONNECTED]
                 and KazooState.LOST in log.states, what="new session")
        wait_for(lambda: any(e.type == EventType.NONE for e in events),
                 what="NONE event")
        none = [e for e in events if e.type == EventType.NONE]
        assert [(e.state, e.path) for e in none] == [
            (KeeperState.CONNECTED, "/pe")]
        new_session = client.client_id[0]
        assert new_session != old[0]
        assert server_watches(zk_server, new_session) == {zk_chroot + "/pe"}
        writer.create("/pe/new")
        wait_for(lambda: (EventType.CREATED, "/pe/new") in kinds(events),
                 what="event on the new session")
    finally:
        stop_client(client)


def test_one_shot_watches_restored_with_catch_up_events(proxied, proxy,
                                                        writer):
    for path in ("/d1", "/d2", "/d3", "/c1", "/c2"):
        writer.create(path, b"0")
    events = []
    proxied.get("/d1", watch=events.append)
    proxied.get("/d2", watch=events.append)
    proxied.get("/d3", watch=events.append)
    proxied.get_children("/c1", watch=events.append)
    proxied.get_children("/c2", watch=events.append)
    proxied.exists("/e1", watch=events.append)
    proxied.exists("/e2", watch=events.append)
    log = disconnect(proxied, proxy)
    writer.set("/d1", b"1")
    writer.delete("/d2")
    writer.create("/c1/kid")
    writer.create("/e1")
    assert events == []
    reconnect(proxied, proxy, log)
    caught_up = {(EventType.CHANGED, "/d1"), (EventType.DELETED, "/d2"),
                 (EventType.CHILD, "/c1"), (EventType.CREATED, "/e1")}
    wait_for(lambda: len(events) >= 4, what="catch-up events")
    time.sleep(0.1)
    assert set(kinds(events)) == caught_up and len(events) == 4
    # The untouched watches were restored, not fired: they fire now.
    writer.set("/d3", b"1")
    writer.create("/c2/kid")
    writer.create("/e2")
    wait_for(lambda: len(events) >= 7, what="restored watches firing")
    assert set(kinds(events[4:])) == {
        (EventType.CHANGED, "/d3"), (EventType.CHILD, "/c2"),
        (EventType.CREATED, "/e2")}


# -- DataWatch -----------------------------------------------------------------

class DataLog(object):
    """A DataWatch function recording (data, version, event type)."""

    def __init__(self, stop_when=None):
        self.calls = []
        self.stop_when = stop_when

    def __call__(self, data, stat, event):
        self.calls.append((data, stat and stat.version,
                           event.type if event else None))
        if self.stop_when is not None and self.stop_when(data):
            return False
        return None

    @property
    def data(self):
        return [call[0] for call in self.calls]


def test_datawatch_kazoo_contract(zk, writer, zk_server, zk_chroot):
    log = DataLog()
    watch = zk.DataWatch("/dw", log)
    assert isinstance(watch, DataWatch)
    assert log.calls == [(None, None, None)]  # first call, synchronous
    writer.create("/dw", b"a")
    wait_for(lambda: len(log.calls) == 2, what="create")
    assert log.calls[1] == (b"a", 0, EventType.CREATED)
    writer.set("/dw", b"b")
    wait_for(lambda: len(log.calls) == 3, what="change")
    assert log.calls[2] == (b"b", 1, EventType.CHANGED)

    two_args = []
    zk.DataWatch("/dw", lambda data, stat: two_args.append(data))
    assert two_args == [b"b"]

    with pytest.raises(KazooException):
        watch(lambda d, s: None)


def test_datawatch_reports_delete_it_saw_then_the_recreate(zk, writer):
    writer.create("/n", b"v1")
    log = DataLog()
    zk.DataWatch("/n", log)
    # Delete and re-create in one transaction: by the time the watcher
    # reads after the DELETED event the node is back.  kazoo reports
    # b"v1" then b"v2" and never the deletion.
    tx = writer.transaction()
    tx.delete("/n")
    tx.create("/n", b"v2")
    tx.commit()
    wait_for(lambda: len(log.calls) >= 3, what="delete and re-create")
    time.sleep(0.1)
    assert log.calls == [(b"v1", 0, None), (None, None, EventType.DELETED),
                         (b"v2", 0, None)]
    writer.set("/n", b"v3")
    wait_for(lambda: len(log.calls) == 4, what="watch still set")
    assert log.calls[3] == (b"v3", 1, EventType.CHANGED)


def test_datawatch_reports_delete_and_recreate_while_disconnected(
        proxied, proxy, writer):
    writer.create("/m", b"v1")
    writer.create("/gone", b"g")
    log, gone = DataLog(), DataLog()
    proxied.DataWatch("/m", log)
    proxied.DataWatch("/gone", gone)
    state = disconnect(proxied, proxy)
    writer.delete("/m")
    writer.create("/m", b"v2")
    writer.delete("/gone")
    reconnect(proxied, proxy, state)
    wait_for(lambda: log.data[-1:] == [b"v2"] and gone.data[-1:] == [None],
             what="catch-up")
    time.sleep(0.2)
    assert log.data == [b"v1", None, b"v2"]
    assert gone.data == [b"g", None]
    writer.create("/gone", b"back")
    wait_for(lambda: gone.data[-1:] == [b"back"], what="re-creation")


def test_datawatch_stop_leaves_no_server_watch(zk, writer, zk_server,
                                               zk_chroot):
    session = zk.client_id[0]
    writer.create("/s1", b"keep")
    # Stops on a node that exists (data watch) and on a missing one (exist
    # watch).
    watches = [
        zk.DataWatch("/s1", DataLog(stop_when=lambda data: data == b"stop")),
        zk.DataWatch("/s2", DataLog(stop_when=lambda data: data == b"stop"))]
    assert server_watches(zk_server, session) == {
        zk_chroot + "/s1", zk_chroot + "/s2"}
    writer.set("/s1", b"stop")
    writer.create("/s2", b"stop")
    # Each read after the event set a watch again before the function said
    # stop: that watch must go.
    wait_for(lambda: all(w._stopped for w in watches), what="stopped")
    wait_for(lambda: not server_watches(zk_server, session),
             what="watches removed from the server")
    wait_for(lambda: zk._connection.watches.paths()[:3] == ([], [], []),
             what="client registry emptied")


def test_datawatch_stop_keeps_a_watch_another_function_uses(zk, writer,
                                                            zk_server,
                                                            zk_chroot):
    session = zk.client_id[0]
    writer.create("/shared", b"0")
    other = []
    zk.get("/shared", watch=other.append)
    log = DataLog(stop_when=lambda data: data == b"1")
    zk.DataWatch("/shared", log)
    writer.set("/shared", b"1")
    wait_for(lambda: other and log.data == [b"0", b"1"], what="events")
    # The other function still watches: its next get() renews the watch
    # the stopped DataWatch must not have removed in between.
    zk.get("/shared", watch=other.append)
    writer.set("/shared", b"2")
    wait_for(lambda: len(other) == 2, what="other watcher fired again")
    assert log.data == [b"0", b"1"]
    assert server_watches(zk_server, session) == set()


def test_datawatch_continues_after_session_expiry(zk_hosts, zk_server,
                                                  writer):
    client = start_client(zk_hosts, timeout=4.0)
    try:
        writer.create("/ex", b"0")
        log = DataLog()
        client.DataWatch("/ex", log)
        states = StateLog(client)
        assert expire_session(zk_server.address, *client.client_id)
        wait_for(lambda: KazooState.LOST in states.states
                 and states.states[-1] == KazooState.CONNECTED,
                 what="new session")
        writer.set("/ex", b"1")
        wait_for(lambda: log.data[-1:] == [b"1"], what="change after expiry")
        writer.delete("/ex")
        wait_for(lambda: log.data[-1:] == [None], what="delete after expiry")
    finally:
        stop_client(client)


# -- ChildrenWatch ---------------------------------------------------------------

def test_childrenwatch_survives_delete_and_recreate(zk, writer):
    writer.create("/cw/a", makepath=True)
    calls = []
    watch = zk.ChildrenWatch("/cw", calls.append)
    assert calls == [["a"]]
    writer.delete("/cw/a")
    writer.delete("/cw")
    wait_for(lambda: calls[-1:] == [[]], what="deletion reported")
    zk.sync("/")
    time.sleep(0.1)
    assert not watch._stopped  # kazoo #153: kazoo's stops here for good
    writer.create("/cw")
    writer.create("/cw/b")
    wait_for(lambda: calls[-1:] == [["b"]], what="children after re-create")


def test_childrenwatch_recreated_in_one_transaction(zk, writer):
    writer.create("/cwt/a", makepath=True)
    calls = []
    zk.ChildrenWatch("/cwt", send_event=True,
                     func=lambda children, event: calls.append(
                         (sorted(children), event and event.type)))
    tx = writer.transaction()
    tx.delete("/cwt/a")
    tx.delete("/cwt")
    tx.create("/cwt")
    tx.create("/cwt/b")
    tx.commit()
    wait_for(lambda: calls and calls[-1][0] == ["b"], what="new children")
    writer.create("/cwt/c")
    wait_for(lambda: calls[-1][0] == ["b", "c"], what="watch still set")
    assert calls[0] == (["a"], None)


def test_childrenwatch_on_missing_node_waits_for_it(zk, writer):
    calls = []
    zk.ChildrenWatch("/later", calls.append)
    assert calls == [[]]
    writer.create("/later/x", makepath=True)
    wait_for(lambda: calls[-1:] == [["x"]], what="children once created")


def test_childrenwatch_stop_leaves_no_server_watch(proxied, proxy, writer,
                                                   zk_server, zk_chroot):
    session = proxied.client_id[0]
    writer.create("/cs")
    watches = [
        proxied.ChildrenWatch("/cs", lambda kids: False if kids else None),
        proxied.ChildrenWatch("/cs-missing",
                              lambda kids: False if kids else None)]
    # The data-side watches show in wchc: the exists watch on the missing
    # node.  Child watches do not; the wire shows them.
    assert server_watches(zk_server, session) == {zk_chroot + "/cs-missing"}
    writer.create("/cs/kid")
    writer.create("/cs-missing/kid", makepath=True)
    wait_for(lambda: all(w._stopped for w in watches), what="stopped")
    wait_for(lambda: not server_watches(zk_server, session),
             what="watches removed from the server")
    wait_for(lambda: proxied._connection.watches.paths() == (
        [], [], [], [], []), what="client registry emptied")
    wire = WireEvents(proxy)
    try:
        writer.create("/cs/kid2")
        writer.create("/cs-missing/kid2")
        writer.set("/cs-missing", b"x")
        writer.delete("/cs/kid")
        proxied.sync("/")
        time.sleep(0.2)
        assert wire.events == []  # no watch was left on the server
    finally:
        wire.close()


def test_childrenwatch_session_loss(zk_hosts, zk_server, writer):
    client = start_client(zk_hosts, timeout=4.0)
    try:
        writer.create("/sl")
        kept, dropped = [], []
        client.ChildrenWatch("/sl", kept.append)
        client.ChildrenWatch("/sl", dropped.append, allow_session_lost=False)
        states = StateLog(client)
        assert expire_session(zk_server.address, *client.client_id)
        wait_for(lambda: KazooState.LOST in states.states
                 and states.states[-1] == KazooState.CONNECTED,
                 what="new session")
        writer.create("/sl/new")
        wait_for(lambda: kept[-1:] == [["new"]], what="kept watch")
        time.sleep(0.2)
        assert dropped == [[]]
    finally:
        stop_client(client)


# -- the seed: a mirror of children and their data ------------------------------

class Mirror(object):
    """What the seed's author built: the children of a parent and their
    data, with a ChildrenWatch on the parent and a DataWatch per child."""

    def __init__(self, client, parent):
        self.client = client
        self.parent = parent
        self.lock = threading.Lock()
        self.state = {}
        self.watched = set()
        self.children = None
        self.deletes_seen = 0
        self.czxid = {}
        self.violations = []
        client.ChildrenWatch(parent, self.on_children)

    def on_children(self, children):
        self.children = sorted(children)
        for name in children:
            if name not in self.watched:
                self.watched.add(name)
                DataWatch(self.client, self.parent + "/" + name,
                          partial(self.on_data, name))

    def on_data(self, name, data, stat):
        with self.lock:
            if stat is None:
                if name in self.state:
                    self.deletes_seen += 1
                self.state.pop(name, None)
                self.czxid.pop(name, None)
            else:
                if self.czxid.get(name, stat.czxid) != stat.czxid:
                    # A new incarnation without the deletion in between.
                    self.violations.append(name)
                self.state[name] = data
                self.czxid[name] = stat.czxid


def server_children_data(client, parent):
    result = {}
    for name in client.get_children(parent):
        try:
            result[name] = client.get(parent + "/" + name)[0]
        except Exception:
            pass
    return result


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mirror_stays_exact_while_children_are_rewritten(
        seed, zk_proxy_hosts, proxy, writer):
    rng = random.Random(seed)
    names = ["child%d" % i for i in range(8)]
    for name in names:
        writer.create("/state/" + name, b"init", makepath=True)
    client = start_client(zk_proxy_hosts)
    try:
        mirror = Mirror(client, "/state")
        wait_for(lambda: mirror.state == server_children_data(writer, "/state"),
                 what="initial mirror")
        counter = 0
        cut_rounds = set(rng.sample(range(2, 14), 3))
        for round_ in range(14):
            pending = []
            for i in range(12):
                if i == 6 and round_ in cut_rounds:
                    cut_live_connection(client, proxy)
                counter += 1
                name = "/state/" + rng.choice(names)
                value = b"%d-%d" % (seed, counter)
                op = rng.random()
                if (round_, i) == (7, 0) or op < 0.04:
                    # The parent goes and comes back (kazoo #153).
                    for child in names:
                        pending.append(writer.delete_async("/state/" + child))
                    pending.append(writer.delete_async("/state"))
                    pending.append(writer.create_async("/state"))
                    pending.append(writer.create_async(name, value))
                elif op < 0.5:
                    # The seed's case: deleted and rewritten at once.
                    pending.append(writer.delete_async(name))
                    pending.append(writer.create_async(name, value))
                elif op < 0.7:
                    pending.append(writer.set_async(name, value))
                elif op < 0.85:
                    pending.append(writer.set_async(name, value))
                    pending.append(writer.delete_async(name))
                else:
                    pending.append(writer.create_async(name, value))
            for result in pending:
                # Errors (NoNode, NodeExists) are part of the storm.
                assert result.wait(10)
        expected = server_children_data(writer, "/state")
        wait_for(lambda: mirror.state == expected
                 and mirror.children == sorted(expected),
                 timeout=20, what="mirror equal to the server")
        assert proxy.connections_cut >= 3
        assert mirror.deletes_seen > 0
        assert mirror.violations == []
    finally:
        stop_client(client)


# -- the I/O path never runs user code ------------------------------------------

def test_slow_watcher_does_not_stall_requests_or_pings(zk_proxy_hosts, proxy,
                                                       writer):
    client = start_client(zk_proxy_hosts, timeout=1.0)
    try:
        # Read timeout 2/3 s: a connection stalled for the watcher's 2 s
        # would be dropped.
        assert client.negotiated_timeout <= 1500
        states = StateLog(client)
        entered, done = threading.Event(), threading.Event()
        later = []

        def slow(event):
            entered.set()
            time.sleep(2.0)
            done.set()

        writer.create("/slow")
        client.get("/slow", watch=slow)
        client.exists("/slow-2", watch=later.append)
        writer.set("/slow", b"go")
        assert entered.wait(5)
        started = time.monotonic()
        latencies = []
        # Requests keep flowing on the same connection...
        while time.monotonic() - started < 0.5:
            t0 = time.monotonic()
            client.get("/slow")
            client.get_async("/slow").get(timeout=5)
            latencies.append(time.monotonic() - t0)
        # ... and with nothing sent for longer than the read timeout, only
        # pings keep the connection alive.
        time.sleep(0.9)
        assert not done.is_set(), "the watcher returned too early to tell"
        writer.create("/slow-2")
        assert len(latencies) > 10 and max(latencies) < 0.5, latencies
        assert states.states == []
        assert proxy.connections_accepted == 1
        wait_for(lambda: later, what="event queued behind the slow watcher")
        assert done.is_set()
    finally:
        stop_client(client)
