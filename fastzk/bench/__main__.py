"""``python -m fastzk.bench``: :func:`fastzk.bench.main`."""

import sys

from fastzk.bench.command import main

if __name__ == "__main__":
    sys.exit(main())
