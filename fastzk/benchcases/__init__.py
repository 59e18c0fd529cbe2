"""The benchmark cases ``fastzk bench`` runs (:mod:`fastzk.bench`).

They ship with the package, so an installed fastzk (``pip install
'fastzk[bench]'``) measures itself against kazoo without a source checkout:

``conftest.py``
    the pytest fixtures: one ZooKeeper for the run (``FASTZK_BENCH_HOSTS``,
    else one started here), clients of either implementation, fresh trees.
``bench_codec.py``, ``bench_client.py``, ``bench_lock.py``,
``bench_watch.py``, ``bench_cache.py``, ``bench_tls.py``
    the pytest-benchmark cases, each run with kazoo and with fastzk.
``bench_aio.py``
    the asyncio client against aiozk 0.32 and the bare asyncio loop
    (``_aiolimit.py``; clients in ``_aioclients.py``, the many-sessions
    child process in ``_aiosessions.py``).
``fleet.py``
    the fleet benchmark: the work-queue loop of many lock-taking sessions
    in several processes (``python -m fastzk.benchcases.fleet``).
``_benchlib.py``, ``_memchild.py``
    their shared helpers and the client-memory case's child process.

Only ZooKeeper's C client, the reference of the round-trip rows, needs a
checkout: its helper's source is ``benchmarks/c`` there.
"""
