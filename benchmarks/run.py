#!/usr/bin/env python3
"""Run every benchmark against one local ZooKeeper and print one table of
fastzk/kazoo ratios (``make bench``), with the fastzk of this checkout.

    python benchmarks/run.py [--quick] [--hosts H] [--json FILE] [--plot FILE.png]

The same as ``fastzk bench``: the logic is :mod:`fastzk.bench`, the cases
are :mod:`fastzk.benchcases`; see ``--help``.  What only a checkout has is
ZooKeeper's C client helper (``c/zkc_rounds.c``), the reference of the
round-trip rows, and the default ``--json``, ``benchmarks/results.json``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastzk.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
