"""``python -m fastzk``: the fastzk command line (:mod:`fastzk.cli`)."""

import sys

from fastzk.cli import main

if __name__ == "__main__":
    sys.exit(main())
