"""TreeCache: start, convergence after a reconnect, and a storm with cuts.

fastzk's TreeCache (one persistent recursive watch, pipelined reads,
full re-read compared by version on reconnect) against kazoo 2.11's
TreeCache (one-shot data and child watches on every node).

- ``cache.start``: seconds from ``start()`` to INITIALIZED on a tree of
  10,000 nodes (root, 99 directories of 100 leaves each).
- ``cache.reconnect``: the cache's client talks through a TcpProxy; the
  proxy is frozen, the tree is changed (1,000 updates, 500 deletes, 500
  creates), then every connection is cut and traffic resumes: seconds from
  the cut until the cache holds exactly what the server holds.
- ``cache.storm``: a tree of 100 nodes under a writer's storm of random
  sets, deletes and re-creates (another process, pipelined) while the
  proxy cuts the cache's connection every 0.3-0.8 s.  After the storm the
  cache gets up to 6 s to agree with the server; a run counts as *not
  converged* when the cache's content or the last event it delivered for
  some path disagrees with the server (a node that exists must have had
  NODE_ADDED or NODE_UPDATED last, with the server's data; a node that is
  gone must have had NODE_REMOVED last, or no event at all).
"""

import random
import threading
import time

import pytest

from kazoo.recipe.cache import TreeEvent

from fastzk.benchcases import _benchlib as lib
from fastzk.benchcases._benchlib import IMPLS
from fastzk.testing.proxy import TcpProxy


def tree_size():
    """Nodes of the start/reconnect tree (FASTZK_BENCH_TREE_N, default
    10,000; 2,000 in a quick run)."""
    return lib.env_int("FASTZK_BENCH_TREE_N", 10000, 2000)


def storm_runs():
    """Storm runs per client (FASTZK_BENCH_STORM_RUNS, default 6; 2 in a
    quick run)."""
    return lib.env_int("FASTZK_BENCH_STORM_RUNS", 6, 2)


def build_tree(admin, root, total):
    """root + D directories of up to 100 leaves: ``total`` nodes in all.
    Returns {path: data} of everything below root."""
    per_dir = 100
    dirs = max(1, (total - 1) // (per_dir + 1))
    leaves = total - 1 - dirs
    expected = {}
    admin.ensure_path(root)
    dir_names = ["d%03d" % i for i in range(dirs)]
    lib.populate(admin, root, dir_names, b"dir")
    for name in dir_names:
        expected[root + "/" + name] = b"dir"
    pending = []
    for i in range(leaves):
        path = "%s/%s/leaf-%04d" % (root, dir_names[i % dirs], i)
        data = b"leaf %d" % i
        expected[path] = data
        pending.append(admin.create_async(path, data))
        if len(pending) >= 2000:
            for r in pending:
                r.get()
            pending = []
    for r in pending:
        r.get()
    return expected


def cache_content(cache, root):
    """{path: data} of everything below ``root`` in the cache."""
    found = {}
    level = [root]
    while level:
        nxt = []
        for path in level:
            names = cache.get_children(path) or ()
            for name in names:
                child = path + "/" + name
                node = cache.get_data(child)
                if node is not None:
                    found[child] = node.data
                nxt.append(child)
        level = nxt
    return found


def server_content(admin, root):
    """{path: data} of everything below ``root`` on the server."""
    from kazoo.exceptions import NoNodeError

    found = {}
    level = [root]
    while level:
        kids = [(p, admin.get_children_async(p)) for p in level]
        paths = []
        for p, r in kids:
            try:
                paths.extend(p + "/" + c for c in r.get())
            except NoNodeError:
                pass
        datas = [(p, admin.get_async(p)) for p in paths]
        level = []
        for p, r in datas:
            try:
                found[p] = r.get()[0]
                level.append(p)
            except NoNodeError:
                pass
    return found


def _start_cache(impl, client, root, timeout=300):
    TreeCache = lib.tree_cache_class(impl)
    cache = TreeCache(client, root)
    initialized = threading.Event()
    events = {}

    def listener(event):
        etype = event.event_type
        if etype == TreeEvent.INITIALIZED:
            initialized.set()
        elif etype in (TreeEvent.NODE_ADDED, TreeEvent.NODE_UPDATED,
                       TreeEvent.NODE_REMOVED):
            node = event.event_data
            events[node.path] = (etype, node.data)

    cache.listen(listener)
    start = time.perf_counter()
    cache.start()
    if not initialized.wait(timeout):
        cache.close()
        raise AssertionError("%s TreeCache not initialized after %d s"
                             % (impl, timeout))
    return cache, events, time.perf_counter() - start


@pytest.fixture(scope="module")
def big_tree(admin):
    root = lib.unique_root("bench-tree")
    expected = build_tree(admin, root, tree_size())
    yield root, expected
    lib.wipe(admin, root)


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("impl", IMPLS)
def test_tree_cache_start(benchmark, impl, clients, big_tree):
    root, expected = big_tree
    client = clients(impl)
    times = []

    def run():
        cache, events, seconds = _start_cache(impl, client, root)
        try:
            times.append(seconds)
            got = cache_content(cache, root)
            assert got == expected, "%s cache incomplete: %d of %d nodes" % (
                impl, len(got), len(expected))
        finally:
            cache.close()

    benchmark.group = "TreeCache start (%d nodes)" % (len(expected) + 1)
    benchmark.pedantic(run, rounds=lib.pick(2, 1), iterations=1)
    lib.record(benchmark, "cache.start", impl,
               seconds_to_initialized=min(times), nodes=len(expected) + 1)


def _host_port(hosts):
    return lib.first_host(hosts)


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("impl", IMPLS)
def test_tree_cache_reconnect(benchmark, impl, zk, admin, clients):
    host, port = _host_port(zk.hosts)
    root = lib.unique_root("bench-reconnect")
    expected = build_tree(admin, root, tree_size())
    proxy = TcpProxy(host, port).start()
    client = clients(impl, hosts=proxy.address)
    cache, events, _ = _start_cache(impl, client, root)
    result = {}
    try:
        rng = random.Random(7)
        leaves = sorted(p for p in expected if "/leaf-" in p)
        dirs = sorted(p for p in expected if "/leaf-" not in p)
        scale = max(1, len(expected) // 10)
        updated = rng.sample(leaves, scale)
        rest = sorted(set(leaves) - set(updated))
        deleted = rng.sample(rest, scale // 2)
        created = ["%s/new-%04d" % (rng.choice(dirs), i)
                   for i in range(scale // 2)]

        def run():
            proxy.freeze()
            results = [admin.set_async(p, b"updated") for p in updated]
            results += [admin.delete_async(p) for p in deleted]
            results += [admin.create_async(p, b"created") for p in created]
            for r in results:
                r.get()
            for p in updated:
                expected[p] = b"updated"
            for p in deleted:
                del expected[p]
            for p in created:
                expected[p] = b"created"
            watched = updated + deleted + created

            def changed_ok():
                for p in watched:
                    node = cache.get_data(p)
                    want = expected.get(p)
                    if want is None:
                        if node is not None:
                            return False
                    elif node is None or node.data != want:
                        return False
                return True

            start = time.perf_counter()
            proxy.cut()
            proxy.unfreeze()
            seconds = None
            while time.perf_counter() - start < 120:
                if lib.wait_for(changed_ok, 120 - (time.perf_counter() - start),
                                0.02) is None:
                    break
                if cache_content(cache, root) == expected:
                    seconds = time.perf_counter() - start
                    break
                time.sleep(0.02)
            result["seconds"] = seconds
            result["changes"] = len(watched)

        benchmark.group = "TreeCache convergence after a cut (%d nodes)" % (
            len(expected) + 1)
        benchmark.pedantic(run, rounds=1, iterations=1)
        assert result["seconds"] is not None, \
            "%s TreeCache did not converge within 120 s of the cut" % impl
    finally:
        cache.close()
        client.stop()
        proxy.close()
        lib.wipe(admin, root)
    lib.record(benchmark, "cache.reconnect", impl,
               seconds_to_converge=result["seconds"],
               changes=result["changes"])


def _storm_run(impl, zk, admin, writer, run_no, seconds, settle=6.0):
    """One storm; returns (content problem, event problem), each None when
    the cache agrees with the server within ``settle`` seconds."""
    host, port = _host_port(zk.hosts)
    rng = random.Random(1000 + run_no)
    root = lib.unique_root("bench-storm")
    names = ["n%03d" % i for i in range(100)]
    lib.populate(admin, root, names, b"init")
    proxy = TcpProxy(host, port).start()
    client = lib.make_client(impl, proxy.address)
    cache, events, _ = _start_cache(impl, client, root)
    stop = threading.Event()

    def cutter():
        while not stop.wait(rng.uniform(0.3, 0.8)):
            proxy.cut()

    thread = threading.Thread(target=cutter, daemon=True)
    try:
        thread.start()
        counter = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ops = []
            for _ in range(300):
                counter += 1
                path = root + "/" + rng.choice(names)
                r = rng.random()
                if r < 0.5:
                    ops.append(("set", path, b"s%d" % counter))
                elif r < 0.75:
                    ops.append(("delete", path))
                else:
                    ops.append(("create", path, b"c%d" % counter))
            writer.run(ops, window=30)
        stop.set()
        thread.join()
        truth = server_content(admin, root)
        deadline = time.monotonic() + settle
        while True:
            content, event = _disagreement(cache, events, root, truth)
            if (content is None and event is None) \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        return content, event
    finally:
        stop.set()
        cache.close()
        try:
            lib.close_client(client)
        finally:
            proxy.close()
        lib.wipe(admin, root)


def _disagreement(cache, events, root, truth):
    """What disagrees with the server: (content problem or None, event
    problem or None)."""
    content = None
    got = cache_content(cache, root)
    if got != truth:
        missing = sorted(set(truth) - set(got))
        extra = sorted(set(got) - set(truth))
        stale = sorted(p for p in set(got) & set(truth) if got[p] != truth[p])
        content = ("cache differs from server: %d missing, %d extra, %d stale"
                   % (len(missing), len(extra), len(stale)))
    names = {TreeEvent.NODE_ADDED: "NODE_ADDED",
             TreeEvent.NODE_UPDATED: "NODE_UPDATED",
             TreeEvent.NODE_REMOVED: "NODE_REMOVED"}
    event = None
    for path, (etype, data) in list(events.items()):
        if path == root:
            continue
        if path in truth:
            if etype == TreeEvent.NODE_REMOVED or data != truth[path]:
                event = ("last event for existing node was %s %r, server has "
                         "%r" % (names[etype], data, truth[path]))
                break
        elif etype != TreeEvent.NODE_REMOVED:
            event = ("last event for a deleted node was %s (kazoo #645)"
                     % names[etype])
            break
    if event is None:
        for path in truth:
            if path not in events:
                event = "no event ever delivered for an existing node"
                break
    return content, event


@pytest.fixture(scope="module")
def writer(zk):
    w = lib.Writer(zk.hosts)
    yield w
    w.close()


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("impl", IMPLS)
def test_tree_cache_storm(benchmark, impl, zk, admin, writer):
    runs = storm_runs()
    seconds = lib.pick(3.0, 2.0)
    outcome = {"failed": 0, "content": 0, "events": 0, "reasons": []}

    def run():
        for i in range(runs):
            content, event = _storm_run(impl, zk, admin, writer, i, seconds)
            if content or event:
                outcome["failed"] += 1
                outcome["content"] += bool(content)
                outcome["events"] += bool(event)
                outcome["reasons"].append(content or event)

    benchmark.group = "TreeCache storm with cuts"
    benchmark.pedantic(run, rounds=1, iterations=1)
    lib.record(benchmark, "cache.storm", impl, runs=runs,
               not_converged=outcome["failed"],
               content_wrong=outcome["content"],
               last_event_wrong=outcome["events"],
               reasons=outcome["reasons"][:5])
