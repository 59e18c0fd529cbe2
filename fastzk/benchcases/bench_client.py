"""Client round trips against the same local server: synchronous
``get_children`` and ``get``, 2,000 pipelined ``get_children_async``, and
the client's memory after many requests.

The round-trip cases alternate kazoo's and fastzk's rounds
(``_benchlib.Alternating``): both clients meet the same machine, and the
CPU time of each round is kept beside its seconds.  Alternated with them
as references:

- ZooKeeper's own C client (libzookeeper_mt, ``benchmarks/c/zkc_rounds.c``
  of a source checkout), in the synchronous reads;
- the raw wire loop (``benchmarks/c/raw_rounds.c``: one socket, no client
  logic), the client-side limit, in ``get_children`` synchronous and
  pipelined;
- the same synchronous loop written in Python
  (:mod:`fastzk.benchcases._pyrounds`), the interpreter's floor, in the
  synchronous ``get_children``;
- a second fastzk client made with ``FASTZK_SPIN_US=200`` (the opt-in
  busy-polling for replies; the default client does not spin), in the
  synchronous ``get_children``.
"""

import json
import subprocess
import sys

import pytest

from fastzk.benchcases import _benchlib as lib
from fastzk.benchcases._benchlib import IMPLS

SYNC_CALLS = 200
PIPELINED = 2000

#: The busy-poll ceiling of the spinning fastzk client, in microseconds.
SPIN_ON_US = 200

#: The name of the spinning fastzk client, in the results.
SPIN_ON = "fastzk-spin%d" % SPIN_ON_US

#: The name of the fastzk client with reply batching off
#: (``reply_batching=0``), in the results of the pipelined case.
UNBATCHED = "fastzk-unbatched"


@pytest.fixture
def small_tree(admin, root):
    """A node with 10 children and 100 bytes of data."""
    admin.set(root, b"d" * 100)
    lib.populate(admin, root, ["child-%02d" % i for i in range(10)])
    return root


@pytest.fixture
def raw_reference(zk):
    """``raw_reference(path, n, window=None)``: the raw wire loop's round
    for ``Alternating``'s ``others``, and ``raw_reference.python(path,
    n)`` the Python loop's (see ``_benchlib.RawReference``)."""
    reference = lib.RawReference(zk.hosts)
    yield reference
    reference.close()


def spin_ceiling_us(client):
    """The busy-poll ceiling a fastzk client was made with, or None when
    it cannot be read."""
    spin = getattr(getattr(client, "_connection", None), "spin", None)
    return getattr(spin, "ceiling_us", None)


def spin_on_client(clients):
    """``(client, why)``: a fastzk client made with
    ``FASTZK_SPIN_US=SPIN_ON_US`` (the ceiling is read when a client is
    made), or None and why it is left out.

    :raises RuntimeError: when the compiled core's client did not take
                          the ceiling.
    """
    import fastzk

    if not fastzk.EXTENSIONS:
        return None, "the pure-Python core does not spin"
    with lib.environment(FASTZK_SPIN_US=str(SPIN_ON_US)):
        client = clients("fastzk")
    ceiling = spin_ceiling_us(client)
    if ceiling != SPIN_ON_US:
        raise RuntimeError("FASTZK_SPIN_US=%d gave a client with ceiling "
                           "%r" % (SPIN_ON_US, ceiling))
    return client, None


def alternated(benchmark, case, group, rounds, ops, make_round,
               reference=({}, {}), fastzk=None):
    """Measure ``make_round(impl)`` for both clients, rounds alternated
    (see _benchlib.Alternating); ``reference``: a ``_benchlib.references``
    result, more clients alternated with them, and why any is missing;
    ``fastzk``: metrics of fastzk's to record."""
    others, missing = reference
    kazoo_round, fastzk_round = make_round("kazoo"), make_round("fastzk")
    pair = lib.Alternating(kazoo_round, warmup_rounds=1, others=others)
    benchmark.group = group
    benchmark.pedantic(fastzk_round, setup=pair, rounds=rounds,
                       warmup_rounds=1)
    lib.record_pair(benchmark, case, pair, ops_per_round=ops, fastzk=fastzk)
    benchmark.extra_info.update(missing)


def test_sync_get_children(benchmark, clients, small_tree, c_reference,
                           raw_reference):
    made = {"kazoo": clients("kazoo"), "fastzk": clients("fastzk")}
    spinning, spin_missing = spin_on_client(clients)
    if spinning is not None:
        made[SPIN_ON] = spinning

    def make_round(impl):
        get_children = made[impl].get_children
        assert len(get_children(small_tree)) == 10

        def run():
            for _ in range(SYNC_CALLS):
                get_children(small_tree)
        return run

    c_client = c_reference("children", small_tree, SYNC_CALLS)
    raw = raw_reference(small_tree, SYNC_CALLS)
    python = raw_reference.python(small_tree, SYNC_CALLS)
    spin_on = ({SPIN_ON: make_round(SPIN_ON)} if spinning is not None
               else {}, spin_missing)
    others, missing = lib.references(("c_client_missing", c_client),
                                     ("raw_loop_missing", raw),
                                     ("python_loop_missing", python),
                                     ("spin_on_missing", spin_on))
    alternated(benchmark, "client.sync_get_children", "sync get_children",
               lib.pick(15, 5), SYNC_CALLS, make_round, (others, missing),
               fastzk={"spin_ceiling_us": spin_ceiling_us(made["fastzk"])})


def test_sync_get(benchmark, clients, small_tree, c_reference):
    def make_round(impl):
        get = clients(impl).get
        assert len(get(small_tree)[0]) == 100

        def run():
            for _ in range(SYNC_CALLS):
                get(small_tree)
        return run

    alternated(benchmark, "client.sync_get", "sync get", lib.pick(15, 5),
               SYNC_CALLS, make_round, lib.references(
                   ("c_client_missing",
                    c_reference("get", small_tree, SYNC_CALLS))))


def test_pipelined_get_children(benchmark, clients, small_tree,
                                raw_reference):
    def make_round(impl):
        if impl == UNBATCHED:
            client = clients("fastzk", reply_batching=0)
        else:
            client = clients(impl)
        get_children_async = client.get_children_async

        def run():
            results = [get_children_async(small_tree)
                       for _ in range(PIPELINED)]
            for r in results:
                r.get()
        return run

    alternated(benchmark, "client.pipelined_get_children",
               "2,000 pipelined get_children_async", lib.pick(10, 3),
               PIPELINED, make_round, lib.references(
                   ("raw_loop_missing",
                    raw_reference(small_tree, PIPELINED, PIPELINED)),
                   ("unbatched_missing",
                    ({UNBATCHED: make_round(UNBATCHED)}, None))))


def memory_requests(impl):
    """Requests made by the memory case: 1,000,000 for fastzk, 100,000 for
    kazoo (about 25 s at kazoo's pipelined rate; 1,000,000 would take
    minutes), 20,000 each in a quick run.  Environment overrides:
    FASTZK_BENCH_MEM_N and FASTZK_BENCH_MEM_N_KAZOO."""
    if impl == "kazoo":
        return lib.env_int("FASTZK_BENCH_MEM_N_KAZOO", 100000, 20000)
    return lib.env_int("FASTZK_BENCH_MEM_N", 1000000, 20000)


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("impl", IMPLS)
def test_client_memory(benchmark, impl, zk, small_tree):
    """RSS growth of a fresh client process over N pipelined requests
    (batches of 1,000) after a warm-up.  Target: flat."""
    n = memory_requests(impl)
    holder = {}

    def run():
        proc = subprocess.run(
            [sys.executable, "-m", "fastzk.benchcases._memchild", impl,
             zk.hosts, small_tree, str(n), "1000"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=1700,
            env=lib.child_env())
        if proc.returncode != 0:
            raise RuntimeError("memory child failed (%d): %s"
                               % (proc.returncode, proc.stderr.decode()[-3000:]))
        holder["result"] = json.loads(proc.stdout.decode().strip().splitlines()[-1])

    benchmark.group = "client memory"
    benchmark.pedantic(run, rounds=1, iterations=1)
    res = holder["result"]
    mib = 1024.0 * 1024.0
    lib.record(
        benchmark, "client.memory", impl,
        requests=res["requests"],
        rss_base_mib=res["rss_base"] / mib,
        rss_end_mib=res["rss_end"] / mib,
        rss_growth_mib=res["growth"] / mib,
        rss_growth_second_half_mib=res["growth_second_half"] / mib,
        rss_growth_per_100k_kib=res["growth"] / 1024.0 / (res["requests"] / 1e5),
        pipelined_rate=res["rate"],
        cpu_us_per_request=res["cpu_seconds"] / res["requests"] * 1e6,
        rss_samples_mib=[(k, v / mib) for k, v in res["samples"]],
    )
