"""Benchmark runner: fastzk against kazoo 2.11, side by side, one table.

``fastzk bench`` (installed with ``pip install 'fastzk[bench]'``), ``make
bench`` and ``python benchmarks/run.py`` in a source checkout call
:func:`main`; so can a program::

    from fastzk.bench import main
    sys.exit(main(["--quick"]))

What it does, in order:

1. uses the ZooKeeper ``--hosts`` names, else starts a local one
   (:class:`fastzk.testing.zkserver.ZooKeeperServer`, Debian's
   ``zookeeper`` package), else stops with one line saying how to get one;
2. runs the pytest-benchmark cases shipped in :mod:`fastzk.benchcases`
   (codec, client round trips, memory, lock, watches, TreeCache, TLS,
   the asyncio client against aiozk and a bare asyncio loop) against
   it, in a subprocess, printing one progress line per case;
3. runs the fleet benchmark (``fastzk.benchcases.fleet``) last;
4. prints ONE table of fastzk/kazoo ratios, each marked better or worse
   and checked against its target, and writes the figures as JSON (date,
   machine, Python, ZooKeeper version, every figure) to ``--json``, by
   default ``benchmarks/results.json`` in a source checkout.

Speed is never asserted anywhere: the table reports; the exit status is
non-zero only when a benchmark could not run (or ``--strict`` is given and
a target was missed).

The local server comes from :mod:`fastzk.testing`, imported only when a
run needs it; the four-letter words from :mod:`fastzk.fourletter`.
"""

from fastzk.bench.command import _default_json, main
from fastzk.bench.machine import machine_info
from fastzk.bench.plot import write_plot
from fastzk.bench.results import Row, suite_results
from fastzk.bench.rows import build_rows
from fastzk.bench.runner import (
    _env,
    cases_dir,
    checkout_benchmarks_dir,
    find_bench_dir,
    run_fleet,
    run_suite,
    suite_argv,
)
from fastzk.bench.sections import (
    IMPLS,
    PLAIN_PARTNERS,
    RAW_LOOP,
    SPIN_ON,
    TLS_CASES,
    _c_client_note,
    tls_missing_note,
)
from fastzk.bench.server import (
    GET_ZOOKEEPER,
    WARMUP_REQUESTS,
    WARMUP_REQUESTS_QUICK,
    check_serves,
    local_zookeeper_problem,
    server_version,
    warm_up,
)
from fastzk.bench.table import _notes, format_table
from fastzk.bench.targets import TARGETS, Target

__all__ = ["main", "run_suite", "run_fleet", "build_rows", "format_table",
           "write_plot", "machine_info", "TARGETS"]
