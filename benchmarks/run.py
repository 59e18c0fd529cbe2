#!/usr/bin/env python3
"""Run every benchmark against one local ZooKeeper and print one table of
fastzk/kazoo ratios (``make bench``).

    python benchmarks/run.py [--quick] [--hosts H] [--json FILE] [--plot FILE.png]

The logic is :mod:`fastzk.bench` (``fastzk.bench.main(argv)``); see
``--help``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastzk.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
