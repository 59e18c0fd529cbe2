"""Client round trips over TLS, against a server of the suite's own that
requires client certificates (``tls_zk`` in the conftest; skipped when
the suite measures a server given with ``--hosts``): synchronous
``get_children``, 2,000 pipelined ``get_children_async`` and failed
non-blocking ``Lock.acquire`` on a held lock.

Each case alternates four clients round by round
(``_benchlib.Alternating``): kazoo and fastzk over TLS, and a plaintext
kazoo and fastzk (``kazoo-plain``, ``fastzk-plain``) on the same server's
plaintext port, so that what TLS adds per request, and the fastzk/kazoo
ratio without it, come from the same rounds.  CPU per request is this
process's (all threads) around each round.
"""

import pytest

from fastzk.benchcases import _benchlib as lib
from fastzk.benchcases._benchlib import IMPLS, PLAIN_PARTNERS

SYNC_CALLS = 200
PIPELINED = 2000
ATTEMPTS = 300


@pytest.fixture
def tls_clients(tls_zk, clients):
    """``tls_clients(impl, tls=True)``: a client of ``impl`` on the TLS
    server, over TLS or on its plaintext port; stopped after the test."""

    def make(impl, tls=True):
        if tls:
            return clients(impl, hosts=tls_zk.secure_hosts,
                           **tls_zk.client_kwargs)
        return clients(impl, hosts=tls_zk.plain_hosts)
    return make


@pytest.fixture
def tls_tree(tls_zk):
    """A node with 10 children and 100 bytes of data on the TLS server
    (made through its plaintext port), wiped afterwards."""
    admin = lib.make_client("fastzk", tls_zk.plain_hosts)
    root = lib.unique_root("bench-tls")
    try:
        admin.ensure_path(root)
        admin.set(root, b"d" * 100)
        lib.populate(admin, root, ["child-%02d" % i for i in range(10)])
        yield root
    finally:
        lib.wipe(admin, root)
        lib.close_client(admin)


def alternated_tls(benchmark, case, group, rounds, ops, make_round,
                   warmup_rounds=1):
    """Measure ``make_round(impl, tls)`` for kazoo and fastzk over TLS,
    alternated with both over plaintext (``PLAIN_PARTNERS``)."""
    kazoo_round, fastzk_round = make_round("kazoo", True), \
        make_round("fastzk", True)
    plain = {PLAIN_PARTNERS[impl]: make_round(impl, False) for impl in IMPLS}
    pair = lib.Alternating(kazoo_round, warmup_rounds=warmup_rounds,
                           others=plain)
    benchmark.group = group
    benchmark.pedantic(fastzk_round, setup=pair, rounds=rounds,
                       warmup_rounds=warmup_rounds)
    lib.record_pair(benchmark, case, pair, ops_per_round=ops)


def test_tls_sync_get_children(benchmark, tls_clients, tls_tree):
    def make_round(impl, tls):
        get_children = tls_clients(impl, tls).get_children
        assert len(get_children(tls_tree)) == 10

        def run():
            for _ in range(SYNC_CALLS):
                get_children(tls_tree)
        return run

    alternated_tls(benchmark, "tls.sync_get_children",
                   "sync get_children over TLS", lib.pick(15, 5), SYNC_CALLS,
                   make_round)


def test_tls_pipelined_get_children(benchmark, tls_clients, tls_tree):
    def make_round(impl, tls):
        get_children_async = tls_clients(impl, tls).get_children_async

        def run():
            results = [get_children_async(tls_tree)
                       for _ in range(PIPELINED)]
            for r in results:
                r.get()
        return run

    alternated_tls(benchmark, "tls.pipelined_get_children",
                   "2,000 pipelined get_children_async over TLS",
                   lib.pick(10, 3), PIPELINED, make_round)


def test_tls_failed_nonblocking_acquire(benchmark, tls_clients, tls_tree):
    won = []
    holders = []

    def make_round(impl, tls):
        Lock = lib.lock_class(impl)
        path = "%s/held-%s-%s" % (tls_tree, impl, "tls" if tls else "plain")
        holder = Lock(tls_clients(impl, tls), path, "holder")
        assert holder.acquire(timeout=10)
        holders.append(holder)
        lock = Lock(tls_clients(impl, tls), path, "contender")
        assert not lock.acquire(blocking=False)

        def run():
            for _ in range(ATTEMPTS):
                if lock.acquire(blocking=False):
                    won.append(impl)
                    lock.release()
        return run

    try:
        alternated_tls(benchmark, "tls.lock_failed_attempt",
                       "failed non-blocking Lock.acquire over TLS",
                       lib.pick(5, 2), ATTEMPTS, make_round, warmup_rounds=0)
    finally:
        for holder in holders:
            holder.release()
    assert won == [], "a held lock was acquired"
