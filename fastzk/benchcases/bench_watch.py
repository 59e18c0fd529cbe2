"""Change notifications delivered to a listener, events per second.

A writer in another process (a fastzk client, the same for both sides) sets
each of M nodes under one parent once per round, pipelined; a round ends
when the listener has been told about all M changes.  Rate = M / round
time; the writer's own time is the ceiling and is reported with it.

What is compared (kazoo 2.11 has no persistent watches):

- ``watch.events``: fastzk: ONE persistent recursive watch on the parent
  (``add_watch(parent, f, AddWatchMode.PERSISTENT_RECURSIVE)``), the
  listener gets each WatchedEvent.  kazoo: its best equivalent, a
  ``DataWatch`` on every node (one-shot data watches; each notification
  costs a ``get`` that re-arms the watch and hands the listener the new
  data).  Every node changes once per round, so one-shot watches miss
  nothing here.
- ``cache.events``: NODE_UPDATED events of a TreeCache on the parent,
  fastzk's TreeCache (persistent recursive watch, re-reads pipelined) vs
  kazoo's TreeCache (one-shot watches on every node).  Both read the data.
"""

import threading
import time

import pytest

from kazoo.protocol.states import EventType

from fastzk.benchcases import _benchlib as lib
from fastzk.benchcases._benchlib import IMPLS


def _nodes():
    return lib.pick(5000, 1000)


class _Counter(object):
    def __init__(self):
        self.count = 0
        self.target = None
        self.done = threading.Event()
        self.last = None

    def hit(self):
        self.count += 1
        if self.target is not None and self.count >= self.target:
            self.last = time.perf_counter()
            self.done.set()

    def expect(self, extra):
        self.done.clear()
        self.target = self.count + extra


@pytest.fixture(scope="module")
def writer(zk):
    w = lib.Writer(zk.hosts)
    yield w
    w.close()


@pytest.fixture
def watched(admin, root):
    names = ["n%05d" % i for i in range(_nodes())]
    lib.populate(admin, root, names, b"v0")
    return root, [root + "/" + n for n in names]


def _run_rounds(benchmark, writer, counter, paths):
    m = len(paths)
    state = {"round": 0, "writer_seconds": [], "missing": 0}

    def run():
        state["round"] += 1
        value = b"v%d" % state["round"]
        counter.expect(m)
        writer.start([("set", p, value) for p in paths])
        if not counter.done.wait(120):
            state["missing"] += counter.target - counter.count
        seconds, _ = writer.wait()
        state["writer_seconds"].append(seconds)

    benchmark.pedantic(run, rounds=lib.pick(3, 2), warmup_rounds=1)
    if state["missing"]:
        raise AssertionError("%d change notifications never arrived"
                             % state["missing"])
    return m / min(state["writer_seconds"])


@pytest.mark.parametrize("impl", IMPLS)
def test_watch_events(benchmark, impl, clients, writer, watched):
    root, paths = watched
    client = clients(impl)
    counter = _Counter()
    if impl == "fastzk":
        from fastzk import AddWatchMode

        def listener(event):
            if event.type == EventType.CHANGED:
                counter.hit()

        client.add_watch(root, listener, AddWatchMode.PERSISTENT_RECURSIVE)
        compared = "one persistent recursive watch"
    else:
        from kazoo.recipe.watchers import DataWatch

        def func(data, stat, event=None):
            if event is not None and event.type == EventType.CHANGED:
                counter.hit()

        for path in paths:
            DataWatch(client, path, func)
        compared = "DataWatch per node (one-shot watch + get per event)"
    benchmark.group = "watch events/s"
    writer_rate = _run_rounds(benchmark, writer, counter, paths)
    lib.record(benchmark, "watch.events", impl, ops_per_round=len(paths),
               writer_rate=writer_rate, compared=compared)


@pytest.mark.parametrize("impl", IMPLS)
def test_tree_cache_events(benchmark, impl, clients, writer, watched):
    root, paths = watched
    client = clients(impl)
    TreeCache = lib.tree_cache_class(impl)
    from kazoo.recipe.cache import TreeEvent

    counter = _Counter()
    initialized = threading.Event()

    def listener(event):
        if event.event_type == TreeEvent.NODE_UPDATED:
            counter.hit()
        elif event.event_type == TreeEvent.INITIALIZED:
            initialized.set()

    cache = TreeCache(client, root)
    cache.listen(listener)
    cache.start()
    try:
        assert initialized.wait(120), "TreeCache never initialized"
        benchmark.group = "TreeCache NODE_UPDATED events/s"
        writer_rate = _run_rounds(benchmark, writer, counter, paths)
    finally:
        cache.close()
    lib.record(benchmark, "cache.events", impl, ops_per_round=len(paths),
               writer_rate=writer_rate)
