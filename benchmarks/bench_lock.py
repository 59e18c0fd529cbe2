"""The Lock recipe: kazoo's Lock on kazoo's client against fastzk's Lock on
fastzk's client.

- Failed non-blocking ``acquire`` on a lock another session holds: attempts
  per second, and server write transactions per attempt (zxid delta read
  with ``srvr`` before and after; nothing else writes to the server during
  the case).  kazoo creates and deletes a contender node every time.
- Uncontended ``acquire()`` + ``release()`` cycles per second.

One Lock object per client is reused across attempts (kazoo's cheapest
use: its path check is done once); the fleet benchmark creates a Lock per
attempt, as the issue's worker loop does.
"""

import pytest

import _benchlib as lib
from _benchlib import IMPLS

ATTEMPTS = 300
CYCLES = 200


@pytest.mark.parametrize("impl", IMPLS)
def test_failed_nonblocking_acquire(benchmark, impl, zk, clients, root):
    Lock = lib.lock_class(impl)
    holder_client = clients(impl)
    client = clients(impl)
    path = root + "/held"
    holder = Lock(holder_client, path, "holder")
    assert holder.acquire(timeout=10)
    lock = Lock(client, path, "contender")
    assert not lock.acquire(blocking=False)
    counts = {"attempts": 0, "txns": 0, "won": 0}

    def run():
        before = zk.zxid()
        won = 0
        for _ in range(ATTEMPTS):
            if lock.acquire(blocking=False):
                won += 1
                lock.release()
        delta = lib.zxid_delta(before, zk.zxid())
        counts["attempts"] += ATTEMPTS
        counts["won"] += won
        counts["txns"] = None if delta is None or counts["txns"] is None \
            else counts["txns"] + delta

    benchmark.group = "failed non-blocking Lock.acquire"
    benchmark.pedantic(run, rounds=lib.pick(5, 2), warmup_rounds=0)
    leftover = [c for c in client.get_children(path) if "__lock__" in c]
    holder.release()
    assert counts["won"] == 0, "a held lock was acquired"
    txns = counts["txns"]
    lib.record(benchmark, "lock.failed_attempt", impl,
               ops_per_round=ATTEMPTS,
               txns_per_attempt=(None if txns is None
                                 else txns / float(counts["attempts"])),
               attempts=counts["attempts"],
               contender_nodes_left=len(leftover) - 1)


@pytest.mark.parametrize("impl", IMPLS)
def test_uncontended_acquire_release(benchmark, impl, zk, clients, root):
    Lock = lib.lock_class(impl)
    client = clients(impl)
    lock = Lock(client, root + "/free", "me")
    assert lock.acquire(timeout=10)
    lock.release()
    counts = {"cycles": 0, "txns": 0}

    def run():
        before = zk.zxid()
        for _ in range(CYCLES):
            lock.acquire(timeout=10)
            lock.release()
        delta = lib.zxid_delta(before, zk.zxid())
        counts["cycles"] += CYCLES
        counts["txns"] = None if delta is None or counts["txns"] is None \
            else counts["txns"] + delta

    benchmark.group = "uncontended acquire+release"
    benchmark.pedantic(run, rounds=lib.pick(5, 2), warmup_rounds=1)
    txns = counts["txns"]
    lib.record(benchmark, "lock.uncontended_cycle", impl,
               ops_per_round=CYCLES,
               txns_per_cycle=(None if txns is None
                               else txns / float(counts["cycles"])))
