"""The Lock recipe: kazoo's Lock on kazoo's client against fastzk's Lock on
fastzk's client.

- Failed non-blocking ``acquire`` on a lock another session holds: attempts
  per second, and server write transactions per attempt (zxid delta read
  with ``srvr`` before and after; nothing else writes to the server during
  the case).  kazoo creates and deletes a contender node every time.
  ZooKeeper's C client and the raw wire loop (``benchmarks/c/
  raw_rounds.c``, one socket, no client logic) alternate with them, each
  reading the held lock's children once per "attempt": the one
  getChildren round trip a failed fastzk attempt makes, and the bound of
  any attempt that reads before it writes.
- Uncontended ``acquire()`` + ``release()`` cycles per second.

One Lock object per client is reused across attempts (kazoo's cheapest
use: its path check is done once); the fleet benchmark creates a Lock per
attempt, as the issue's worker loop does.  kazoo's and fastzk's rounds
alternate (``_benchlib.Alternating``), each on its own lock path; the zxid
is read outside the timed rounds.
"""

import pytest

from fastzk.benchcases import _benchlib as lib
from fastzk.benchcases._benchlib import IMPLS

ATTEMPTS = 300
CYCLES = 200


@pytest.fixture
def raw_reference(zk):
    """``raw_reference(path, n)``: the raw wire loop's round for
    ``Alternating``'s ``others`` (see ``_benchlib.RawReference``)."""
    reference = lib.RawReference(zk.hosts)
    yield reference
    reference.close()


def test_failed_nonblocking_acquire(benchmark, zk, clients, root,
                                   c_reference, raw_reference):
    txns = lib.Transactions(zk, IMPLS)
    attempts = {impl: 0 for impl in IMPLS}
    won = {impl: 0 for impl in IMPLS}
    leftovers = {}
    holders = []

    def make_round(impl):
        Lock = lib.lock_class(impl)
        path = "%s/held-%s" % (root, impl)
        holder = Lock(clients(impl), path, "holder")
        assert holder.acquire(timeout=10)
        holders.append(holder)
        client = clients(impl)
        lock = Lock(client, path, "contender")
        assert not lock.acquire(blocking=False)
        leftovers[impl] = lambda: [c for c in client.get_children(path)
                                   if "__lock__" in c]

        def run():
            for _ in range(ATTEMPTS):
                if lock.acquire(blocking=False):
                    won[impl] += 1
                    lock.release()
            attempts[impl] += ATTEMPTS
        return run

    kazoo_round, fastzk_round = make_round("kazoo"), make_round("fastzk")
    # The floor of any attempt that reads before it writes: one getChildren
    # round trip on the same held lock path, by ZooKeeper's own C client
    # and by the raw wire loop.
    held = "%s/held-fastzk" % root
    others, missing = lib.references(
        ("c_client_missing", c_reference("children", held, ATTEMPTS)),
        ("raw_loop_missing", raw_reference(held, ATTEMPTS)))
    pair = lib.Alternating(kazoo_round, around=txns.around, others=others)
    benchmark.group = "failed non-blocking Lock.acquire"
    benchmark.pedantic(fastzk_round, setup=pair, rounds=lib.pick(5, 2),
                       warmup_rounds=0)
    pair.close()  # accounts fastzk's last round
    left = {impl: len(leftovers[impl]()) - 1 for impl in IMPLS}
    for holder in holders:
        holder.release()
    assert won == {"kazoo": 0, "fastzk": 0}, "a held lock was acquired"
    metrics = {impl: {"txns_per_attempt": txns.per(impl, attempts[impl]),
                      "attempts": attempts[impl],
                      "contender_nodes_left": left[impl]}
               for impl in IMPLS}
    lib.record_pair(benchmark, "lock.failed_attempt", pair,
                    ops_per_round=ATTEMPTS, **metrics)
    benchmark.extra_info.update(missing)


def test_uncontended_acquire_release(benchmark, zk, clients, root):
    txns = lib.Transactions(zk, IMPLS)
    cycles = {impl: 0 for impl in IMPLS}

    def make_round(impl):
        lock = lib.lock_class(impl)(clients(impl), "%s/free-%s" % (root, impl),
                                    "me")
        assert lock.acquire(timeout=10)
        lock.release()

        def run():
            for _ in range(CYCLES):
                lock.acquire(timeout=10)
                lock.release()
            cycles[impl] += CYCLES
        return run

    kazoo_round, fastzk_round = make_round("kazoo"), make_round("fastzk")
    pair = lib.Alternating(kazoo_round, warmup_rounds=1, around=txns.around)
    benchmark.group = "uncontended acquire+release"
    benchmark.pedantic(fastzk_round, setup=pair, rounds=lib.pick(5, 2),
                       warmup_rounds=1)
    pair.close()  # accounts fastzk's last round
    metrics = {impl: {"txns_per_cycle": txns.per(impl, cycles[impl])}
               for impl in IMPLS}
    lib.record_pair(benchmark, "lock.uncontended_cycle", pair,
                    ops_per_round=CYCLES, **metrics)
