"""TreeCache: convergence under storms, reconnects and session expiry, in
both modes (one persistent recursive watch, and the one-shot fallback)."""

import random
import threading
import time

import pytest
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.protocol.states import KazooState

import fastzk
from _watchlib import (  # noqa: E402
    answer_add_watch_unimplemented,
    WireEvents,
    cut_live_connection,
    server_watches,
    start_client,
    stop_client,
    wait_for,
)
from fastzk import NodeData, TreeCache, TreeEvent
from fastzk.testing.zkserver import expire_session

MODES = {"persistent": None, "oneshot": False}
ADDED, UPDATED, REMOVED = (TreeEvent.NODE_ADDED, TreeEvent.NODE_UPDATED,
                           TreeEvent.NODE_REMOVED)
NAMES = {ADDED: "ADDED", UPDATED: "UPDATED", REMOVED: "REMOVED"}


@pytest.fixture(params=sorted(MODES))
def mode(request):
    """Each cache test runs on a persistent recursive watch and on the
    forced one-shot fallback."""
    return request.param


class Recorder(object):
    """A listener keeping every event, the last node event per path, and
    any event that contradicts what the listener was told before (an
    ADDED for a path it holds, an UPDATED or REMOVED for one it does not)."""

    def __init__(self, cache):
        self.events = []
        self.last = {}
        self.present = set()
        self.violations = []
        self.initialized = threading.Event()
        self.lock = threading.Lock()
        cache.listen(self)

    def __call__(self, event):
        with self.lock:
            self.events.append(event)
            if event.event_type == TreeEvent.INITIALIZED:
                self.initialized.set()
                return
            data = event.event_data
            if data is None:
                return
            path = data.path
            kind = event.event_type
            if kind == ADDED:
                if path in self.present:
                    self.violations.append(("ADDED twice", path))
                self.present.add(path)
            elif path not in self.present:
                self.violations.append((NAMES[kind] + " of absent", path))
            elif kind == REMOVED:
                self.present.discard(path)
            self.last[path] = (kind, data)

    def node_events(self):
        with self.lock:
            return [(NAMES[e.event_type], e.event_data.path)
                    for e in self.events if e.event_data is not None]

    def types(self):
        with self.lock:
            return [e.event_type for e in self.events]


def make_cache(client, path, mode):
    cache = TreeCache(client, path, use_persistent_watch=MODES[mode])
    recorder = Recorder(cache)
    cache.start()
    assert recorder.initialized.wait(10), "INITIALIZED"
    assert cache.uses_persistent_watch == (mode == "persistent")
    return cache, recorder


def server_tree(client, root):
    """{path: (data, stat, children)} of the server's subtree."""
    tree = {}
    level = [root]
    while level:
        following = []
        for path in level:
            try:
                data, stat = client.get(path)
                children = client.get_children(path)
            except NoNodeError:
                continue
            tree[path] = (data, stat, frozenset(children))
            following.extend(path.rstrip("/") + "/" + c for c in children)
        level = following
    return tree


def cache_tree(cache):
    """The same shape, from the cache's own maps (orphans included)."""
    tree = {}
    for path, node in list(cache._nodes.items()):
        tree[path] = (node.data, node.stat,
                      cache.get_children(path, frozenset()))
    return tree


def assert_converged(cache, recorder, client, root, timeout=20.0):
    """Once writes stopped: the cache equals the server (data, full stat,
    children), the cache's public view agrees, and the last event of
    every path agrees with its final state."""
    expected = {}

    def equal():
        expected.clear()
        expected.update(server_tree(client, root))
        return cache_tree(cache) == expected

    began = time.monotonic()
    wait_for(equal, timeout=timeout, what="cache equal to the server")
    recorder.converged_after = time.monotonic() - began
    time.sleep(0.2)  # nothing more may arrive
    assert cache_tree(cache) == expected
    for path, (data, stat, children) in expected.items():
        assert cache.get_data(path) == NodeData.make(path, data, stat)
        assert cache.get_children(path) == children
        kind, node = recorder.last[path]
        assert kind in (ADDED, UPDATED), (path, NAMES[kind])
        assert (node.data, node.stat.czxid, node.stat.mzxid) == (
            data, stat.czxid, stat.mzxid), path
    for path, (kind, node) in recorder.last.items():
        if path not in expected:
            assert kind == REMOVED, (path, NAMES[kind])
            assert cache.get_data(path) is None
    assert recorder.violations == []
    assert recorder.present == set(expected)
    return expected


# -- the API ----------------------------------------------------------------------

def test_load_events_and_api(zk, writer, zk_server, zk_chroot, mode):
    writer.create("/t/a/b", b"b", makepath=True)
    writer.create("/t/c", b"c")
    cache, rec = make_cache(zk, "/t", mode)
    try:
        assert sorted(rec.node_events()) == [
            ("ADDED", "/t"), ("ADDED", "/t/a"), ("ADDED", "/t/a/b"),
            ("ADDED", "/t/c")]
        assert rec.types()[-1] == TreeEvent.INITIALIZED
        assert rec.node_events().index(("ADDED", "/t/a")) < \
            rec.node_events().index(("ADDED", "/t/a/b"))
        assert cache.get_data("/t/c").data == b"c"
        assert cache.get_children("/t") == frozenset(["a", "c"])
        assert cache.get_children("/t/nope") is None
        assert cache.get_data("/t/nope", "dflt") == "dflt"
        with pytest.raises(ValueError):
            cache.get_data("/elsewhere")
        with pytest.raises(KazooException):
            cache.start()

        del rec.events[:]
        writer.set("/t/c", b"c2")
        wait_for(lambda: len(rec.node_events()) >= 1, what="an event")
        writer.create("/t/a/d", b"d")
        wait_for(lambda: len(rec.node_events()) >= 2, what="2 events")
        writer.delete("/t/a/b")
        wait_for(lambda: len(rec.node_events()) >= 3, what="3 events")
        time.sleep(0.1)
        assert rec.node_events() == [("UPDATED", "/t/c"), ("ADDED", "/t/a/d"),
                                     ("REMOVED", "/t/a/b")]
        assert rec.last["/t/c"][1].data == b"c2"
        assert_converged(cache, rec, writer, "/t")

        # The watch kind it says it uses is the one the server holds.
        session = zk.client_id[0]
        watched = server_watches(zk_server, session)
        if mode == "persistent":
            assert watched == {zk_chroot + "/t"}
        else:
            assert watched == {zk_chroot + p for p in
                               ("/t", "/t/a", "/t/c", "/t/a/d")}
    finally:
        cache.close()
    wait_for(lambda: not server_watches(zk_server, session),
             what="no watch left after close")
    assert zk._connection.watches.paths() == ([], [], [], [], [])
    assert cache.get_data("/t") is None
    with pytest.raises(KazooException):
        cache.start()


def test_close_leaves_no_watch_behind(proxied, proxy, writer, zk_server,
                                      mode):
    for path in ("/cl/a/x", "/cl/b"):
        writer.create(path, b"", makepath=True)
    cache, rec = make_cache(proxied, "/cl", mode)
    writer.create("/cl/a/y")
    writer.delete("/cl/b")
    wait_for(lambda: cache.get_data("/cl/a/y") is not None
             and cache.get_data("/cl/b") is None, what="changes")
    cache.close()
    assert not server_watches(zk_server, proxied.client_id[0])
    wire = WireEvents(proxy)
    try:
        for path in ("/cl", "/cl/a", "/cl/a/x", "/cl/a/y"):
            writer.set(path, b"after close")
        writer.create("/cl/b")
        writer.create("/cl/a/z")
        writer.delete("/cl/a/x")
        proxied.sync("/")
        time.sleep(0.2)
        assert wire.events == []
    finally:
        wire.close()
    assert set(rec.node_events()[-2:]) == {("ADDED", "/cl/a/y"),
                                           ("REMOVED", "/cl/b")}


def test_falls_back_to_one_shot_watches_without_add_watch(proxied, proxy,
                                                          writer, zk_server):
    writer.create("/fb/a", b"a", makepath=True)
    writer.create("/fb/b", b"b")
    hook = answer_add_watch_unimplemented(proxy)
    cache = TreeCache(proxied, "/fb")
    rec = Recorder(cache)
    cache.start()
    assert rec.initialized.wait(10), "INITIALIZED"
    assert hook.fired.is_set()
    assert not cache.uses_persistent_watch
    writer.create("/fb/a/new", b"n")
    writer.set("/fb/a", b"a2")
    writer.delete("/fb/b")
    wait_for(lambda: len(rec.node_events()) >= 6, what="three changes")
    assert set(rec.node_events()[3:]) == {
        ("ADDED", "/fb/a/new"), ("UPDATED", "/fb/a"), ("REMOVED", "/fb/b")}
    assert rec.violations == []
    cache.close()
    assert not server_watches(zk_server, proxied.client_id[0])


def test_listener_errors_go_to_fault_listeners(zk, writer, mode):
    writer.create("/f")
    cache = TreeCache(zk, "/f", use_persistent_watch=MODES[mode])
    faults = []
    boom = ValueError("listener failed")
    seen = []

    @cache.listen
    def bad(event):
        seen.append(event.event_type)
        raise boom

    cache.listen_fault(faults.append)
    cache.start()
    try:
        wait_for(lambda: TreeEvent.INITIALIZED in seen, what="INITIALIZED")
        writer.create("/f/x")
        wait_for(lambda: seen.count(ADDED) == 2, what="events keep coming")
        assert faults and all(f is boom for f in faults)
    finally:
        cache.close()


def test_root_deleted_and_recreated(zk, writer, mode):
    writer.create("/rt/a", b"1", makepath=True)
    cache, rec = make_cache(zk, "/rt", mode)
    try:
        writer.delete("/rt", recursive=True)
        wait_for(lambda: cache.get_data("/rt") is None, what="root removed")
        assert cache.get_data("/rt/a") is None
        writer.create("/rt/b", b"2", makepath=True)
        wait_for(lambda: cache.get_data("/rt/b") is not None,
                 what="root back")
        assert_converged(cache, rec, writer, "/rt")
        assert rec.last["/rt/a"][0] == REMOVED
    finally:
        cache.close()


# -- the anchors' failures ----------------------------------------------------------

def test_update_then_delete_ends_removed(zk, writer, mode):
    """kazoo #645: update then delete must not end with a stale ADDED."""
    paths = ["/u/n%02d" % i for i in range(30)]
    for path in paths:
        writer.create(path, b"0", makepath=True)
    cache, rec = make_cache(zk, "/u", mode)
    try:
        for _ in range(3):
            pending = []
            for path in paths:
                pending.append(writer.set_async(path, b"1"))
                pending.append(writer.delete_async(path))
                pending.append(writer.create_async(path, b"2"))
                pending.append(writer.set_async(path, b"3"))
            for result in pending:
                assert result.wait(10)
        pending = []
        for path in paths:
            pending.append(writer.set_async(path, b"4"))
            pending.append(writer.delete_async(path))
        for result in pending:
            assert result.wait(10)
        assert_converged(cache, rec, writer, "/u")
        assert all(rec.last[path][0] == REMOVED for path in paths)
    finally:
        cache.close()


def test_delete_and_recreate_is_removed_then_added(zk, writer, mode):
    writer.create("/dr/n", b"old", makepath=True)
    cache, rec = make_cache(zk, "/dr", mode)
    try:
        old = cache.get_data("/dr/n").stat.czxid
        tx = writer.transaction()
        tx.delete("/dr/n")
        tx.create("/dr/n", b"new")
        tx.commit()
        wait_for(lambda: cache.get_data("/dr/n").data == b"new",
                 what="new incarnation")
        assert rec.node_events()[-2:] == [("REMOVED", "/dr/n"),
                                          ("ADDED", "/dr/n")]
        assert cache.get_data("/dr/n").stat.czxid != old
        assert_converged(cache, rec, writer, "/dr")
    finally:
        cache.close()


# -- storms -------------------------------------------------------------------------

def storm(writer, rng, root, rounds, on_round=None):
    """Pipelined bursts of creates, updates, deletes and delete+create on a
    two-level tree, from ``writer``.  ``on_round(round, half)`` runs in the
    middle of each burst.  Returns how many deletes and creates the server
    carried out."""
    dirs = ["%s/d%d" % (root, i) for i in range(3)]
    leaves = ["%s/l%d" % (d, j) for d in dirs for j in range(8)]
    counter = 0
    done = {"deleted": 0, "created": 0}
    for round_ in range(rounds):
        pending = []
        for i in range(40):
            if i == 20 and on_round is not None:
                on_round(round_)
            counter += 1
            value = b"v%d" % counter
            leaf = rng.choice(leaves)
            op = rng.random()
            if op < 0.3:  # the seed's case: deleted and rewritten at once
                pending.append(writer.delete_async(leaf))
                pending.append(writer.create_async(leaf, value))
            elif op < 0.5:  # kazoo #645: updated then deleted
                pending.append(writer.set_async(leaf, value))
                pending.append(writer.delete_async(leaf))
            elif op < 0.75:
                pending.append(writer.set_async(leaf, value))
            elif op < 0.95:
                pending.append(writer.create_async(leaf, value))
            else:  # a whole directory goes and comes back
                directory = rng.choice(dirs)
                for child in leaves:
                    if child.startswith(directory + "/"):
                        pending.append(writer.delete_async(child))
                pending.append(writer.delete_async(directory))
                pending.append(writer.create_async(directory, value))
        for result in pending:
            assert result.wait(10)  # errors (NoNode, NodeExists) expected
            if result.successful() and isinstance(result.value, (bool, str)):
                done["deleted" if result.value is True else "created"] += 1
    return done


@pytest.mark.parametrize("seed", [11, 22, 33])
def test_storm_with_cuts_converges(seed, mode, zk_proxy_hosts, proxy,
                                   writer):
    rng = random.Random(seed)
    root = "/storm"
    for d in range(3):
        writer.create("%s/d%d" % (root, d), b"", makepath=True)
    client = start_client(zk_proxy_hosts)
    try:
        cache, rec = make_cache(client, root, mode)
        try:
            cut_rounds = set(rng.sample(range(1, 12), 4))

            def on_round(round_):
                if round_ in cut_rounds:
                    cut_live_connection(client, proxy)

            done = storm(writer, rng, root, 12, on_round)
            tree = assert_converged(cache, rec, writer, root)
            assert proxy.connections_cut >= 4
            # The storm did what it is meant to.
            events = rec.node_events()
            assert len(tree) > 4
            counts = {kind: sum(1 for e in events if e[0] == kind)
                      for kind in ("ADDED", "UPDATED", "REMOVED")}
            print("storm seed %d %s: %d nodes at the end, events %r, "
                  "converged %.3f s after the last write"
                  % (seed, mode, len(tree), counts, rec.converged_after))
            assert done["deleted"] > 10 and done["created"] > 10, done
            # One-shot watches may fold a delete and a recreate into one
            # re-read, so the cache's own counts are only bounded below.
            assert counts["REMOVED"] > 0 and counts["ADDED"] > 0
            suspended = rec.types().count(TreeEvent.CONNECTION_SUSPENDED)
            reconnected = rec.types().count(TreeEvent.CONNECTION_RECONNECTED)
            assert suspended >= 4 and reconnected >= 4
        finally:
            cache.close()
    finally:
        stop_client(client)


# -- reconnects and sessions ---------------------------------------------------------

def test_reconnect_brings_listeners_up_to_date(proxied, proxy, writer, mode):
    writer.create("/rc/keep", b"k", makepath=True)
    writer.create("/rc/gone/kid", b"g", makepath=True)
    writer.create("/rc/upd", b"0")
    cache, rec = make_cache(proxied, "/rc", mode)
    try:
        proxy.reject(True)
        proxy.cut()
        wait_for(lambda: TreeEvent.CONNECTION_SUSPENDED in rec.types(),
                 what="CONNECTION_SUSPENDED")
        del rec.events[:]
        writer.create("/rc/new", b"n")
        writer.delete("/rc/gone", recursive=True)
        writer.set("/rc/upd", b"1")
        writer.delete("/rc/keep")
        writer.create("/rc/keep", b"k2")  # another incarnation
        proxy.reject(False)
        assert_converged(cache, rec, writer, "/rc")
        events = rec.node_events()
        assert set(events) == {
            ("ADDED", "/rc/new"), ("REMOVED", "/rc/gone"),
            ("REMOVED", "/rc/gone/kid"), ("UPDATED", "/rc/upd"),
            ("REMOVED", "/rc/keep"), ("ADDED", "/rc/keep")}
        assert events.index(("REMOVED", "/rc/gone/kid")) < \
            events.index(("REMOVED", "/rc/gone"))
        assert events.index(("REMOVED", "/rc/keep")) < \
            events.index(("ADDED", "/rc/keep"))
        assert TreeEvent.CONNECTION_RECONNECTED in rec.types()
    finally:
        cache.close()


def test_converges_after_session_expiry(zk_hosts, zk_server, writer, mode,
                                        zk_chroot):
    client = start_client(zk_hosts, timeout=4.0)
    try:
        writer.create("/se/a", b"a", makepath=True)
        writer.create("/se/b", b"b")
        cache, rec = make_cache(client, "/se", mode)
        try:
            states = []
            client.add_listener(states.append)
            old = client.client_id
            assert expire_session(zk_server.address, *old)
            writer.delete("/se/a")
            writer.set("/se/b", b"b2")
            writer.create("/se/c", b"c")
            wait_for(lambda: KazooState.LOST in states
                     and states[-1] == KazooState.CONNECTED,
                     what="new session")
            assert client.client_id[0] != old[0]
            assert_converged(cache, rec, writer, "/se")
            assert TreeEvent.CONNECTION_LOST in rec.types()
            # Loaded again on the new session, as kazoo's cache does.
            wait_for(lambda: rec.types().count(TreeEvent.INITIALIZED) == 2,
                     what="INITIALIZED after the session loss")
            # And it follows changes on the new session.
            writer.create("/se/d", b"d")
            wait_for(lambda: cache.get_data("/se/d") is not None,
                     what="change on the new session")
            session = client.client_id[0]
            if mode == "persistent":
                assert server_watches(zk_server, session) == {
                    zk_chroot + "/se"}
            else:
                assert zk_chroot + "/se/d" in server_watches(zk_server,
                                                             session)
        finally:
            cache.close()
    finally:
        stop_client(client)


def test_slow_listener_stalls_neither_client_nor_other_caches(
        zk_proxy_hosts, proxy, writer):
    client = start_client(zk_proxy_hosts, timeout=1.0)
    slow_cache = fast_cache = None
    try:
        writer.create("/sl", b"")
        states = []
        client.add_listener(states.append)
        sleeping = threading.Event()

        # Both on the one persistent watch of the same root (a one-shot
        # watch on that path would turn it into a one-shot one on ZooKeeper
        # 3.8: see test_watches).
        slow_cache = TreeCache(client, "/sl")
        fast_cache = TreeCache(client, "/sl")

        @slow_cache.listen
        def slow(event):
            if event.event_type == ADDED and event.event_data.path == "/sl/x":
                sleeping.set()
                time.sleep(2.0)

        fast = Recorder(fast_cache)
        slow_cache.start()
        fast_cache.start()
        assert fast.initialized.wait(10)
        writer.create("/sl/x")
        assert sleeping.wait(5)
        began = time.monotonic()
        writer.create("/sl/y", b"y")
        wait_for(lambda: fast_cache.get_data("/sl/y") is not None,
                 timeout=1.0, what="the other cache, meanwhile")
        assert client.get("/sl/y")[0] == b"y"
        assert time.monotonic() - began < 1.0
        time.sleep(1.2)  # idle beyond the read timeout: pings only
        assert states == [] and proxy.connections_accepted == 1
        wait_for(lambda: slow_cache.get_data("/sl/y") is not None,
                 what="the slow cache catches up")
    finally:
        for cache in (slow_cache, fast_cache):
            if cache is not None:
                cache.close()
        stop_client(client)


def test_exported_from_package():
    assert fastzk.TreeCache is TreeCache
    assert fastzk.TreeEvent is TreeEvent and fastzk.NodeData is NodeData
    assert TreeCache.__doc__ and TreeCache.start.__doc__
