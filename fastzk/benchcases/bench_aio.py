"""The asyncio client: :class:`fastzk.aio.AsyncClient` against aiozk 0.32
and the bare asyncio loop (``_aiolimit``: the wire format spoken by a
bare protocol, no client logic), each on the same event loop of this
process, rounds alternated (aiozk, bare, fastzk; see
``_benchlib.Alternating``) so that drift weighs on all alike:

- awaited sequential ``get_children`` and 2,000 gathered ones (fastzk:
  the futures of ``get_children_async``; aiozk: its coroutines): rate and
  client CPU per request (``getrusage`` of this process around each
  round; every client here runs in the loop's one thread);
- failed non-blocking lock attempts on a held lock: rate, CPU and server
  writes (zxid delta, read outside the rounds) per attempt; the bare
  loop's round is one getChildren per attempt, the floor of an attempt
  that reads before it writes;
- change events on a subtree: fastzk ``zk.watch(path, recursive=True)``;
  aiozk has no persistent watches, its best equivalent is a
  ``DataWatcher`` on every node (a one-shot watch and a get per event);
  the bare loop leaves one recursive watch (addWatch) and counts the
  notifications undecoded;
- 1,000 idle sessions in one process (``_aiosessions``, a fresh process
  per client): seconds to connect all, RSS per session, threads.

Each case runs on asyncio's default loop and again on uvloop when it is
installed (keys ``aio.uvloop.*``).  Result names: ``fastzk``, ``aiozk``
and ``aio-bare``.
"""

import asyncio
import json
import subprocess
import sys

import pytest

from fastzk.benchcases import _aioclients as aio
from fastzk.benchcases import _benchlib as lib
from fastzk.benchcases._aioclients import BARE, UNBATCHED, UNBATCHED_RESULT

SEQUENTIAL = 500
GATHERED = 2000
ATTEMPTS = 300

LOOPS = ("asyncio", "uvloop")


def case_key(loop_kind, case):
    """The result key of ``case`` on ``loop_kind``: ``aio.<case>`` on
    asyncio's default loop, ``aio.uvloop.<case>`` on uvloop."""
    return "aio.%s" % case if loop_kind == "asyncio" else \
        "aio.%s.%s" % (loop_kind, case)


def rename_partner(benchmark, old, new):
    """Name ``old``'s rounds in a recorded case ``new`` (Alternating calls
    its first client "kazoo"; here it is aiozk)."""
    for partner in benchmark.extra_info.get("partners", ()):
        if partner["impl"] == old:
            partner["impl"] = new


@pytest.fixture(params=LOOPS)
def loop_kind(request):
    """Each case on asyncio's default loop, then on uvloop."""
    if request.param == "uvloop" and aio.uvloop_missing():
        pytest.skip(aio.uvloop_missing())
    return request.param


class Session(object):
    """One event loop and the clients made on it, for one case."""

    def __init__(self, kind, hosts):
        self.kind = kind
        self.hosts = hosts
        self.loop = aio.new_loop(kind)
        self.made = []

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def client(self, impl):
        client = self.run(aio.connect(impl, self.hosts))
        self.made.append(client)
        return client

    def round(self, coro_fn):
        """A round for ``Alternating``: runs ``coro_fn()`` to completion
        on this loop and returns None (so it is timed here)."""
        def run():
            self.loop.run_until_complete(coro_fn())
        return run

    def close(self):
        for client in reversed(self.made):
            try:
                self.run(client.close())
            except Exception:
                pass
        self.loop.run_until_complete(asyncio.sleep(0.05))
        self.loop.close()


@pytest.fixture
def session(zk, loop_kind):
    made = Session(loop_kind, zk.hosts)
    yield made
    made.close()


def alternated(benchmark, session, case, rounds, ops, rounds_of,
               around=None, metrics=None):
    """Measure ``rounds_of[impl]`` of aiozk, the bare loop ("bare",
    recorded as ``aio-bare``) and fastzk,
    rounds alternated; record them as ``case`` on this loop.  A client
    missing from ``rounds_of`` is recorded as ``<impl>_missing``."""
    others = {BARE: rounds_of["bare"]} if "bare" in rounds_of else {}
    if UNBATCHED in rounds_of:
        others[UNBATCHED_RESULT] = rounds_of[UNBATCHED]
    missing = aio.aiozk_missing()
    first = rounds_of.get("aiozk") or (lambda: None)
    pair = lib.Alternating(first, warmup_rounds=1, others=others,
                           around=around)
    benchmark.group = "asyncio %s (%s)" % (case, session.kind)
    benchmark.pedantic(rounds_of["fastzk"], setup=pair, rounds=rounds,
                       warmup_rounds=1)
    metrics = metrics or {}
    lib.record_pair(benchmark, case_key(session.kind, case), pair,
                    ops_per_round=ops, kazoo=metrics.get("aiozk"),
                    fastzk=dict(metrics.get("fastzk") or {},
                                loop=session.kind))
    if missing:
        benchmark.extra_info["partners"] = [
            p for p in benchmark.extra_info["partners"]
            if p["impl"] != "kazoo"]
        benchmark.extra_info["aiozk_missing"] = missing
    rename_partner(benchmark, "kazoo", "aiozk")


def reading_clients(session, path):
    """``{impl: Client}`` of the clients measured, their first read
    checked."""
    impls = ["fastzk", "bare"] + ([] if aio.aiozk_missing() else ["aiozk"])
    made = {impl: session.client(impl) for impl in impls}
    for impl, client in made.items():
        names = session.run(client.get_children(path))
        assert len(names) == 10, (impl, names)
    return made


@pytest.fixture
def small_tree(admin, root):
    """A node with 10 children."""
    lib.populate(admin, root, ["child-%02d" % i for i in range(10)])
    return root


def test_aio_sequential_get_children(benchmark, session, small_tree):
    made = reading_clients(session, small_tree)

    def make_round(impl):
        client = made[impl]
        if impl == "bare":
            return session.round(
                lambda: client.raw.children(small_tree, SEQUENTIAL))
        get_children = client.raw.get_children

        async def run():
            for _ in range(SEQUENTIAL):
                await get_children(small_tree)
        return session.round(run)

    alternated(benchmark, session, "sequential_get_children",
               lib.pick(25, 5), SEQUENTIAL,
               {impl: make_round(impl) for impl in made})


def test_aio_gathered_get_children(benchmark, session, small_tree):
    made = reading_clients(session, small_tree)
    made[UNBATCHED] = session.client(UNBATCHED)

    def make_round(impl):
        client = made[impl]
        if impl == "bare":
            return session.round(
                lambda: client.raw.gathered(small_tree, GATHERED))
        # fastzk gathers the futures of get_children_async (no task per
        # request); aiozk has only the coroutine.
        if impl in ("fastzk", UNBATCHED):
            get_children = client.raw.get_children_async
        else:
            get_children = client.raw.get_children

        async def run():
            await asyncio.gather(*[get_children(small_tree)
                                   for _ in range(GATHERED)])
        return session.round(run)

    alternated(benchmark, session, "gathered_get_children",
               lib.pick(10, 3), GATHERED,
               {impl: make_round(impl) for impl in made})


def test_aio_lock_failed_attempt(benchmark, zk, session, root):
    # Server writes per client; Alternating's "kazoo" is aiozk here.
    writes = lib.Transactions(zk, ("aiozk", "fastzk"), {"kazoo": "aiozk"})
    impls = ["fastzk"] + ([] if aio.aiozk_missing() else ["aiozk"])
    attempts = {impl: 0 for impl in impls}
    won = {impl: 0 for impl in impls}
    holders = []
    paths = {}

    def make_round(impl):
        path = paths[impl] = "%s/held-%s" % (root, impl)
        holders.append(session.run(aio.hold(session.client(impl), path)))
        attempt = aio.contender(session.client(impl), path)
        assert not session.run(attempt())

        async def run():
            for _ in range(ATTEMPTS):
                if await attempt():
                    won[impl] += 1
            attempts[impl] += ATTEMPTS
        return session.round(run)

    rounds_of = {impl: make_round(impl) for impl in impls}
    bare = session.client("bare")
    held = paths["fastzk"]
    rounds_of["bare"] = session.round(lambda: bare.raw.children(held,
                                                              ATTEMPTS))
    alternated(benchmark, session, "lock_failed_attempt", lib.pick(5, 2),
               ATTEMPTS, rounds_of, around=writes.around)
    # Every failed attempt leaves the holder's node alone on its path.
    left = {impl: len(session.run(bare.get_children(paths[impl]))) - 1
            for impl in impls}
    for holder in holders:
        session.run(aio.release(holder))
    assert won == {impl: 0 for impl in impls}, "a held lock was acquired"
    info = benchmark.extra_info
    info["metrics"].update(writes_per_attempt=writes.per(
        "fastzk", attempts["fastzk"]), contender_nodes_left=left["fastzk"])
    for partner in info["partners"]:
        if partner["impl"] == "aiozk":
            partner["metrics"].update(
                writes_per_attempt=writes.per("aiozk", attempts["aiozk"]),
                contender_nodes_left=left["aiozk"])


class Counter(object):
    """Events counted on the loop; ``expect(n)`` then ``await wait()``."""

    def __init__(self):
        self.count = 0
        self.target = None
        self.done = asyncio.Event()

    def hit(self):
        self.count += 1
        if self.target is not None and self.count >= self.target:
            self.done.set()

    def expect(self, extra):
        self.done.clear()
        self.target = self.count + extra

    async def wait(self, timeout):
        try:
            await asyncio.wait_for(self.done.wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError("%d change events never arrived"
                                 % (self.target - self.count)) from None


@pytest.fixture(scope="module")
def writer(zk):
    w = lib.Writer(zk.hosts)
    yield w
    w.close()


def test_aio_watch_events(benchmark, session, admin, root, writer):
    if session.kind != "asyncio":
        pytest.skip("the watch case runs on asyncio's default loop only")
    from kazoo.protocol.states import EventType

    m = lib.pick(2000, 500)
    impls = ["fastzk", "bare"] + ([] if aio.aiozk_missing() else ["aiozk"])
    paths = {}
    for impl in impls:
        names = ["n%05d" % i for i in range(m)]
        lib.populate(admin, "%s/%s" % (root, impl), names, b"v0")
        paths[impl] = ["%s/%s/%s" % (root, impl, n) for n in names]
    counters = {impl: Counter() for impl in impls}
    writer_seconds = []
    streams = []

    fastzk = session.client("fastzk").raw
    stream = fastzk.watch("%s/fastzk" % root, recursive=True,
                          maxsize=4 * m)
    session.run(stream.__aenter__())
    streams.append(stream)

    async def consume():
        async for event in stream:
            if event.type == EventType.CHANGED:
                counters["fastzk"].hit()
    consumer = session.loop.create_task(consume())

    bare = session.client("bare").raw
    bare.on_event = counters["bare"].hit
    session.run(bare.watch_recursive("%s/bare" % root))

    if "aiozk" in impls:
        aiozk = session.client("aiozk").raw
        watcher = aiozk.recipes.DataWatcher()
        counter = counters["aiozk"]
        counter.expect(m)  # the first read of every node

        def on_data(data):
            counter.hit()

        async def watch_all():
            for path in paths["aiozk"]:
                watcher.add_callback(path, on_data)
            await counter.wait(120)
        session.run(watch_all())

    state = {"round": 0}

    def make_round(impl):
        async def run():
            state["round"] += 1
            value = b"v%d" % state["round"]
            counters[impl].expect(m)
            writer.start([("set", p, value) for p in paths[impl]])
            await counters[impl].wait(120)
            seconds, _ = writer.wait()
            writer_seconds.append(seconds)
        return session.round(run)

    try:
        alternated(benchmark, session, "watch_events", lib.pick(3, 2), m,
                   {impl: make_round(impl) for impl in impls},
                   metrics={"fastzk": {"compared": "one recursive watch"},
                            "aiozk": {"compared": "DataWatcher per node"}})
    finally:
        consumer.cancel()
        session.run(asyncio.sleep(0))
        if "aiozk" in impls:
            for path in paths["aiozk"]:
                watcher.remove_callback(path, on_data)
    benchmark.extra_info["metrics"]["writer_rate"] = m / min(writer_seconds)


def run_sessions_child(impl, hosts, n, kind):
    """One :mod:`_aiosessions` process; its JSON."""
    proc = subprocess.run(
        [sys.executable, "-m", "fastzk.benchcases._aiosessions", impl, hosts,
         str(n), kind], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        timeout=600, env=lib.child_env())
    if proc.returncode != 0:
        raise RuntimeError("sessions child failed (%d): %s"
                           % (proc.returncode, proc.stderr.decode()[-3000:]))
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def sessions_summary(results):
    """The figures of a client's many-sessions runs: the median seconds
    to connect and RSS per session (KiB), the most threads seen."""
    def median(key):
        return lib._median(sorted(r[key] for r in results))
    return {"sessions": results[0]["sessions"],
            "connect_s": median("connect_s"),
            "rss_per_session_kib": median("rss_per_session") / 1024.0,
            "threads": max(r["threads"] for r in results
                           if r["threads"] is not None)
            if any(r["threads"] is not None for r in results) else None,
            "runs": len(results)}


def test_aio_many_sessions(benchmark, zk, loop_kind):
    n = lib.env_int("FASTZK_BENCH_AIO_SESSIONS", 1000, 1000)
    impls = ["fastzk", "bare"] + ([] if aio.aiozk_missing() else ["aiozk"])
    runs = {impl: [] for impl in impls}

    def run():
        # Rounds alternated: each client's child once per round.
        for _ in range(lib.pick(3, 1)):
            for impl in impls:
                runs[impl].append(run_sessions_child(impl, zk.hosts, n,
                                                     loop_kind))

    benchmark.group = "asyncio %d sessions (%s)" % (n, loop_kind)
    benchmark.pedantic(run, rounds=1, iterations=1)
    key = case_key(loop_kind, "sessions")
    lib.record(benchmark, key, "fastzk", **sessions_summary(runs["fastzk"]))
    benchmark.extra_info["partners"] = [
        {"impl": BARE if impl == "bare" else impl,
         "metrics": sessions_summary(runs[impl])}
        for impl in impls if impl != "fastzk"]
    if aio.aiozk_missing():
        benchmark.extra_info["aiozk_missing"] = aio.aiozk_missing()
